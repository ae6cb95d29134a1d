"""Collectors against fixed snapshots, read back through a CollectorRegistry."""

import math

import pytest
from hypothesis import given, strategies as st
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pytools.self_metrics import SelfCollector, SelfStats

from pytools.series import OTHER, SeriesCap, label_value
from pytools.hist import SLOTS, Log2Hist
from pytools.tools.execve.snapshot import ExecveSnapshot
from pytools.names import kernel_dev
from pytools.tools.readahead.metrics import readahead_families
from pytools.tools.readahead.snapshot import Counts, ReadaheadSnapshot
from pytools.tools.vfs_read.snapshot import LatencySnapshot

from .sources import (ExecveCollector, FixedSource, ReadaheadCollector, StubCollector,
                      VfsReadCollector, registry_with)

KERNEL = "6.18.0-test"


def latency(values_ns):
    return LatencySnapshot(Log2Hist.from_values(values_ns, 1000, "usecs"), start_clashes=2)


# ------------------------------------------------------------------ vfs_read

def test_latency_histogram_buckets_are_cumulative_exact_and_end_in_inf():
    stats = SelfStats()
    values = [500, 1_500, 1_999, 3_000, 40_000_000]          # ns
    registry = registry_with(VfsReadCollector(FixedSource(latency(values)), stats, KERNEL, 100))
    get = registry.get_sample_value
    # slot 0 = 0 us (up to 999 ns), slot 1 = 1 us (up to 1999 ns), slot 2 = 2-3 us
    assert get("vfs_read_latency_seconds_bucket", {"le": "9.99e-07"}) == 1
    assert get("vfs_read_latency_seconds_bucket", {"le": "1.999e-06"}) == 3
    assert get("vfs_read_latency_seconds_bucket", {"le": "3.999e-06"}) == 4
    assert get("vfs_read_latency_seconds_bucket", {"le": "0.032767999"}) == 4
    assert get("vfs_read_latency_seconds_bucket", {"le": "0.065535999"}) == 5
    assert get("vfs_read_latency_seconds_bucket", {"le": "+Inf"}) == 5
    assert get("vfs_read_latency_seconds_count") == 5
    assert get("vfs_read_latency_seconds_sum") == pytest.approx(sum(values) / 1e9, abs=1e-12)
    assert get("vfs_read_latency_lost_total") == 2
    assert get("vfs_read_probe_info", {"mode": "tracepoint", "probe": "via tracepoints",
                                       "kernel": KERNEL}) == 1


def test_bucket_set_is_fixed_whatever_the_data():
    empty = LatencySnapshot(Log2Hist((0,) * SLOTS, 1000, 0, "usecs"))
    slow = latency([10**12])                                    # 1000 s: past the last bound
    names = []
    for snap in (empty, slow):
        text = generate_latest(registry_with(
            VfsReadCollector(FixedSource(snap), SelfStats(), KERNEL, 10))).decode()
        names.append([line.split(" ")[0] for line in text.splitlines()
                      if line.startswith("vfs_read_latency_seconds_bucket")])
    assert names[0] == names[1] and len(names[0]) == 29         # slots 0..27 and +Inf
    registry = registry_with(VfsReadCollector(FixedSource(slow), SelfStats(), KERNEL, 10))
    assert registry.get_sample_value("vfs_read_latency_seconds_bucket",
                                     {"le": "134.217727999"}) == 0
    assert registry.get_sample_value("vfs_read_latency_seconds_bucket", {"le": "+Inf"}) == 1


@given(st.lists(st.integers(min_value=0, max_value=10**11), max_size=50))
def test_every_value_is_at_or_below_its_bucket_bound(values):
    snap = latency(values)
    family = VfsReadCollector(FixedSource(snap), SelfStats(), KERNEL, 10).collect()[0]
    buckets = [(float(s.labels["le"]), s.value) for s in family.samples
               if s.name.endswith("_bucket")]
    for le, cumulative in buckets:
        assert cumulative == sum(1 for v in values if v / 1e9 <= le)
    assert buckets[-1] == (math.inf, len(values))


# -------------------------------------------------------------------- execve

def execve(counts, overflow=0):
    return ExecveSnapshot("comm", counts, overflow)


def test_execve_counts_by_key_with_kernel_overflow_in_other():
    stats = SelfStats()
    registry = registry_with(ExecveCollector(FixedSource(execve({"sh": 5, "ls": 2}, 3)),
                                             stats, KERNEL, 10, "comm"))
    get = registry.get_sample_value
    assert get("execve_total", {"comm": "sh"}) == 5
    assert get("execve_total", {"comm": "ls"}) == 2
    assert get("execve_total", {"comm": "~other"}) == 3


def test_execve_failed_total_has_the_same_keys_and_folds_alike():
    snap = ExecveSnapshot("comm", {"env": 9, "sh": 5, "ls": 1}, 2,
                          failed={"env": 6, "ls": 1}, failed_overflow=1)
    registry = registry_with(ExecveCollector(FixedSource(snap), SelfStats(), KERNEL, 2, "comm"))
    get = registry.get_sample_value
    assert get("execve_total", {"comm": "env"}) == 9        # calls: the old meaning
    assert get("execve_failed_total", {"comm": "env"}) == 6
    assert get("execve_failed_total", {"comm": "sh"}) == 0  # ran: 5 - 0
    assert get("execve_total", {"comm": "~other"}) == 3     # ls folded, + 2 not keyed
    assert get("execve_failed_total", {"comm": "~other"}) == 2
    assert get("execve_failed_total", {"comm": "ls"}) is None


def test_cap_folds_the_smallest_new_keys_into_other_and_counts_them():
    stats = SelfStats()
    collector = ExecveCollector(FixedSource(execve({"a": 9, "b": 5, "c": 1, "d": 1})),
                                stats, KERNEL, 2, "comm")
    registry = registry_with(collector, SelfCollector(stats))
    get = registry.get_sample_value
    assert get("execve_total", {"comm": "a"}) == 9 and get("execve_total", {"comm": "b"}) == 5
    assert get("execve_total", {"comm": "c"}) is None
    assert get("execve_total", {"comm": "~other"}) == 2
    assert get("bpf_exporter_folded_series", {"metric": "execve_total"}) == 2


@pytest.mark.parametrize("real", ["other", "~other", "~", "~~other"])
def test_a_real_value_never_collides_with_the_fold(real):
    collector = ExecveCollector(FixedSource(execve({real: 9, "a": 2, "b": 3}, 1)),
                                SelfStats(), KERNEL, 1, "comm")
    text = generate_latest(registry_with(collector)).decode()
    samples = [(s.labels["comm"], s.value) for f in text_string_to_metric_families(text)
               for s in f.samples if s.name == "execve_total"]
    assert len({label for label, _ in samples}) == len(samples)     # no duplicate series
    assert dict(samples) == {label_value(real): 9, OTHER: 6}
    assert label_value(real) != OTHER and label_value(real).lstrip("~") == real.lstrip("~")


def test_cap_membership_is_sticky_so_other_never_decreases():
    # "c" outgrows "b" later: b keeps its series, c stays in other.
    snaps = [execve({"a": 9, "b": 5}), execve({"a": 9, "b": 5, "c": 50}),
             execve({"a": 9, "b": 6, "c": 80, "d": 1})]
    collector = ExecveCollector(FixedSource(*snaps), SelfStats(), KERNEL, 2, "comm")
    registry = registry_with(collector)
    others = []
    for _ in snaps:
        others.append(registry.get_sample_value("execve_total", {"comm": "~other"}) or 0)
    assert others == [0, 50, 81]
    assert registry.get_sample_value("execve_total", {"comm": "b"}) == 6


@given(st.lists(st.dictionaries(st.sampled_from("abcdefgh"), st.integers(0, 5)), min_size=1,
                max_size=6), st.integers(1, 4))
def test_every_series_is_monotonic_when_the_kernel_counts_are(increments, limit):
    cap = SeriesCap(limit)
    counts, previous = {}, {}
    for inc in increments:
        for k, v in inc.items():
            counts[k] = counts.get(k, 0) + v
        kept, other, folded = cap.fold(dict(counts))
        series = dict(kept, other=other)
        assert len(kept) <= limit and folded == len(counts) - len(kept)
        assert sum(series.values()) == sum(counts.values())
        for key, value in previous.items():
            assert series.get(key, 0) >= value
        previous = series


# ----------------------------------------------------------------- readahead

SDA = kernel_dev(8, 0)
VDB = kernel_dev(254, 16)


def readahead_snapshot():
    hist = Log2Hist.from_values([32, 32, 64, 3], 1, "pages")
    return ReadaheadSnapshot(
        devices={(SDA, "sync"): Counts(2, 8, 2, 64), (SDA, "async"): Counts(1, 32, 1, 64),
                 (VDB, "sync"): Counts(1, 3, 1, 3)},
        files={}, window_hist=hist, overflow=1)


def names(dev):
    return {SDA: "sda", VDB: "vdb"}[dev]


def test_readahead_counters_by_kind_and_device_and_window_histogram():
    registry = registry_with(_ReadaheadAt(names)(readahead_snapshot()))
    get = registry.get_sample_value
    assert get("readahead_requests_total", {"kind": "sync", "device": "sda"}) == 2
    assert get("readahead_requested_pages_total", {"kind": "async", "device": "sda"}) == 32
    assert get("readahead_windows_total", {"kind": "sync", "device": "vdb"}) == 1
    assert get("readahead_pages_total", {"kind": "async", "device": "sda"}) == 64
    assert get("readahead_window_pages_bucket", {"le": "3.0"}) == 1      # slot 2: 2-3 pages
    assert get("readahead_window_pages_bucket", {"le": "63.0"}) == 3     # 32, 32 in slot 6
    assert get("readahead_window_pages_bucket", {"le": "127.0"}) == 4
    assert get("readahead_window_pages_bucket", {"le": "+Inf"}) == 4
    assert get("readahead_window_pages_sum") == 131
    assert get("readahead_map_full_total") == 1


def test_readahead_devices_beyond_the_cap_go_to_other():
    collector = StubCollector(max_series=1, names=names)
    families = readahead_families(readahead_snapshot(), collector)
    pages = {tuple(s.labels.values()): s.value for s in families[3].samples}
    assert pages == {("sync", "sda"): 64, ("async", "sda"): 64, ("sync", "~other"): 3}
    assert collector.stats.folded == {"readahead": 1}


class _ReadaheadAt:
    """A ReadaheadCollector whose device names come from a table, not sysfs."""

    def __init__(self, name_of):
        self.name_of = name_of

    def __call__(self, snapshot):
        collector = ReadaheadCollector(FixedSource(snapshot), SelfStats(), KERNEL, 10)
        collector.device = self.name_of
        return collector


# ----------------------------------------------------------- self and errors

def test_describe_reads_no_map_and_names_what_collect_yields():
    source = FixedSource(execve({"sh": 1}))
    collector = ExecveCollector(source, SelfStats(), KERNEL, 10, "comm")
    described = [m.name for m in collector.describe()]
    registry_with(collector)
    assert source.reads == 0
    assert described == [m.name for m in collector.collect()]


def test_a_failed_map_read_leaves_that_collector_out_and_counts_the_error():
    stats = SelfStats()
    broken = FixedSource()
    registry = registry_with(ExecveCollector(broken, stats, KERNEL, 10, "comm"),
                             VfsReadCollector(FixedSource(latency([1000])), stats, KERNEL, 10),
                             SelfCollector(stats))
    # One scrape (each get_sample_value is a scrape of its own).
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in registry.collect() for s in family.samples}
    assert not any(name == "execve_total" for name, _ in samples)
    assert samples[("vfs_read_latency_seconds_count", ())] == 1
    assert samples[("bpf_exporter_map_read_errors_total", (("collector", "execve"),))] == 1
    get = registry.get_sample_value
    assert get("bpf_exporter_map_read_errors_total", {"collector": "execve"}) == 2
    assert get("bpf_exporter_map_read_errors_total", {"collector": "vfs_read"}) == 0
    assert get("bpf_exporter_collector_up", {"collector": "execve"}) == 1


def test_exposition_parses_back():
    stats = SelfStats()
    registry = registry_with(
        ExecveCollector(FixedSource(execve({'we"ird\\name\n': 1})), stats, KERNEL, 10, "comm"),
        VfsReadCollector(FixedSource(latency([5000])), stats, KERNEL, 10),
        SelfCollector(stats))
    text = generate_latest(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["execve"].samples[0].labels == {"comm": 'we"ird\\name\n'}
    assert families["vfs_read_latency_seconds"].type == "histogram"
    assert families["bpf_exporter_collector_up"].type == "gauge"


# ------------------------------------------------------------------ pod churn

class FakeWorkloads:
    """cgroup id -> (namespace, pod, container), and which ids still exist."""

    def __init__(self, pods):
        from pytools.workloads import Workload
        self.pods = pods
        self.alive_ids = set(pods)
        self.cgroups = self
        self.Workload = Workload

    def of(self, cgroup_id):
        ns, pod, container = self.pods[cgroup_id]
        return self.Workload(f"/kubepods/pod{cgroup_id}", pod_uid=f"uid-{pod}",
                             namespace=ns, pod=pod, container=container)

    def alive(self, cgroup_id):
        return cgroup_id in self.alive_ids


def churn(pods, grace=10):
    from pytools.series import CgroupSeries
    workloads, forgotten, clock = FakeWorkloads(pods), [], [0.0]
    series = CgroupSeries(workloads, "container", grace, forgotten.extend, lambda: clock[0])
    return series, workloads, forgotten, clock


def test_a_gone_pod_is_forgotten_after_the_grace_and_frees_its_place():
    series, workloads, forgotten, clock = churn({1: ("ns", "a", "app"), 2: ("ns", "b", "app")})
    cap = SeriesCap(2)
    values = {1: 5, 2: 7}
    live = series.sweep(series.group(values), cap)
    cap.fold({k: v for k, (v, _) in live.items()})
    assert set(live) == {("ns", "a", "app"), ("ns", "b", "app")}
    workloads.alive_ids.discard(2)                  # pod b deleted
    clock[0] = 5
    assert len(series.sweep(series.group(values), cap)) == 2 and not forgotten   # in grace
    clock[0] = 11
    live = series.sweep(series.group(values), cap)
    assert set(live) == {("ns", "a", "app")} and forgotten == [2]
    assert ("ns", "b", "app") not in cap.kept and cap.retired is None


def test_a_restarted_container_keeps_its_old_id_while_the_series_lives():
    """Old and new ids share a series: the old one is not deleted (the
    series would go down) until every id of the series is gone."""
    series, workloads, forgotten, clock = churn({1: ("ns", "a", "app"), 3: ("ns", "a", "app")})
    cap = SeriesCap(5)
    workloads.alive_ids.discard(1)                  # the first container exited
    for t in (0, 50, 100):
        clock[0] = t
        live = series.sweep(series.group({1: 5, 3: 2 + t}), cap)
        assert live[("ns", "a", "app")][0] == 7 + t
    assert not forgotten


def test_a_gone_folded_pod_leaves_its_value_in_the_fold():
    series, workloads, forgotten, clock = churn({1: ("ns", "a", "x"), 2: ("ns", "b", "x")})
    cap = SeriesCap(1)
    live = series.sweep(series.group({1: 9, 2: 4}), cap)
    kept, other, _ = cap.fold({k: v for k, (v, _) in live.items()})
    assert list(kept) == [("ns", "a", "x")] and other == 4
    workloads.alive_ids.discard(2)
    clock[0] = 100
    series.sweep(series.group({1: 9, 2: 4}), cap)    # forgotten: the kernel drops id 2
    clock[0] = 200
    live = series.sweep(series.group({1: 9}), cap)
    kept, other, _ = cap.fold({k: v for k, (v, _) in live.items()})
    assert forgotten == [2] and other + cap.retired == 4       # ~other did not go down
