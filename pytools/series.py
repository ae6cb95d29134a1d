"""Which label values get their own series, and what becomes of the rest.

The series cap (`--max-series`) admits label values, sticky, largest first,
and sums the others into one `~other` series (`fold`, the one place a
family folds); CgroupSeries turns values keyed by cgroup id into series by
pod or container and drops the series of gone pods (and their kernel map
entries, through the reader's `forget_cgroups`) once `--gone-after` has
passed. Pure but for the cgroup lookups CgroupSeries makes.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, Hashable, Iterable, List, Mapping, Tuple, TypeVar

from .deltas import Summable
from .hist import Log2Hist
from .workloads import labels

V = TypeVar("V", bound=Summable)
K = TypeVar("K", bound=Hashable)

# The label value of the series that sums what --max-series folds. No real
# value may equal it, whatever the key (a process may well be named
# "other"): a real value that starts with "~" is exported with one more "~"
# in front (label_value), so "~other" is only ever the fold.
OTHER = "~other"


def label_value(value: str) -> str:
    """A real label value as exported: never equal to OTHER."""
    return "~" + value if value.startswith("~") else value


# ------------------------------------------------------------ cardinality cap

class SeriesCap:
    """At most `limit` label values of one metric get their own series; the
    rest are summed into OTHER (`~other`).

    Membership is sticky: a value admitted stays admitted, and new values
    are admitted largest first while there is room. Since each value's count
    only grows and the set of values folded only grows, `~other` never goes
    down either: every exported counter stays monotonic."""

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError("the series limit must be at least 1")
        self.limit = limit
        self.kept: set = set()
        self.retired = None         # values of gone series that had been folded
        self._lock = threading.Lock()

    def retire(self, key: Hashable, value) -> None:
        """A series is gone (pod churn): free its place; if it had been
        folded, keep its value in the fold so the fold never goes down."""
        with self._lock:
            if key in self.kept:
                self.kept.discard(key)
            else:
                self.retired = value if self.retired is None else self.retired + value

    def fold(self, counts: Dict[K, int]) -> Tuple[Dict[K, int], int, int]:
        """(counts of admitted values, sum of the others, how many were folded)."""
        with self._lock:
            new = [k for k in counts if k not in self.kept]
            new.sort(key=lambda k: (-counts[k], str(k)))
            for key in new[:max(0, self.limit - len(self.kept))]:
                self.kept.add(key)
            kept = {k: v for k, v in counts.items() if k in self.kept}
        other = sum(v for k, v in counts.items() if k not in kept)
        return kept, other, len(counts) - len(kept)


def fold(cap: "SeriesCap", items: Iterable[Tuple[Tuple[str, ...], Tuple, V]],
         weight: Callable[[V], int]) -> Tuple[Dict[Tuple, V], int]:
    """Cells for a family whose first labels are capped: items are
    (capped labels, the other labels, value); values are summed per cell
    (label tuple), the capped labels of values beyond the cap replaced by
    OTHER each. Returns (cells, how many capped label sets were folded)."""
    items = list(items)
    totals: Dict[Tuple[str, ...], int] = {}
    for key, _, value in items:
        totals[key] = totals.get(key, 0) + weight(value)
    kept, _, folded = cap.fold(totals) if cap is not None else (totals, 0, 0)
    cells: Dict[Tuple, V] = {}
    for key, rest, value in items:
        cell = (key if key in kept else (OTHER,) * len(key)) + tuple(rest)
        cells[cell] = cells[cell] + value if cell in cells else value
    return cells, folded


# ------------------------------------------------------------- pod churn

class CgroupSeries:
    """Series labelled by workload (pod, container, service) from values
    keyed by cgroup id, and the cleanup pod churn needs.

    A series is gone once every cgroup id in it has no cgroup any more (its
    directory was removed) and its value has not changed for `grace`
    seconds: its kernel map entries are then deleted (`forget`) and it is no
    longer exported, so neither the maps nor the exposition grow with pod
    churn. Until the whole series is gone, none of its ids is deleted, so a
    series never goes down (a restarted container's old id stays while its
    pod lives). A gone series that had been folded into ~other leaves its
    value in the cap's retired sum, so ~other never goes down either."""

    def __init__(self, workloads, by: str, grace: float, forget: Callable[[List[int]], None],
                 clock: Callable[[], float] = time.monotonic):
        self.workloads = workloads
        self.by = by
        self.grace = grace
        self.forget = forget
        self.clock = clock
        self._labels = labels
        self.changed: Dict[Tuple, Tuple[object, float]] = {}   # label -> (total, since)
        self.forgotten = 0

    def label_of(self, cgroup_id: int) -> Tuple[str, ...]:
        return tuple(label_value(v) for v in self._labels(self.workloads.of(cgroup_id), self.by))

    def group(self, values: Mapping[int, Summable]) -> Dict[Tuple, Tuple[Summable, List[int]]]:
        """label -> (summed value, cgroup ids)."""
        out: Dict[Tuple, Tuple[Summable, List[int]]] = {}
        for cgroup_id, value in values.items():
            label = self.label_of(cgroup_id)
            if label in out:
                total, ids = out[label]
                out[label] = (total + value, ids + [cgroup_id])
            else:
                out[label] = (value, [cgroup_id])
        return out

    def sweep(self, grouped: Mapping[Tuple, Tuple[Any, List[int]]], cap: "SeriesCap",
              weight: Callable[[Any], int] = int) -> Dict[Tuple, Tuple[Any, List[int]]]:
        """Forget the series that are gone; return the rest."""
        now = self.clock()
        live = {}
        for label, (total, ids) in grouped.items():
            mark = weight(total)
            seen = self.changed.get(label)
            if seen is None or seen[0] != mark:
                self.changed[label] = (mark, now)
                live[label] = (total, ids)
                continue
            if now - seen[1] < self.grace or any(self.workloads.cgroups.alive(i) for i in ids):
                live[label] = (total, ids)
                continue
            self.forget(ids)
            self.forgotten += len(ids)
            del self.changed[label]
            cap.retire(label, total)
        for label in list(self.changed):
            if label not in grouped:
                del self.changed[label]
        return live


def pod_histograms(per_cgroup: Dict[int, Log2Hist], series, cap
                   ) -> List[Tuple[Tuple[str, str], Log2Hist]]:
    """Cgroup-keyed histograms as (namespace, pod) series, sorted: grouped
    and swept of gone pods by `series` (CgroupSeries), pods beyond the cap
    summed with the cap's retired ones into (~other, ~other)."""
    grouped = series.sweep(series.group(per_cgroup), cap, weight=lambda h: h.count)
    cells, _ = fold(cap, ((label[:2], (), hist) for label, (hist, _) in grouped.items()),
                    weight=lambda h: h.count)
    folded = cells.pop((OTHER, OTHER), None)
    other = cap.retired
    if folded is not None:
        other = folded if other is None else other + folded
    items = sorted(cells.items())
    if other is not None and other.count:
        items.append(((OTHER, OTHER), other))
    return items
