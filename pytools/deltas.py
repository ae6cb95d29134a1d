"""Differences of cumulative snapshots: maps are never cleared, so an
interval is what changed between two reads."""

from __future__ import annotations

from dataclasses import fields
from typing import List, Mapping


def diff(cur: Mapping, prev: Mapping, zero=0) -> dict:
    """cur - prev per key; keys whose difference is zero are left out."""
    out = {}
    for key, value in cur.items():
        d = value - prev.get(key, zero)
        if d:
            out[key] = d
    return out


class Tally:
    """Field-wise + and - for frozen dataclasses of counters; true when any
    counter is not zero."""

    def _values(self) -> List[int]:
        return [getattr(self, f.name) for f in fields(self)]

    def __add__(self, o):
        return type(self)(*(a + b for a, b in zip(self._values(), o._values())))

    def __sub__(self, o):
        return type(self)(*(a - b for a, b in zip(self._values(), o._values())))

    def __bool__(self) -> bool:
        return any(self._values())
