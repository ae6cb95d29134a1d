"""Metric names: those the exporter emits, and those a PromQL expression uses."""

import re

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pytools.hist import NATIVE, Log2Hist
from pytools.runstats import Cost
from pytools.self_metrics import SelfCollector, SelfStats
from pytools.tools.biolatency.snapshot import BioSnapshot
from pytools.tools.execve.snapshot import ExecveSnapshot
from pytools.tools.file_opens.output import OpensSnapshot
from pytools.tools.oomkill.output import OomSnapshot
from pytools.tools.readahead.snapshot import Counts, ReadaheadSnapshot, Usage
from pytools.tools.runqlat.snapshot import RunqSnapshot
from pytools.tools.tcp.output import Counts as TcpCounts, TcpSnapshot
from pytools.tools.vfs_read.snapshot import LatencySnapshot

from .sources import ExecveCollector, FixedSource, VfsReadCollector, tool_collector


def emitted_metric_names():
    """Every sample name the exporter's collectors produce, with their
    default labels and by pod (--execve-by/--vfs-read-by/--readahead-by pod)."""
    stats = SelfStats()
    hist = Log2Hist.from_values([1000, 5000], unit_name=NATIVE)
    pages = Log2Hist.from_values([32], 1, "pages")
    default = [
        ExecveCollector(FixedSource(ExecveSnapshot("comm", {"sh": 1}, 1)), stats, "k", 10,
                        "comm"),
        VfsReadCollector(FixedSource(LatencySnapshot(hist)), stats, "k", 10),
        tool_collector("biolatency", FixedSource(BioSnapshot({(8 << 20, "read"): hist})),
                       stats, "k", 10),
        tool_collector("readahead", FixedSource(ReadaheadSnapshot(  # --readahead-efficiency
            {(8 << 20, "sync"): Counts(1, 1, 1, 32)}, {}, pages,
            usage={8 << 20: Usage(32, 16, 8, 0)})), stats, "k", 10, efficiency=True),
        tool_collector("runqlat", FixedSource(RunqSnapshot(hist)), stats, "k", 10),
    ]
    default.append(SelfCollector(stats, FixedCosts(list(default))))
    by_pod = [   # cgroup ids, named (or not) from this machine's cgroup2 mount
        ExecveCollector(FixedSource(ExecveSnapshot("pod", {1: 1}, 1)), stats, "k", 10, "pod"),
        tool_collector("vfs_read", FixedSource(LatencySnapshot(hist, per_cgroup={1: hist})),
                       stats, "k", 10, by="pod"),
        tool_collector("readahead", FixedSource(ReadaheadSnapshot(
            {(8 << 20, "sync"): Counts(1, 1, 1, 32)}, {}, pages,
            cgroups={(1, "sync"): Counts(1, 1, 1, 32)})), stats, "k", 10, by="pod"),
        tool_collector("runqlat", FixedSource(RunqSnapshot(hist, per_key={1: hist})),
                       stats, "k", 10, by="pod"),
        tool_collector("file_opens", FixedSource(OpensSnapshot("cgroup", {(1, b"", 2): 1})),
                       stats, "k", 10),
        tool_collector("oomkill", FixedSource(OomSnapshot({(1, 0, "", "memcg", True): 1})),
                       stats, "k", 10),
        tool_collector("tcp", FixedSource(TcpSnapshot({(1, 2, bytes(16), 80, 1):
                                                       TcpCounts(3, 1, 1, 1)})),
                       stats, "k", 10)]
    names = set()
    for collectors in (default, by_pod):
        registry = CollectorRegistry(auto_describe=False)
        for collector in collectors:
            registry.register(collector)
        text = generate_latest(registry).decode()
        families = list(text_string_to_metric_families(text))
        names |= {s.name for f in families for s in f.samples}
        # a Prometheus with native histograms keeps each one as one series
        # under the family's own name (pytools.exposition_protobuf)
        names |= {f.name for f in families if f.type == "histogram"}
    return names


def metric_names_in(expr):
    expr = re.sub(r'"[^"]*"', "", expr)                 # label values, $variables
    expr = re.sub(r"\{[^}]*\}", "", expr)               # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)              # ranges
    expr = re.sub(r"\boffset\s+-?[0-9a-z]+", "", expr)    # offsets
    expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)   # grouping labels
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        rest = expr[match.end():].lstrip()
        if match.group() not in PROMQL_WORDS and not rest.startswith("("):
            names.add(match.group())
    return names


class FixedCosts:
    """SelfCost's interface, a fixed cost for every collector's program."""

    def __init__(self, collectors):
        self.collectors = collectors

    def costs(self):
        return {(c.name, "prog"): Cost(10, 1000) for c in self.collectors}

    def duty(self):
        return 1 / 60


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
                "or", "unless", "offset"}
