"""pytools.exposition against prometheus_client's generate_latest: the same
samples, HELP and TYPE for every family the collectors make, hostile label
values included."""

import math

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, InfoMetricFamily)
from prometheus_client.parser import text_string_to_metric_families

from pytools.self_metrics import SelfCollector, SelfStats
from pytools.exposition import number, text_format
from pytools.hist import Log2Hist
from pytools.tools.execve.snapshot import ExecveSnapshot
from pytools.tools.vfs_read.snapshot import LatencySnapshot

from .sources import ExecveCollector, FixedSource, VfsReadCollector, tool_collector


class Fixed:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families


def parsed(text):
    """Every family and sample; the map read's own duration differs between
    the two renders' collects, so only its labels are compared."""
    return [(f.name, f.type, f.documentation,
             sorted((s.name, tuple(sorted(s.labels.items())),
                     None if f.name == "bpf_exporter_map_read_duration_seconds" else s.value)
                    for s in f.samples))
            for f in text_string_to_metric_families(text)]


def same_as_client(*collectors):
    registry = CollectorRegistry(auto_describe=False)
    for c in collectors:
        registry.register(c)
    ours = text_format(registry.collect()).decode()
    theirs = generate_latest(registry).decode()
    assert parsed(ours) == parsed(theirs)
    return ours


def test_the_tools_families_render_as_the_client_renders_them():
    stats = SelfStats()
    hist = Log2Hist.from_values([1000, 5000, 10**9], 1000, "usecs")
    same_as_client(
        ExecveCollector(FixedSource(ExecveSnapshot("comm", {"sh": 3, 'q"u\\o\nx': 2}, 1)),
                        stats, "6.1", 1, "comm"),
        VfsReadCollector(FixedSource(LatencySnapshot(hist)), stats, "6.1", 10),
        SelfCollector(stats))


def test_hostile_values_and_every_type():
    counter = CounterMetricFamily("c", 'help with \\ and\nnewline', labels=["a", "b"])
    counter.add_metric(['"', "é\\n"], 5)
    counter.add_metric(["x", ""], 1e20)
    gauge = GaugeMetricFamily("g", "gauge", labels=["z"])
    for v in (math.inf, -math.inf, 0.1, -3):
        gauge.add_metric([str(v)], v)
    hist = HistogramMetricFamily("h", "hist", labels=["k"])
    hist.add_metric(["v"], [("0.5", 1), ("+Inf", 3)], 7.5)
    info = InfoMetricFamily("i", "info", labels=["kernel"])
    info.add_metric(["6.1"], {"mode": 'm"x'})
    text = same_as_client(Fixed([counter, gauge, hist, info]))
    assert 'c_total{a="\\"",b="é\\\\n"} 5.0' in text
    assert "# TYPE i_info gauge" in text


def test_numbers():
    assert [number(v) for v in (1.0, 0.5, 1e20, math.inf, -math.inf, math.nan, 3)] == \
        ["1.0", "0.5", "1e+20", "+Inf", "-Inf", "NaN", "3.0"]


def test_lines_kept_across_scrapes_follow_the_counts():
    """The execve and latency lines a collector keeps between scrapes
    (its render cache) are rewritten when a count changes, reused when
    none does, and always render as the client does."""
    stats = SelfStats()
    first = Log2Hist.from_values([1000, 5000], 1000, "usecs")
    later = Log2Hist.from_values([1000, 5000, 9000], 1000, "usecs")
    execs = [ExecveSnapshot("comm", {"sh": 3, "ls": 1}, 0)] * 2 + \
        [ExecveSnapshot("comm", {"sh": 4, "ls": 1, "new": 2}, 0)] * 3
    latency = [LatencySnapshot(first, per_cgroup={1: first})] * 2 + \
        [LatencySnapshot(later, per_cgroup={1: later})] * 3
    execve = ExecveCollector(FixedSource(*execs), stats, "6.1", 10, "comm")
    # by pod: one series per workload (cgroup id 1, named or not on this
    # machine), the histograms whose lines are kept
    vfs_read = tool_collector("vfs_read", FixedSource(*latency), stats, "6.1", 10, by="pod")
    texts = [same_as_client(execve, vfs_read) for _ in range(3)]
    assert 'execve_total{comm="sh"} 3.0' in texts[0]
    assert 'execve_total{comm="sh"} 4.0' in texts[1] and 'comm="new"' in texts[1]
    assert 'vfs_read_latency_seconds_count{namespace="",pod=""} 2.0' in texts[0]
    assert 'vfs_read_latency_seconds_count{namespace="",pod=""} 3.0' in texts[1]
    assert texts[2] == texts[1]
    assert execve.render_cache("execve_total") and \
        vfs_read.render_cache("vfs_read_latency_seconds")
