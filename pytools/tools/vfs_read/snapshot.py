"""vfs_read: the snapshot of its maps (plain data) and the delta of two."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Dict, Optional

from ...deltas import diff
from ...hist import SLOTS, Log2Hist
from .plan import ProcKey


@dataclass(frozen=True)
class LatencySnapshot:
    hist: Log2Hist
    start_clashes: int = 0
    per_process: Optional[Dict[ProcKey, Log2Hist]] = None
    taken_at: float = 0.0
    elapsed: float = 0.0
    per_cgroup: Optional[Dict[int, Log2Hist]] = None    # by cgroup id (-P pod|container)
    per_kind: Optional[Dict[str, Log2Hist]] = None      # by kind of file (--by kind)
    kind: Optional[str] = None    # what is counted (kinds.kind_of); None: the kind is unknown


def delta(cur: LatencySnapshot, prev: LatencySnapshot) -> LatencySnapshot:
    procs = None if cur.per_process is None else diff(cur.per_process, prev.per_process or {})
    cgroups = None if cur.per_cgroup is None else diff(cur.per_cgroup, prev.per_cgroup or {})
    kinds = None if cur.per_kind is None else diff(cur.per_kind, prev.per_kind or {})
    return LatencySnapshot(cur.hist - prev.hist, cur.start_clashes - prev.start_clashes,
                           procs, cur.taken_at, cur.taken_at - prev.taken_at, cgroups, kinds,
                           cur.kind)


def cgroup_hist(value, unit_ns: int, unit_name: str) -> Log2Hist:
    """One cgroup's histogram from its map value (slots, then sum_ns), read
    as one buffer: a scrape at node scale reads hundreds of them."""
    words = struct.unpack(f"{SLOTS + 1}Q", bytes(value))
    return Log2Hist(words[:SLOTS], unit_ns, words[SLOTS], unit_name)
