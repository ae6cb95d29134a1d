"""The exporter's own metrics: whether each collector attached, its map
reads' time and errors, the values folded into ~other, the gone cgroups
forgotten, and what its BPF programs cost (selfcost)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Union

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .runstats import Cost, program_costs
from .selfcost import PERIOD_S, WINDOW_S, Costs, Estimate, Key

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


COST_HELP = ("the kernel's BPF run-time statistics: an estimate, from windows of {window:g} s "
             "in every {period:g} s with statistics on, scaled by the share of time they were "
             "on (exact where kernel.bpf_stats_enabled=1 holds them on).")


def cost_families(costs: Optional[Mapping[Key, Union[Cost, Estimate]]],
                  duty: Optional[float] = None,
                  window: float = WINDOW_S, period: float = PERIOD_S) -> List[Metric]:
    """bpf_exporter_program_run_seconds_total and _runs_total per
    (collector, program), from pytools.selfcost (runs, run_ns), and the
    share of time the statistics were on; no series at all where they are
    not measured (never zeros)."""
    how = COST_HELP.format(window=window, period=period)
    seconds = CounterMetricFamily(
        "bpf_exporter_program_run_seconds", "CPU time the collector's BPF programs ran, by "
        + how, labels=["collector", "program"])
    runs = CounterMetricFamily("bpf_exporter_program_runs", "Runs of the collector's BPF "
                               "programs, by " + how, labels=["collector", "program"])
    share = GaugeMetricFamily(
        "bpf_exporter_program_stats_on_ratio", "Share of time the kernel's BPF run-time "
        "statistics were on for the program cost figures (1: kernel.bpf_stats_enabled=1, "
        "exact; below 1: sampled, the figures are the windows' counts divided by it). While "
        "on, every BPF program on the node pays two clock reads per run.")
    for (collector, program), cost in sorted((costs or {}).items()):
        seconds.add_metric([collector, program], cost.run_ns / 1e9)
        runs.add_metric([collector, program], cost.runs)
    if costs is not None and duty is not None:
        share.add_metric([], duty)
    return [seconds, runs, share]


class SelfCollector:
    """The exporter's own metrics; with `self_cost` (selfcost.SelfCost, or
    anything with costs() by (collector, program) and duty()), what the
    collectors' BPF programs cost."""

    def __init__(self, stats: SelfStats, self_cost=None):
        self.stats = stats
        self.self_cost = self_cost

    def describe(self) -> List[Metric]:
        return self_families(None) + cost_families(None)

    def collect(self) -> List[Metric]:
        if self.self_cost is None:
            return self_families(self.stats) + cost_families(None)
        sc = self.self_cost
        return self_families(self.stats) + cost_families(
            sc.costs(), sc.duty(), getattr(sc, "window", WINDOW_S), getattr(sc, "period", PERIOD_S))


def program_costs_of(collectors: Sequence) -> Costs:
    """Every collector's programs' counters now, by (collector, program)."""
    out: Costs = {}
    for c in collectors:
        for program, cost in (program_costs(getattr(c.source, "program", None)) or {}).items():
            out[(c.name, program)] = cost
    return out
