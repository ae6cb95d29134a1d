"""Prometheus collectors: BPF maps read at scrape time, as metric families.

One Collector per tool (client_python's custom-collector idiom): collect()
takes a snapshot of the tool's maps and turns it into metric families;
describe() returns the same families empty, so registering reads no map.
Everything here is pure but the `source.snapshot()` call each collector
makes, so it is unit-tested with fixed snapshots.

Metric names follow the BPF map they come from (ebpf_exporter's habit):
execve_total <- execve_total, vfs_read_latency_seconds <- vfs_read_latency_hist,
readahead_* <- readahead_devices. Maps are never cleared: counters only grow
until the exporter restarts.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Hashable, Iterable, List, Optional, Tuple

from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, InfoMetricFamily, Metric)
from prometheus_client.utils import floatToGoString

from .hist import Log2Hist
from .tools.readahead import KINDS, Counts, ReadaheadSnapshot, device_name

log = logging.getLogger("bpf-exporter")

OTHER = "other"
# vfs_read latency buckets: the kernel counts in microseconds; slot k's upper
# bound is 2^k us - 1 ns. A fixed set up to slot 27 (~134 s): slower reads are
# counted in +Inf only.
LATENCY_UNIT = "usecs"
LATENCY_LAST_SLOT = 27
# readahead window sizes in pages: slot k holds [2^(k-1), 2^k - 1]; up to
# 2^16 - 1 pages (256 MiB of 4 KiB pages).
WINDOW_LAST_SLOT = 16


# ------------------------------------------------------------ cardinality cap

class SeriesCap:
    """At most `limit` label values of one metric get their own series; the
    rest are summed into `other`.

    Membership is sticky: a value admitted stays admitted, and new values
    are admitted largest first while there is room. Since each value's count
    only grows and the set of values folded only grows, `other` never goes
    down either: every exported counter stays monotonic."""

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError("the series limit must be at least 1")
        self.limit = limit
        self.kept: set = set()
        self._lock = threading.Lock()

    def fold(self, counts: Dict[Hashable, int]) -> Tuple[Dict[Hashable, int], int, int]:
        """(counts of admitted values, sum of the others, how many were folded)."""
        with self._lock:
            new = [k for k in counts if k not in self.kept]
            new.sort(key=lambda k: (-counts[k], str(k)))
            for key in new[:max(0, self.limit - len(self.kept))]:
                self.kept.add(key)
            kept = {k: v for k, v in counts.items() if k in self.kept}
        other = sum(v for k, v in counts.items() if k not in kept)
        return kept, other, len(counts) - len(kept)


# ------------------------------------------------------------- self metrics

@dataclass
class SelfStats:
    """What the exporter knows about itself, shared by the collectors."""
    read_seconds: Dict[str, float] = field(default_factory=dict)   # last map read
    read_errors: Dict[str, int] = field(default_factory=dict)
    folded: Dict[str, int] = field(default_factory=dict)           # metric -> values folded
    up: Dict[str, bool] = field(default_factory=dict)              # collector -> attached
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_read(self, collector: str, seconds: float, ok: bool) -> None:
        with self.lock:
            self.read_seconds[collector] = seconds
            self.read_errors.setdefault(collector, 0)
            if not ok:
                self.read_errors[collector] += 1

    def record_folded(self, metric: str, n: int) -> None:
        with self.lock:
            self.folded[metric] = n


def self_families(stats: Optional[SelfStats]) -> List[Metric]:
    up = GaugeMetricFamily("bpf_exporter_collector_up",
                           "1 if the collector's BPF program attached, else 0.",
                           labels=["collector"])
    seconds = GaugeMetricFamily("bpf_exporter_map_read_duration_seconds",
                                "Time the collector's last map read took.",
                                labels=["collector"])
    errors = CounterMetricFamily("bpf_exporter_map_read_errors",
                                 "Map reads that failed (that collector's series were left out).",
                                 labels=["collector"])
    folded = GaugeMetricFamily("bpf_exporter_folded_series",
                               "Label values summed into the 'other' series by --max-series.",
                               labels=["metric"])
    if stats is not None:
        with stats.lock:
            for family, values in ((up, stats.up), (seconds, stats.read_seconds),
                                   (errors, stats.read_errors), (folded, stats.folded)):
                for name, value in sorted(values.items()):
                    family.add_metric([name], float(value))
    return [up, seconds, errors, folded]


class SelfCollector:
    def __init__(self, stats: SelfStats):
        self.stats = stats

    def describe(self) -> List[Metric]:
        return self_families(None)

    def collect(self) -> List[Metric]:
        return self_families(self.stats)


# --------------------------------------------------------------- converters

def histogram_family(name: str, doc: str, hist: Optional[Log2Hist], base: int,
                     last_slot: int) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=[])
    if hist is not None:
        buckets = [(floatToGoString(le), count)
                   for le, count in hist.prometheus_buckets(base, last_slot)]
        family.add_metric([], buckets, hist.total / base)
    return family


def info_family(tool: str, probe: Optional[dict], kernel: str) -> InfoMetricFamily:
    family = InfoMetricFamily(f"{tool}_probe", f"The probe {tool} attached and the kernel.",
                              labels=["mode", "probe", "kernel"])
    if probe is not None:
        family.add_metric([probe["mode"], probe["label"], kernel], {})
    return family


def execve_families(snapshot, cap: Optional[SeriesCap], stats: Optional[SelfStats],
                    by: str) -> List[Metric]:
    """execve_total{<by>}: calls to execve/execveat by key. Calls the kernel
    could not key (its map full) and keys beyond the cap are in `other`."""
    family = CounterMetricFamily("execve", f"execve and execveat calls by {by}.", labels=[by])
    if snapshot is not None:
        counts = {str(k): v for k, v in snapshot.counts.items()}
        kept, other, folded = cap.fold(counts) if cap else (counts, 0, 0)
        for key, value in sorted(kept.items()):
            family.add_metric([key], value)
        other += snapshot.overflow
        if other or folded:
            family.add_metric([OTHER], other)
        if stats is not None:
            stats.record_folded("execve_total", folded)
    return [family]


def vfs_read_families(snapshot) -> List[Metric]:
    hist = histogram_family(
        "vfs_read_latency_seconds", "Time from vfs_read entry to return (or read syscall "
        "entry to exit, in tracepoint mode); le bounds are the exact log2 slot edges.",
        snapshot.hist if snapshot is not None else None, 1_000_000_000, LATENCY_LAST_SLOT)
    clashes = CounterMetricFamily(
        "vfs_read_latency_lost", "Reads not timed because another thread shared their "
        "start slot (bounded start array).")
    if snapshot is not None:
        clashes.add_metric([], snapshot.start_clashes)
    return [hist, clashes]


READAHEAD_COUNTERS = (   # (metric, field of Counts, help)
    ("readahead_requests", "requests", "Readahead requests (sync: cache miss; async: "
     "PG_readahead marker hit; forced: fadvise/madvise/readahead(2))."),
    ("readahead_requested_pages", "req_pages", "Pages the readers asked for in those requests."),
    ("readahead_windows", "windows", "Readahead windows submitted for reading."),
    ("readahead_pages", "pages", "Pages in the submitted readahead windows."),
)


def readahead_families(snapshot: Optional[ReadaheadSnapshot], cap: Optional[SeriesCap],
                       stats: Optional[SelfStats],
                       name_of: Callable[[int], str] = device_name) -> List[Metric]:
    """readahead_*_total{kind, device}, and the window-size histogram. Devices
    beyond the cap are summed into device="other" (per kind)."""
    families = [CounterMetricFamily(name, doc, labels=["kind", "device"])
                for name, _, doc in READAHEAD_COUNTERS]
    hist = histogram_family("readahead_window_pages", "Readahead window sizes, in pages.",
                            snapshot.window_hist if snapshot is not None else None, 1,
                            WINDOW_LAST_SLOT)
    full = CounterMetricFamily("readahead_map_full",
                               "Readahead events whose device found the map full.")
    if snapshot is not None:
        named = [(kind, name_of(dev), counts) for (dev, kind), counts in snapshot.devices.items()]
        totals: Dict[str, int] = {}
        for _, name, counts in named:
            totals[name] = totals.get(name, 0) + counts.pages + counts.requests
        kept, _, folded = cap.fold(totals) if cap else (totals, 0, 0)
        cells: Dict[Tuple[str, str], Counts] = {}
        for kind, name, counts in named:
            key = (kind, name if name in kept else OTHER)
            cells[key] = cells.get(key, Counts()) + counts
        for family, (_, attr, _) in zip(families, READAHEAD_COUNTERS):
            for (kind, name), counts in sorted(cells.items(), key=lambda kv: (
                    KINDS.index(kv[0][0]), kv[0][1])):
                family.add_metric([kind, name], getattr(counts, attr))
        full.add_metric([], snapshot.overflow)
        if stats is not None:
            stats.record_folded("readahead", folded)
    return families + [hist, full]


# --------------------------------------------------------------- collectors

class ToolCollector:
    """Reads one tool's maps at scrape time. `source` is a loaded tool (or
    anything with snapshot() and program.probe_info()); reads are serialised,
    since concurrent scrapes would otherwise walk the same maps at once."""

    name = ""

    def __init__(self, source, stats: SelfStats, kernel: str, max_series: int):
        self.source = source
        self.stats = stats
        self.kernel = kernel
        self.cap = SeriesCap(max_series)
        self.probe = source.program.probe_info()
        self._lock = threading.Lock()
        stats.up[self.name] = True

    def families(self, snapshot) -> List[Metric]:
        raise NotImplementedError

    def describe(self) -> List[Metric]:
        return self.families(None) + [info_family(self.name, None, self.kernel)]

    def collect(self) -> Iterable[Metric]:
        start = time.perf_counter()
        with self._lock:
            try:
                snapshot = self.source.snapshot()
            except Exception as e:  # a failed read must not fail the scrape
                log.error("%s: map read failed: %s", self.name, e)
                self.stats.record_read(self.name, time.perf_counter() - start, ok=False)
                return []
            self.stats.record_read(self.name, time.perf_counter() - start, ok=True)
            families = self.families(snapshot)
        return families + [info_family(self.name, self.probe, self.kernel)]


class ExecveCollector(ToolCollector):
    name = "execve"

    def __init__(self, source, stats: SelfStats, kernel: str, max_series: int, by: str):
        self.by = by
        super().__init__(source, stats, kernel, max_series)

    def families(self, snapshot) -> List[Metric]:
        return execve_families(snapshot, self.cap, self.stats, self.by)


class VfsReadCollector(ToolCollector):
    name = "vfs_read"

    def families(self, snapshot) -> List[Metric]:
        return vfs_read_families(snapshot)


class ReadaheadCollector(ToolCollector):
    name = "readahead"

    def __init__(self, source, stats: SelfStats, kernel: str, max_series: int):
        super().__init__(source, stats, kernel, max_series)
        self._names: Dict[int, str] = {}

    def device(self, dev: int) -> str:
        if dev not in self._names:          # sysfs is read once per device
            self._names[dev] = device_name(dev)
        return self._names[dev]

    def families(self, snapshot) -> List[Metric]:
        return readahead_families(snapshot, self.cap, self.stats, self.device)
