"""execve: the snapshot of its maps (plain data) and the delta of two."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict

from ...deltas import diff
from .plan import Key


@dataclass(frozen=True)
class ExecveSnapshot:
    """Counts since the program attached (or, after `delta`, over an interval):
    calls per key, and of those the calls that returned an error. A call
    that did not fail ran: the new program started (an exec does not return
    on success; its exit tracepoint sees 0)."""
    by: str
    counts: Dict[Key, int]             # calls
    overflow: int = 0                  # calls not keyed because the map was full
    failed: Dict[Key, int] = field(default_factory=dict)   # calls that returned < 0
    failed_overflow: int = 0
    taken_at: float = 0.0              # time.monotonic() of the read
    elapsed: float = 0.0               # seconds covered (set by delta)

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.overflow

    @property
    def total_failed(self) -> int:
        return sum(self.failed.values()) + self.failed_overflow

    @property
    def total_ran(self) -> int:
        return max(0, self.total - self.total_failed)

    def ran(self, key: Key) -> int:
        return max(0, self.counts.get(key, 0) - self.failed.get(key, 0))


def delta(cur: ExecveSnapshot, prev: ExecveSnapshot) -> ExecveSnapshot:
    """What happened between two cumulative snapshots (keys with no change dropped)."""
    return ExecveSnapshot(
        by=cur.by,
        counts=diff(cur.counts, prev.counts),
        overflow=cur.overflow - prev.overflow,
        failed=diff(cur.failed, prev.failed),
        failed_overflow=cur.failed_overflow - prev.failed_overflow,
        taken_at=cur.taken_at,
        elapsed=cur.taken_at - prev.taken_at,
    )
