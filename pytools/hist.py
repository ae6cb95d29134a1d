"""The log2 histogram shared by every latency and size output.

Slot k of a histogram holds values v (in the histogram's unit, an integer,
truncated in the kernel) with  k = 0 if v == 0  else floor(log2(v)) + 1,
so slot 0 = {0}, slot 1 = {1}, slot 2 = [2, 3], slot k = [2^(k-1), 2^k - 1].
The kernel also keeps the exact sum of the untruncated values in
nanoseconds (or bytes, pages...), so averages and Prometheus `_sum` are exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

SLOTS = 64
NS_PER_SECOND = 1_000_000_000

UNITS = {"nsecs": 1, "usecs": 1_000, "msecs": 1_000_000}

# The exporter's slots (bpf/log2.h, NATIVE_EDGES): the buckets of a
# Prometheus native histogram at schema 0, upper bounds inclusive. Slot 0
# is the zero bucket, [0, 2^-20 s]; slot k >= 1 is native bucket index
# k - 20, (2^(k-21), 2^(k-20)] s. A Log2Hist whose unit_name is NATIVE
# has these slots: its classic `le` bounds and its native buckets are the
# same edges, so both expositions are exact. (Log2 slots of microseconds
# would straddle every native edge: 1 us is 2^-19.93 s.)
NATIVE = "native"
NATIVE_OFFSET = 20            # slot k's upper bound is 2^(k - NATIVE_OFFSET) s
NATIVE_ZERO_THRESHOLD = 2.0 ** -NATIVE_OFFSET


def slot_flags(unit: str) -> List[str]:
    """The -D flags that set a program's slot edges (bpf/log2.h)."""
    if unit == NATIVE:
        return [f"-DHIST_SLOTS={SLOTS}", "-DNATIVE_EDGES"]
    unit_ns = UNITS[unit]
    return [f"-DHIST_SLOTS={SLOTS}", f"-DUNIT_NS={unit_ns}",
            f"-DUNIT_BITS={unit_ns.bit_length()}"]


def native_slot(ns: int) -> int:
    """The slot NATIVE_EDGES puts `ns` in: the smallest k with
    ns <= 2^(k-20) s, in exact integer arithmetic (as the kernel's is)."""
    ns = min(ns, 1 << 52)
    k = 0
    while ns * (1 << NATIVE_OFFSET) > NS_PER_SECOND * (1 << k):
        k += 1
    return k


def slot_of(value: int) -> int:
    """The slot the kernel puts `value` (in units) in."""
    return 0 if value <= 0 else value.bit_length()


def slot_range(k: int) -> Tuple[int, int]:
    """Inclusive range of unit values in slot k."""
    if k == 0:
        return 0, 0
    return 1 << (k - 1), (1 << k) - 1


@dataclass(frozen=True)
class Log2Hist:
    slots: Tuple[int, ...]          # counts per slot, SLOTS long (or shorter)
    unit_ns: int = 1                 # nanoseconds per unit of a slot value (1 for sizes)
    total: int = 0                   # exact sum of raw values, in ns (or in the raw unit)
    unit_name: str = "nsecs"

    @classmethod
    def from_values(cls, values: Sequence[int], unit_ns: int = 1, unit_name: str = "nsecs",
                    ) -> "Log2Hist":
        """A histogram of raw values (ns) the way the kernel would build it."""
        slots = [0] * SLOTS
        for v in values:
            slots[native_slot(v) if unit_name == NATIVE else slot_of(v // unit_ns)] += 1
        return cls(tuple(slots), unit_ns, sum(values), unit_name)

    @property
    def count(self) -> int:
        return sum(self.slots)

    def _combine(self, other: "Log2Hist", sign: int) -> "Log2Hist":
        n = max(len(self.slots), len(other.slots))
        a = list(self.slots) + [0] * (n - len(self.slots))
        b = list(other.slots) + [0] * (n - len(other.slots))
        return Log2Hist(tuple(x + sign * y for x, y in zip(a, b, strict=True)), self.unit_ns,
                        self.total + sign * other.total, self.unit_name)

    def __bool__(self) -> bool:
        """True when it counted anything (as a Tally is when not zero)."""
        return self.count != 0

    def __sub__(self, other: "Log2Hist") -> "Log2Hist":
        return self._combine(other, -1)

    def __add__(self, other: "Log2Hist") -> "Log2Hist":
        return self._combine(other, 1)

    def nonzero_range(self) -> Optional[Tuple[int, int]]:
        used = [k for k, c in enumerate(self.slots) if c]
        return (used[0], used[-1]) if used else None

    def mean_units(self) -> Optional[float]:
        """Exact mean in units (from the kernel's sum)."""
        return self.total / self.unit_ns / self.count if self.count else None

    def percentile(self, q: float) -> Optional[float]:
        """Estimate of the q-quantile (0 < q <= 1) in units, interpolated
        linearly inside the slot that holds it. An estimate: the kernel only
        knows which slot a value fell in."""
        if not 0 < q <= 1:
            raise ValueError("q must be in (0, 1]")
        n = self.count
        if n == 0:
            return None
        rank = q * n
        seen = 0
        for k, c in enumerate(self.slots):
            if c and seen + c >= rank:
                lo, hi = slot_range(k)
                # values in slot k are spread over [lo, hi + 1)
                return lo + (hi + 1 - lo) * (rank - seen) / c
            seen += c
        raise AssertionError("unreachable: rank <= count")

    def quantile_slot(self, q: float) -> Optional[int]:
        """The slot that holds the q-quantile: all an estimate can claim."""
        if self.count == 0:
            return None
        rank, seen = q * self.count, 0
        for k, c in enumerate(self.slots):
            if c and seen + c >= rank:
                return k
            seen += c
        raise AssertionError("unreachable: rank <= count")

    def slot_seconds(self, k: int) -> Tuple[float, float]:
        """Slot k's bounds in seconds, [lo, hi): what the kernel's truncated
        values in it were before truncation (slot 0 of msecs: [0, 0.001))."""
        lo, hi = slot_range(k)
        return lo * self.unit_ns / NS_PER_SECOND, (hi + 1) * self.unit_ns / NS_PER_SECOND

    @property
    def timed(self) -> bool:
        """Whether its values are durations (slot 0 then holds everything
        under one unit, not exactly 0)."""
        return self.unit_name in UNITS

    def estimate(self, q: float) -> Optional[float]:
        """percentile(q) for display: never past the inclusive top of the
        highest used slot, so an estimate shown beside "max in [16, 31]"
        is at most 31."""
        p, used = self.percentile(q), self.nonzero_range()
        if p is None or used is None:
            return None
        return min(p, slot_range(used[1])[1])

    def prometheus_buckets(self, base: int = NS_PER_SECOND,
                           last_slot: Optional[int] = None) -> List[Tuple[float, int]]:
        """Cumulative (le, count) pairs in base units, ending with +Inf.

        Slot k holds unit values up to 2^k - 1, i.e. raw values (ns, pages)
        up to 2^k * unit_ns - 1, so that divided by `base` (ns per second for
        latencies, 1 for counts) is its exact upper bound. Buckets run to
        `last_slot` when given (a fixed set, as an exporter wants: counts in
        later slots appear only in +Inf), else to the last used slot."""
        if last_slot is None:
            last_slot = (self.nonzero_range() or (0, 0))[1]
        out = []
        running = 0
        for k in range(last_slot + 1):
            running += self.slots[k] if k < len(self.slots) else 0
            out.append((self.upper_bound(k, base), running))
        out.append((math.inf, self.count))
        return out

    def upper_bound(self, k: int, base: int = NS_PER_SECOND) -> float:
        """Slot k's upper bound in base units (inclusive): 2^(k-20) s for
        NATIVE slots (whose base is seconds), else the last raw value in it."""
        if self.unit_name == NATIVE:
            assert base == NS_PER_SECOND, "native slots are in seconds"
            return math.ldexp(1.0, k - NATIVE_OFFSET)
        return ((1 << k) * self.unit_ns - 1) / base

    def native_buckets(self) -> Tuple[int, List[Tuple[int, int]]]:
        """For the native exposition of NATIVE slots: (zero bucket count,
        [(native bucket index, count)] of the used buckets, in order)."""
        assert self.unit_name == NATIVE, "only NATIVE slots are native buckets"
        return (self.slots[0] if self.slots else 0,
                [(k - NATIVE_OFFSET, c) for k, c in enumerate(self.slots) if k and c])


def bars(hist: Log2Hist, label: str = "", width: int = 40) -> str:
    """BCC-style text histogram over the used slots."""
    rng = hist.nonzero_range()
    name = label or hist.unit_name
    header = f"{name:>23} : count     distribution"
    if rng is None:
        return header + "\n" + f"{'(no events)':>23}"
    peak = max(hist.slots)
    lines = [header]
    for k in range(rng[0], rng[1] + 1):
        lo, hi = slot_range(k)
        c = hist.slots[k]
        stars = int(round(c * width / peak)) if peak else 0
        if c and stars == 0:
            stars = 1
        lines.append(f"{lo:>10} -> {hi:<10}: {c:<9} |{'*' * stars:<{width}}|")
    return "\n".join(lines)


def estimate_text(hist: Log2Hist, q: float) -> str:
    """An estimate as shown: never more than its slot says. In slot 0 of a
    duration (under one unit) "<1"; else "~N" with N rounded down, so it
    stays inside the slot's [lo, hi] (1.9 in slot [1, 1] is "~1")."""
    if hist.timed and hist.quantile_slot(q) == 0:
        return "<1"
    estimate = hist.estimate(q)
    if estimate is None:
        raise ValueError("an empty histogram has no estimate")
    return f"~{math.floor(estimate)}"


def max_text(hist: Log2Hist) -> str:
    used = hist.nonzero_range()
    if used is None:
        raise ValueError("an empty histogram has no max")
    k = used[1]
    if hist.timed and k == 0:
        return "max <1"
    lo, hi = slot_range(k)
    return f"max in [{lo}, {hi}]"


def summary(hist: Log2Hist, unit_label: str, width: int = 80) -> str:
    """Under a histogram: count, exact avg, estimated percentiles, max slot;
    on one line where it fits in `width`, else on as few as it takes."""
    if hist.count == 0:
        return "count 0"
    parts = [f"count {hist.count}", f"avg {hist.mean_units():.1f}",
             *(f"p{q} {estimate_text(hist, q / 100)}" for q in (50, 90, 99)),
             f"{max_text(hist)} {unit_label}"]
    lines = [parts[0]]
    for part in parts[1:]:
        if len(lines[-1]) + 2 + len(part) <= width:
            lines[-1] += "  " + part
        else:
            lines.append(part)
    return "\n".join(lines)
