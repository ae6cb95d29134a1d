"""runqlat: the snapshot of its maps (plain data) and the delta of two."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

from ...deltas import diff
from ...hist import Log2Hist


@dataclass(frozen=True)
class RunqSnapshot:
    hist: Log2Hist
    per_key: Optional[Dict[int, Log2Hist]] = None   # tgid, tid or cgroup id -> waits
    unattributed: int = 0     # waits of tasks whose process or cgroup was not known
    map_full: int = 0         # waits not kept per key: the key maps were full
    lost: int = 0             # waits not timed: another thread took their start slot
    taken_at: float = 0.0
    elapsed: float = 0.0
    # tgid or tid -> its name at its last wait (the kernel's), else /proc's
    names: Dict[int, str] = field(default_factory=dict)


def delta(cur: RunqSnapshot, prev: RunqSnapshot) -> RunqSnapshot:
    keys = None if cur.per_key is None else diff(cur.per_key, prev.per_key or {})
    return RunqSnapshot(cur.hist - prev.hist, keys, cur.unattributed - prev.unattributed,
                        cur.map_full - prev.map_full, cur.lost - prev.lost, cur.taken_at,
                        cur.taken_at - prev.taken_at, cur.names)

