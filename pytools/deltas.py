"""Differences of cumulative snapshots: maps are never cleared, so an
interval is what changed between two reads."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, ClassVar, Dict, List, Mapping, Protocol


class Summable(Protocol):
    """What values summed per key are: int, Log2Hist, a Tally."""

    def __add__(self, other: Any) -> Any: ...


def diff(cur: Mapping, prev: Mapping) -> dict:
    """cur - prev per key (a key new in cur is its whole value); keys whose
    difference is zero (false: 0, an empty Tally or Log2Hist) are left out."""
    out = {}
    for key, value in cur.items():
        d = value - prev[key] if key in prev else value
        if d:
            out[key] = d
    return out


class Tally:
    """Field-wise + and - for frozen dataclasses of counters; true when any
    counter is not zero."""

    __dataclass_fields__: ClassVar[Dict[str, Any]]     # each subclass is a dataclass

    def _values(self) -> List[int]:
        return [getattr(self, f.name) for f in fields(self)]

    def __add__(self, o):
        return type(self)(*(a + b for a, b in zip(self._values(), o._values(), strict=True)))

    def __sub__(self, o):
        return type(self)(*(a - b for a, b in zip(self._values(), o._values(), strict=True)))

    def __bool__(self) -> bool:
        return any(self._values())
