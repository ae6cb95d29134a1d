"""biolatency: Prometheus metric families, from a snapshot."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from ...hist import NS_PER_SECOND, Log2Hist
from ...keyed_hists import EXPORTER_LAST_SLOT
from .snapshot import BioSnapshot
from ...series import fold, label_value


BIO_COUNTERS = (   # unlabelled counters: (name, help, value of a snapshot)
    ("block_io_unmatched", "Completions not timed: their issue was not seen (in flight "
     "at start), or the histogram map was full.", lambda s: s.unmatched + s.map_full),
    ("block_io_untimed_flushes", "Data-less requests (flushes) not timed: no sector.",
     lambda s: s.untimed),
)


def biolatency_families(snapshot: Optional[BioSnapshot], collector) -> list:
    """block_io_latency_seconds{device, op}; devices beyond the cap summed
    into device="~other" (per op)."""
    # prometheus_client is the exporter's alone: the commands start without it.
    from ...families import counters, labelled_histogram_family
    cells: Dict[Tuple[str, str], Log2Hist] = {}
    if snapshot is not None:
        cells, folded = fold(collector.cap, (
            ((label_value(collector.device(dev)),), (op,), hist)
            for (dev, op), hist in snapshot.hists.items()), weight=lambda h: h.count)
        collector.stats.record_folded("block_io_latency_seconds", folded)
    hist = labelled_histogram_family(
        "block_io_latency_seconds", "Block I/O latency from issue to completion (from "
        "insertion with -Q); le bounds are powers of two of seconds.", ["device", "op"],
        sorted(cells.items()), NS_PER_SECOND, EXPORTER_LAST_SLOT)
    return [hist] + counters(BIO_COUNTERS, snapshot)
