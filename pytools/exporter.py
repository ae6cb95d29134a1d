"""Prometheus collectors: BPF maps read at scrape time, as metric families.

One Collector per tool (client_python's custom-collector idiom): collect()
takes a snapshot of the tool's maps and turns it into metric families;
describe() returns the same families empty, so registering reads no map.
Everything here is pure but the `source.snapshot()` call each collector
makes, so it is unit-tested with fixed snapshots.

Each tool's families are built by its spec (Tool.families in
pytools/tools/<name>.py); what is here is shared: the collector around a
tool, the series cap, histogram and info families, self metrics. Metric
names follow the BPF map they come from (ebpf_exporter's habit):
execve_total <- execve_total, vfs_read_latency_seconds <- vfs_read_latency_hist,
readahead_* <- readahead_devices. Maps are never cleared: counters only grow
until the exporter restarts.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Hashable, Iterable, List, Optional, Sequence, Tuple

from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, InfoMetricFamily, Metric)
from prometheus_client.utils import floatToGoString

from .hist import Log2Hist
from .names import DeviceNames

log = logging.getLogger("bpf-exporter")

# The label value of the series that sums what --max-series folds. No real
# value may equal it, whatever the key (a process may well be named
# "other"): a real value that starts with "~" is exported with one more "~"
# in front (label_value), so "~other" is only ever the fold.
OTHER = "~other"


def label_value(value: str) -> str:
    """A real label value as exported: never equal to OTHER."""
    return "~" + value if value.startswith("~") else value


# ------------------------------------------------------------ cardinality cap

class SeriesCap:
    """At most `limit` label values of one metric get their own series; the
    rest are summed into OTHER (`~other`).

    Membership is sticky: a value admitted stays admitted, and new values
    are admitted largest first while there is room. Since each value's count
    only grows and the set of values folded only grows, `~other` never goes
    down either: every exported counter stays monotonic."""

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError("the series limit must be at least 1")
        self.limit = limit
        self.kept: set = set()
        self.retired = None         # values of gone series that had been folded
        self._lock = threading.Lock()

    def retire(self, key: Hashable, value) -> None:
        """A series is gone (pod churn): free its place; if it had been
        folded, keep its value in the fold so the fold never goes down."""
        with self._lock:
            if key in self.kept:
                self.kept.discard(key)
            else:
                self.retired = value if self.retired is None else self.retired + value

    def fold(self, counts: Dict[Hashable, int]) -> Tuple[Dict[Hashable, int], int, int]:
        """(counts of admitted values, sum of the others, how many were folded)."""
        with self._lock:
            new = [k for k in counts if k not in self.kept]
            new.sort(key=lambda k: (-counts[k], str(k)))
            for key in new[:max(0, self.limit - len(self.kept))]:
                self.kept.add(key)
            kept = {k: v for k, v in counts.items() if k in self.kept}
        other = sum(v for k, v in counts.items() if k not in kept)
        return kept, other, len(counts) - len(kept)


# ------------------------------------------------------------- pod churn

class CgroupSeries:
    """Series labelled by workload (pod, container, service) from values
    keyed by cgroup id, and the cleanup pod churn needs.

    A series is gone once every cgroup id in it has no cgroup any more (its
    directory was removed) and its value has not changed for `grace`
    seconds: its kernel map entries are then deleted (`forget`) and it is no
    longer exported, so neither the maps nor the exposition grow with pod
    churn. Until the whole series is gone, none of its ids is deleted, so a
    series never goes down (a restarted container's old id stays while its
    pod lives). A gone series that had been folded into ~other leaves its
    value in the cap's retired sum, so ~other never goes down either."""

    def __init__(self, workloads, by: str, grace: float, forget: Callable[[List[int]], None],
                 clock: Callable[[], float] = time.monotonic):
        from .workloads import labels
        self.workloads = workloads
        self.by = by
        self.grace = grace
        self.forget = forget
        self.clock = clock
        self._labels = labels
        self.changed: Dict[Tuple, Tuple[object, float]] = {}   # label -> (total, since)
        self.forgotten = 0

    def label_of(self, cgroup_id: int) -> Tuple[str, ...]:
        return tuple(label_value(v) for v in self._labels(self.workloads.of(cgroup_id), self.by))

    def group(self, values: Dict[int, object]) -> Dict[Tuple, Tuple[object, List[int]]]:
        """label -> (summed value, cgroup ids)."""
        out: Dict[Tuple, Tuple[object, List[int]]] = {}
        for cgroup_id, value in values.items():
            label = self.label_of(cgroup_id)
            if label in out:
                total, ids = out[label]
                out[label] = (total + value, ids + [cgroup_id])
            else:
                out[label] = (value, [cgroup_id])
        return out

    def sweep(self, grouped: Dict[Tuple, Tuple[object, List[int]]], cap: "SeriesCap",
              weight: Callable[[object], int] = int) -> Dict[Tuple, Tuple[object, List[int]]]:
        """Forget the series that are gone; return the rest."""
        now = self.clock()
        live = {}
        for label, (total, ids) in grouped.items():
            mark = weight(total)
            seen = self.changed.get(label)
            if seen is None or seen[0] != mark:
                self.changed[label] = (mark, now)
                live[label] = (total, ids)
                continue
            if now - seen[1] < self.grace or any(self.workloads.cgroups.alive(i) for i in ids):
                live[label] = (total, ids)
                continue
            self.forget(ids)
            self.forgotten += len(ids)
            del self.changed[label]
            cap.retire(label, total)
        for label in list(self.changed):
            if label not in grouped:
                del self.changed[label]
        return live


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


# --------------------------------------------------------------- converters

class SelfRenderingFamily:
    """What the families that write their own text lines (pytools.exposition)
    and protobuf metrics (pytools.exposition_protobuf) share: series kept as
    (label values, item), `samples` built on demand (for client_python's
    encoders and tests) by the family's _samples(), and each series' text
    or protobuf kept across scrapes in `cache` (a dict the collector keeps,
    collector.render_cache) so it is made only when it changes: with
    hundreds of pods, most series do not change between scrapes."""

    def _init_series(self, labels: Sequence[str], cache: Optional[Dict]) -> None:
        self.label_names = list(labels)
        self.series: List[Tuple[Tuple[str, ...], object]] = []
        self.cache = cache

    samples = property(lambda self: self._samples(), lambda self, value: None)

    def add(self, values: Sequence[str], item) -> None:
        self.series.append((tuple(values), item))

    def _labels(self, values: Sequence[str], escape: Callable[[str], str]) -> str:
        return ",".join(f'{n}="{escape(v)}"' for n, v in zip(self.label_names, values))

    def _cached(self, keyed: Iterable[Tuple[Hashable, Callable[[], object]]],
                exposition: str = "text") -> List:
        """What each (key, make) renders to, in order: the cache's if the key
        was made at the last scrape in this exposition, else make(). The
        cache then keeps what this scrape used, no more."""
        cache = self.cache.setdefault(exposition, {}) if self.cache is not None else None
        fresh: Dict = {}
        out = []
        for key, make in keyed:
            text = cache.get(key) if cache is not None else None
            if text is None:
                text = make()
            fresh[key] = text
            out.append(text)
        if cache is not None:
            cache.clear()
            cache.update(fresh)
        return out


class Log2HistogramFamily(SelfRenderingFamily, HistogramMetricFamily):
    """A histogram family of Log2Hist series; each series' lines are made
    once per change of its counts."""

    def __init__(self, name: str, doc: str, labels: Sequence[str], base: int, last_slot: int,
                 cache: Optional[Dict] = None):
        super().__init__(name, doc, labels=list(labels))
        self._init_series(labels, cache)
        self.base, self.last_slot = base, last_slot

    def _samples(self):
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.label_names)
        for values, hist in self.series:
            buckets = [(floatToGoString(le), count)
                       for le, count in hist.prometheus_buckets(self.base, self.last_slot)]
            family.add_metric(list(values), buckets, hist.total / self.base)
        return family.samples

    def _lines(self, values: Tuple[str, ...], hist: Log2Hist,
               escape: Callable[[str], str]) -> str:
        labels = self._labels(values, escape)
        sep = "," if labels else ""
        lines = [f'{self.name}_bucket{{{labels}{sep}le="{floatToGoString(le)}"}} '
                 f'{float(count)!r}\n'
                 for le, count in hist.prometheus_buckets(self.base, self.last_slot)]
        brace = f"{{{labels}}}" if labels else ""
        lines.append(f"{self.name}_count{brace} {float(hist.count)!r}\n")
        lines.append(f"{self.name}_sum{brace} {hist.total / self.base!r}\n")
        return "".join(lines)

    def text_lines(self, escape: Callable[[str], str]) -> str:
        return "".join(self._cached(
            ((values, hist.slots, hist.total),
             lambda values=values, hist=hist: self._lines(values, hist, escape))
            for values, hist in self.series))

    def proto_metrics(self) -> List[bytes]:
        from .exposition_protobuf import histogram_metric, labelled_metric
        return self._cached((
            ((values, hist.slots, hist.total),
             lambda values=values, hist=hist: labelled_metric(
                 self.label_names, values,
                 lambda m: histogram_metric(m, hist, self.base, self.last_slot)))
            for values, hist in self.series), "protobuf")


class LabelledCounterFamily(SelfRenderingFamily, CounterMetricFamily):
    """A counter family whose series' names and labels are escaped once
    and kept across scrapes (label values -> line head); only the value is
    written anew. With ~1,000 series this halves a scrape's rendering."""

    def __init__(self, name: str, doc: str, labels: Sequence[str],
                 cache: Optional[Dict] = None):
        super().__init__(name, doc, labels=list(labels))
        self._init_series(labels, cache)

    def _samples(self):
        family = CounterMetricFamily(self.name, self.documentation, labels=self.label_names)
        for values, value in self.series:
            family.add_metric(list(values), value)
        return family.samples

    def _head(self, values: Tuple[str, ...], escape: Callable[[str], str]) -> str:
        labels = self._labels(values, escape)
        return f"{self.name}_total{{{labels}}} " if labels else f"{self.name}_total "

    def text_lines(self, escape: Callable[[str], str]) -> str:
        heads = self._cached((values, lambda values=values: self._head(values, escape))
                             for values, _ in self.series)
        return "".join(f"{head}{float(value)!r}\n"
                       for head, (_, value) in zip(heads, self.series))

    def proto_metrics(self) -> List[bytes]:
        from .exposition_protobuf import labelled_metric

        def fill(value):
            return lambda metric: setattr(metric.counter, "value", float(value))
        return [labelled_metric(self.label_names, values, fill(value))
                for values, value in self.series]


def labelled_histogram_family(name: str, doc: str, labels: Sequence[str],
                              items: Iterable[Tuple[Sequence[str], Log2Hist]], base: int,
                              last_slot: int, cache: Optional[Dict] = None
                              ) -> HistogramMetricFamily:
    """A histogram family with one series per (label values, Log2Hist):
    cumulative buckets with the exact log2 bounds up to `last_slot`, +Inf,
    and the exact sum in base units. `cache`: a dict kept across scrapes
    for the series' rendered lines."""
    family = Log2HistogramFamily(name, doc, labels, base, last_slot, cache)
    for values, hist in items:
        family.add(values, hist)
    return family


def pod_histograms(per_cgroup: Dict[int, Log2Hist], series, cap
                   ) -> List[Tuple[Tuple[str, str], Log2Hist]]:
    """Cgroup-keyed histograms as (namespace, pod) series, sorted: grouped
    and swept of gone pods by `series` (CgroupSeries), pods beyond the cap
    summed with the cap's retired ones into (~other, ~other)."""
    grouped = series.sweep(series.group(per_cgroup), cap, weight=lambda h: h.count)
    hists = {label[:2]: hist for label, (hist, _) in grouped.items()}
    kept, _, _ = cap.fold({k: h.count for k, h in hists.items()})
    items, other = [], cap.retired
    for key, hist in hists.items():
        if key in kept:
            items.append((key, hist))
        else:
            other = hist if other is None else other + hist
    items.sort()
    if other is not None and other.count:
        items.append(((OTHER, OTHER), other))
    return items


def histogram_family(name: str, doc: str, hist: Optional[Log2Hist], base: int,
                     last_slot: int) -> HistogramMetricFamily:
    """A histogram family with no labels: one series, or none for describe()."""
    return labelled_histogram_family(name, doc, [], [((), hist)] if hist is not None else [],
                                     base, last_slot)


def info_family(tool: str, probe: Optional[dict], kernel: str) -> InfoMetricFamily:
    family = InfoMetricFamily(f"{tool}_probe", f"The probe {tool} attached and the kernel.",
                              labels=["mode", "probe", "kernel"])
    if probe is not None:
        family.add_metric([probe["mode"], probe["label"], kernel], {})
    return family


# --------------------------------------------------------------- collectors

class ToolCollector:
    """Reads one tool's maps at scrape time and turns the snapshot into the
    tool's metric families. `source` is a loaded tool (or anything with
    snapshot() and program.probe_info()); reads are serialised, since
    concurrent scrapes would otherwise walk the same maps at once. `opts`
    are the tool's exporter options (Tool.exporter_options)."""

    def __init__(self, tool, source, stats: SelfStats, kernel: str, max_series: int,
                 opts: Optional[dict] = None):
        self.tool = tool
        self.name = tool.name
        self.source = source
        self.stats = stats
        self.kernel = kernel
        self.opts = dict(opts or {})
        self.cap = SeriesCap(max_series)
        self.pod_cap = SeriesCap(max_series)     # a second keyed family (readahead by pod)
        self.device = DeviceNames()          # sysfs is read once per device
        self.probe = source.program.probe_info()
        self._lock = threading.Lock()
        self._cgroup_series: Optional[CgroupSeries] = None
        self._render_caches: Dict[str, Dict] = {}
        stats.up[self.name] = True

    def render_cache(self, family: str) -> Dict:
        """A dict kept across scrapes for one family's rendered series."""
        return self._render_caches.setdefault(family, {})

    def cgroup_series(self, by: str) -> CgroupSeries:
        """The workload grouping of this collector's cgroup-keyed values,
        made on first use. The source deletes gone ids (forget_cgroups)."""
        if self._cgroup_series is None:
            from .workloads import Workloads
            self._cgroup_series = CgroupSeries(
                Workloads(log_root=self.opts.get("pod_logs") or "/var/log"), by,
                self.opts.get("gone_grace", 90.0),
                getattr(self.source, "forget_cgroups", lambda ids: None))
        return self._cgroup_series

    def describe(self) -> List[Metric]:
        return self.tool.families(None, self) + [info_family(self.name, None, self.kernel)]

    def collect(self) -> Iterable[Metric]:
        start = time.perf_counter()
        with self._lock:
            try:
                snapshot = self.source.snapshot()
            except Exception as e:  # a failed read must not fail the scrape
                log.error("%s: map read failed: %s", self.name, e)
                self.stats.record_read(self.name, time.perf_counter() - start, ok=False)
                return []
            self.stats.record_read(self.name, time.perf_counter() - start, ok=True)
            families = self.tool.families(snapshot, self)
            if self._cgroup_series is not None:
                with self.stats.lock:
                    self.stats.gone[self.name] = self._cgroup_series.forgotten
        return families + [info_family(self.name, self.probe, self.kernel)]
