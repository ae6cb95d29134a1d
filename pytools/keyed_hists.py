"""Log2 histograms kept per key (a process, a thread, a cgroup, a disk), as
the latency tools (runqlat, vfs_read, biolatency) read, group, order and
export them: one place for what the three share.

The exporter's readers count on native histogram edges (hist.NATIVE):
slot k's upper bound is 2^(k - 20) s, up to slot EXPORTER_LAST_SLOT
(2^7 = 128 s); slower ones are counted in +Inf only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Hashable, List, Optional, Tuple, TypeVar

from .hist import NATIVE, NS_PER_SECOND, SLOTS, Log2Hist
from .workloads import GROUPINGS, WORKLOAD_KINDS, describe, group_by_workload
from .series import pod_histograms

EXPORTER_UNIT = NATIVE       # the exporter's readers count on native histogram edges
EXPORTER_LAST_SLOT = 27      # the last finite bucket: 2^(27 - 20) s = 128 s
__all__ = ["EXPORTER_UNIT", "EXPORTER_LAST_SLOT", "WORKLOAD_KINDS", "KeyedHistOptions",
           "key_hists", "busiest", "workload_groups", "latency_family"]



@dataclass(frozen=True)
class KeyedHistOptions:
    """The options of a tool whose histograms are kept per process, thread or
    workload (runqlat, vfs_read): the unit, the process filters, what a
    histogram is kept per (the tool's --by choices, or None), how many show."""
    unit: str = "usecs"
    pid: Optional[int] = None
    comm: Optional[str] = None
    by: Optional[str] = None
    top: int = 10
    histograms: bool = False


K = TypeVar("K", bound=Hashable)
Group = Tuple[str, dict, Log2Hist]     # (what a row says, its labels, its histogram)


def key_hists(slot_counts: Dict[Tuple[K, int], int], sums: Dict[K, int], unit_ns: int,
              unit_name: str) -> Dict[K, Log2Hist]:
    """Per-key histograms from a flat (key, slot) -> count map and the
    keys' sums of nanoseconds (a slot past the last counts in the last)."""
    slots: Dict[K, List[int]] = {}
    for (key, slot), count in slot_counts.items():
        slots.setdefault(key, [0] * SLOTS)[min(slot, SLOTS - 1)] += count
    return {key: Log2Hist(tuple(s), unit_ns, sums.get(key, 0), unit_name)
            for key, s in slots.items()}


def busiest(hists: Dict[K, Log2Hist]) -> List[Tuple[K, Log2Hist]]:
    """Most events first, then by key: the order every grouped output shows."""
    return sorted(hists.items(), key=lambda kv: (-kv[1].count, kv[0]))


def workload_groups(per_cgroup: Dict[int, Log2Hist], workloads, by: str) -> List[Group]:
    """Cgroup-keyed histograms summed per pod or container (`by`), busiest
    first, each with its labels (pytools.workloads.GROUPINGS)."""
    grouped = group_by_workload(per_cgroup, workloads, by)
    return [(describe(key, by), dict(zip(GROUPINGS[by], key, strict=True)), h)
            for key, h in busiest(grouped)]


def latency_family(name: str, doc: str, hist: Optional[Log2Hist],
                   per_cgroup: Optional[Dict[int, Log2Hist]], collector) -> list:
    """`name` in seconds: one unlabelled histogram, or with the collector's
    by=pod one per (namespace, pod), pods beyond the cap in ~other. A None
    per_cgroup with by=pod (describe()) gives the family empty."""
    # prometheus_client is the exporter's alone: the commands start without it.
    from .families import histogram_family, labelled_histogram_family
    if collector.opts.get("by") != "pod":
        return [histogram_family(name, doc, hist, NS_PER_SECOND, EXPORTER_LAST_SLOT)]
    items = (pod_histograms(per_cgroup or {}, collector.cgroup_series("pod"), collector.cap)
             if hist is not None else [])
    return [labelled_histogram_family(name, doc, ["namespace", "pod"], items, NS_PER_SECOND,
                                      EXPORTER_LAST_SLOT, collector.render_cache(name))]

