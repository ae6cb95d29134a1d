import math

import pytest
from hypothesis import given, strategies as st

from pytools.hist import Log2Hist, bars, slot_of, slot_range, summary


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
