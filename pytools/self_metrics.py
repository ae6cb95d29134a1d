"""The exporter's own metrics: whether each collector attached, its map
reads' time and errors, the values folded into ~other, the gone cgroups
forgotten, and what its BPF programs cost (runstats)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

# ------------------------------------------------------------- self metrics

@dataclass
class SelfStats:
    """What the exporter knows about itself, shared by the collectors."""
    read_seconds: Dict[str, float] = field(default_factory=dict)   # last map read
    read_errors: Dict[str, int] = field(default_factory=dict)
    folded: Dict[str, int] = field(default_factory=dict)           # metric -> values folded
    up: Dict[str, bool] = field(default_factory=dict)              # collector -> attached
    gone: Dict[str, int] = field(default_factory=dict)             # collector -> ids forgotten
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_read(self, collector: str, seconds: float, ok: bool) -> None:
        with self.lock:
            self.read_seconds[collector] = seconds
            self.read_errors.setdefault(collector, 0)
            if not ok:
                self.read_errors[collector] += 1

    def record_folded(self, metric: str, n: int) -> None:
        with self.lock:
            self.folded[metric] = n


def self_families(stats: Optional[SelfStats]) -> List[Metric]:
    up = GaugeMetricFamily("bpf_exporter_collector_up",
                           "1 if the collector's BPF program attached, else 0.",
                           labels=["collector"])
    seconds = GaugeMetricFamily("bpf_exporter_map_read_duration_seconds",
                                "Time the collector's last map read took.",
                                labels=["collector"])
    errors = CounterMetricFamily("bpf_exporter_map_read_errors",
                                 "Map reads that failed (that collector's series were left out).",
                                 labels=["collector"])
    folded = GaugeMetricFamily("bpf_exporter_folded_series",
                               "Label values summed into the '~other' series by --max-series.",
                               labels=["metric"])
    gone = CounterMetricFamily("bpf_exporter_gone_cgroups",
                               "Cgroup ids of gone pods whose series and kernel map entries "
                               "were dropped (--gone-after).", labels=["collector"])
    if stats is not None:
        with stats.lock:
            for family, values in ((up, stats.up), (seconds, stats.read_seconds),
                                   (errors, stats.read_errors), (folded, stats.folded),
                                   (gone, stats.gone)):
                for name, value in sorted(values.items()):
                    family.add_metric([name], float(value))
    return [up, seconds, errors, folded, gone]


def cost_families(costs: Optional[Dict[str, Dict[str, object]]]) -> List[Metric]:
    """bpf_exporter_program_run_seconds_total and _runs_total per collector
    and program, from the kernel's BPF run-time statistics (runstats.Cost);
    no series at all where they are off (never zeros)."""
    seconds = CounterMetricFamily(
        "bpf_exporter_program_run_seconds", "CPU time the collector's BPF programs ran "
        "(kernel BPF run-time statistics).", labels=["collector", "program"])
    runs = CounterMetricFamily("bpf_exporter_program_runs", "Runs of the collector's BPF "
                               "programs.", labels=["collector", "program"])
    for collector, by_program in sorted((costs or {}).items()):
        for program, cost in sorted(by_program.items()):
            seconds.add_metric([collector, program], cost.run_ns / 1e9)
            runs.add_metric([collector, program], cost.runs)
    return [seconds, runs]


class SelfCollector:
    """The exporter's own metrics; with `run_stats` (runstats.RunStats) and
    the tool collectors, what their BPF programs cost."""

    def __init__(self, stats: SelfStats, collectors: Sequence = (), run_stats=None):
        self.stats = stats
        self.collectors = list(collectors)
        self.run_stats = run_stats

    def describe(self) -> List[Metric]:
        return self_families(None) + cost_families(None)

    def collect(self) -> List[Metric]:
        costs = {}
        if self.run_stats is not None:
            for c in self.collectors:
                cost = self.run_stats.cost(getattr(c.source, "program", None))
                if cost is not None:
                    costs[c.name] = cost
        return self_families(self.stats) + cost_families(costs)
