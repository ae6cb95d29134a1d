"""Prometheus collectors: BPF maps read at scrape time, as metric families.

One ToolCollector per tool (client_python's custom-collector idiom):
collect() takes a snapshot of the tool's maps and hands it to the tool's
families(snapshot, collector); describe() returns the same families empty,
so registering reads no map. What a tool's families() may use of the
collector is the Collector protocol below. Most metric names follow the
BPF map they come from (ebpf_exporter's habit: execve_total <- execve_total,
vfs_read_latency_seconds <- vfs_read_latency_hist, readahead_* <-
readahead_devices); biolatency's and runqlat's follow Prometheus' base
units instead (block_io_latency_seconds, run_queue_latency_seconds). Maps
are never cleared by a scrape: counters only grow. The one write a
collector makes to the kernel is through series.CgroupSeries, which has
the reader delete the map entries of gone pods.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Dict, Iterable, List, Optional, Protocol, runtime_checkable

from prometheus_client.core import Metric

from .exporter_config import DEFAULT_GONE_AFTER
from .families import info_family
from .names import DeviceNames
from .self_metrics import SelfStats
from .series import CgroupSeries, SeriesCap
from .workloads import DEFAULT_POD_LOGS, Workloads


log = logging.getLogger("bpf-exporter")


@runtime_checkable
class Collector(Protocol):
    """What a tool's families(snapshot, collector) gets (ToolCollector is
    the implementation; tests pass stand-ins)."""
    name: str
    opts: dict                       # the tool's exporter options, {"by": ...}
    cap: SeriesCap                   # --max-series for its keyed family
    pod_cap: SeriesCap               # and for a second one (readahead by pod)
    stats: SelfStats                 # where folds are recorded
    device: Callable[[int], str]     # a kernel dev as its name (sysfs, cached)

    def cgroup_series(self, by: str) -> CgroupSeries:
        """Values keyed by cgroup id as series by `by` (pod, container,
        service), with gone pods swept."""

    def render_cache(self, family: str) -> Dict:
        """A dict kept across scrapes for one family's rendered series."""


class ToolCollector:
    """Reads one tool's maps at scrape time and turns the snapshot into the
    tool's metric families. `source` is the tool's reader (what
    pytools.tools.base.Reader declares: snapshot(), forget_cgroups(ids) and
    program.probe_info()); reads are serialised, since
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
            self._cgroup_series = CgroupSeries(
                Workloads(log_root=self.opts.get("pod_logs") or DEFAULT_POD_LOGS), by,
                self.opts.get("gone_after", DEFAULT_GONE_AFTER), self.source.forget_cgroups)
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
