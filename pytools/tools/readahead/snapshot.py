"""What readahead-stats reads from bpf/readahead.c: counts per device and
kind, per file and per cgroup, window sizes, and what became of the pages
read ahead (efficiency); and the interval between two readings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from ...deltas import Tally, diff
from ...hist import Log2Hist
from ...names import FileKey

KINDS = ("sync", "async", "forced")            # readahead kinds, in this order
EVENTS = ("sync_request", "async_request", "window")   # what a traced event is
EVENT_WINDOW = EVENTS.index("window")


@dataclass(frozen=True)
class Counts(Tally):
    requests: int = 0
    req_pages: int = 0
    windows: int = 0
    pages: int = 0


@dataclass(frozen=True)
class Usage(Tally):
    """What became of the pages read ahead (bpf/readahead.c, EFFICIENCY)."""
    added: int = 0       # pages read ahead and tracked
    used: int = 0        # of those, reached by a read or a page fault
    dropped: int = 0     # of those, left the cache unused
    untracked: int = 0   # read ahead, not tracked (map full)

    @property
    def unused_now(self) -> int:
        """Of a cumulative Usage: pages read ahead and still waiting for a use."""
        return max(0, self.added - self.used - self.dropped)


DevKind = Tuple[int, str]    # (kernel dev, kind)


@dataclass(frozen=True)
class ReadaheadSnapshot:
    devices: Dict[DevKind, Counts]
    files: Dict[FileKey, Counts]
    window_hist: Log2Hist
    overflow: int = 0
    taken_at: float = 0.0
    elapsed: float = 0.0
    # None: efficiency not measured. Per device: in a delta, the interval's
    # counts; unused_now holds each device's pages pending at its end.
    usage: Optional[Dict[int, Usage]] = None
    unused_now: Dict[int, int] = field(default_factory=dict)
    cgroups: Optional[Dict[Tuple[int, str], Counts]] = None   # (cgroup id, kind), --table pod
    efficiency_problem: Optional[str] = None   # why usage is not measured (None: it is)

    def by_cgroup(self) -> Dict[int, Counts]:
        out: Dict[int, Counts] = {}
        for (cgroup_id, _), c in (self.cgroups or {}).items():
            out[cgroup_id] = out.get(cgroup_id, Counts()) + c
        return out

    def total_usage(self) -> Optional[Usage]:
        if self.usage is None:
            return None
        total = Usage()
        for u in self.usage.values():
            total = total + u
        return total

    def by_kind(self) -> Dict[str, Counts]:
        out = {k: Counts() for k in KINDS}
        for (_, kind), c in self.devices.items():
            out[kind] = out[kind] + c
        return out

    def by_device(self) -> Dict[int, Counts]:
        out: Dict[int, Counts] = {}
        for (dev, _), c in self.devices.items():
            out[dev] = out.get(dev, Counts()) + c
        return out


def delta(cur: ReadaheadSnapshot, prev: ReadaheadSnapshot) -> ReadaheadSnapshot:
    usage = (None if cur.usage is None or prev.usage is None
             else diff(cur.usage, prev.usage))
    cgroups = None if cur.cgroups is None else diff(cur.cgroups, prev.cgroups or {})
    return ReadaheadSnapshot(diff(cur.devices, prev.devices), diff(cur.files, prev.files),
                             cur.window_hist - prev.window_hist, cur.overflow - prev.overflow,
                             cur.taken_at, cur.taken_at - prev.taken_at, usage,
                             cur.unused_now, cgroups, cur.efficiency_problem)
