"""biolatency: the snapshot of its maps (plain data) and the delta of two."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

from ...deltas import diff
from ...hist import Log2Hist
from .plan import HistKey


@dataclass(frozen=True)
class BioSnapshot:
    hists: Dict[HistKey, Log2Hist]
    unmatched: int = 0        # completions whose start was not seen
    untimed: int = 0          # data-less requests (flushes), not timed
    map_full: int = 0         # completions not counted: the histogram map was full
    taken_at: float = 0.0
    elapsed: float = 0.0

    def total(self) -> Optional[Log2Hist]:
        hists = list(self.hists.values())
        if not hists:
            return None
        total = hists[0]
        for h in hists[1:]:
            total = total + h
        return total


def delta(cur: BioSnapshot, prev: BioSnapshot) -> BioSnapshot:
    return BioSnapshot(diff(cur.hists, prev.hists), cur.unmatched - prev.unmatched,
                       cur.untimed - prev.untimed,
                       cur.map_full - prev.map_full, cur.taken_at,
                       cur.taken_at - prev.taken_at)
