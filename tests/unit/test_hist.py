import math

import pytest
from hypothesis import given, strategies as st

from pytools.hist import UNITS, Log2Hist, bars, slot_of, slot_range, summary


def test_slot_of_matches_bcc_log2l_plus_zero_slot():
    assert [slot_of(v) for v in (0, 1, 2, 3, 4, 7, 8, 1023, 1024)] == [0, 1, 2, 2, 3, 3, 4, 10, 11]


def test_slot_ranges():
    assert [slot_range(k) for k in range(4)] == [(0, 0), (1, 1), (2, 3), (4, 7)]


def test_from_values_in_usecs_truncates_like_the_kernel():
    h = Log2Hist.from_values([999, 1000, 2500, 20_000_000], unit_ns=1000, unit_name="usecs")
    assert h.slots[0] == 1 and h.slots[1] == 1 and h.slots[2] == 1
    assert h.slots[slot_of(20_000)] == 1 and slot_of(20_000) == 15
    assert h.count == 4 and h.total == 20_004_499


def test_mean_is_exact_from_the_sum():
    h = Log2Hist.from_values([1000, 3000], unit_ns=1000)
    assert h.mean_units() == 2.0


def test_percentile_interpolates_inside_the_slot():
    # 4 values in slot 3 = [4, 7]: spread over [4, 8)
    h = Log2Hist.from_values([4, 5, 6, 7])
    assert h.percentile(0.5) == 6.0
    assert h.percentile(1.0) == 8.0
    assert h.percentile(0.25) == 5.0


def test_percentile_crosses_slots():
    h = Log2Hist.from_values([1] * 9 + [100])
    assert h.percentile(0.5) == pytest.approx(1.5555, rel=1e-3)
    assert 64 <= h.percentile(0.99) <= 128


def test_percentile_of_empty_and_bad_q():
    assert Log2Hist((0,) * 64).percentile(0.5) is None
    with pytest.raises(ValueError):
        Log2Hist.from_values([1]).percentile(0)


def test_prometheus_buckets_have_exact_bounds_in_seconds():
    h = Log2Hist.from_values([0, 1500, 3000], unit_ns=1000)
    buckets = h.prometheus_buckets()
    # slot 0: 0..999 ns; slot 1: 1000..1999 ns; slot 2: 2000..3999 ns
    assert buckets[:3] == [(999e-9, 1), (1999e-9, 2), (3999e-9, 3)]
    assert buckets[-1] == (math.inf, 3)


def test_subtraction_gives_the_interval():
    a = Log2Hist.from_values([1, 2, 3])
    b = Log2Hist.from_values([1, 2, 3, 100, 100])
    d = b - a
    assert d.count == 2 and d.total == 200 and d.slots[slot_of(100)] == 2


def test_bars_show_used_slots_only_and_fit_80_columns():
    text = bars(Log2Hist.from_values([5, 5, 40], unit_ns=1, unit_name="nsecs"))
    lines = text.splitlines()
    assert lines[0].split() == ["nsecs", ":", "count", "distribution"]
    assert lines[1].split()[:5] == ["4", "->", "7", ":", "2"]
    assert lines[-1].split()[:5] == ["32", "->", "63", ":", "1"]
    assert len(lines) == 1 + 4
    assert lines[1].count("*") == 40 and lines[-1].count("*") == 20
    assert all(len(line) <= 80 for line in lines)
    assert lines[0].index(":") == lines[1].index(":")


def test_summary_line():
    h = Log2Hist.from_values([4000, 6000], unit_ns=1000, unit_name="usecs")
    assert summary(h, "usecs").startswith("count 2  avg 5.0  p50 ~")
    assert summary(h, "usecs").endswith("max in [4, 7] usecs")
    assert summary(Log2Hist((0,) * 64), "usecs") == "count 0"


values = st.lists(st.integers(min_value=0, max_value=10**12), max_size=200)


@given(values, st.sampled_from([1, 1000, 1_000_000]))
def test_buckets_are_cumulative_and_end_with_count(vals, unit):
    h = Log2Hist.from_values(vals, unit_ns=unit)
    buckets = h.prometheus_buckets()
    counts = [c for _, c in buckets]
    bounds = [b for b, _ in buckets]
    assert counts == sorted(counts) and counts[-1] == h.count == len(vals)
    assert bounds == sorted(bounds) and bounds[-1] == math.inf
    for v in vals:  # every value is counted in the first bucket whose bound holds it
        first = next(i for i, (le, _) in enumerate(buckets) if v / 1e9 <= le)
        assert first == 0 or v / 1e9 > buckets[first - 1][0]


@given(values.filter(bool), st.floats(min_value=0.01, max_value=1.0))
def test_percentile_lies_in_the_slot_of_a_real_value(vals, q):
    h = Log2Hist.from_values(vals)
    p = h.percentile(q)
    ordered = sorted(vals)
    exact = ordered[max(0, math.ceil(q * len(vals)) - 1)]
    lo, hi = slot_range(slot_of(exact))
    assert lo <= p <= hi + 1


@given(values, values)
def test_sub_undoes_add(a, b):
    ha, hb = Log2Hist.from_values(a), Log2Hist.from_values(b)
    assert (ha + hb) - hb == ha


# ------------------------------------------------- estimates and their slots

def three_us_waits(unit: str) -> Log2Hist:
    return Log2Hist.from_values([3_000] * 100, UNITS[unit], unit)


def test_a_3us_wait_is_never_shown_as_about_1ms():
    line = summary(three_us_waits("msecs"), "msecs")
    assert "p50 <1  p90 <1  p99 <1" in line and "max <1 msecs" in line
    assert "~1" not in line and "~0" not in line
    # in microseconds the same waits are ~3
    assert "p50 ~3" in summary(three_us_waits("usecs"), "usecs")


def test_json_carries_each_estimates_slot_in_seconds():
    from pytools.render import hist_json
    ms = hist_json(three_us_waits("msecs"))
    assert ms["estimates"] == {"p50": None, "p90": None, "p99": None}
    assert ms["estimate_slots_s"]["p50"] == [0.0, 0.001]
    assert ms["slots"] == [{"lo": 0, "hi": 0, "count": 100, "lo_s": 0.0, "hi_s": 0.001}]
    us = hist_json(three_us_waits("usecs"))
    assert us["estimates"]["p50"] == 3.0 and us["estimate_slots_s"]["p50"] == [2e-06, 4e-06]
    assert "estimate_slots_s" not in hist_json(Log2Hist.from_values([3, 5], 1, "pages"))


def test_a_shown_estimate_stays_inside_its_slot():
    # 1.9 ms sits in slot [1, 1] (1 to 2 ms): shown ~1, never ~2
    h = Log2Hist.from_values([1_900_000] * 10, UNITS["msecs"], "msecs")
    assert "p50 ~1 " in summary(h, "msecs") and "max in [1, 1]" in summary(h, "msecs")
