"""runqlat: Prometheus metric families, from a snapshot."""

from __future__ import annotations

from typing import Optional

from ...hist import NS_PER_SECOND
from .plan import EXPORTER_LAST_SLOT
from .snapshot import RunqSnapshot


RUNQLAT_COUNTERS = (   # unlabelled counters: (name, help, value of a snapshot)
    ("run_queue_unattributed", "Waits counted in the total but in no pod's series: the "
     "task's cgroup was not known yet, or the per-cgroup map was full.",
     lambda s: s.unattributed + s.map_full),
    ("run_queue_lost", "Waits not timed: another waiting thread took their start slot "
     "(threads share a bounded array by thread id).", lambda s: s.lost),
)


def runqlat_families(snapshot: Optional[RunqSnapshot], collector) -> list:
    """run_queue_latency_seconds, unlabelled, or by (namespace, pod) with
    --runqlat-by pod: pods beyond the cap in ~other."""
    from ...families import counters, histogram_family, labelled_histogram_family
    from ...series import pod_histograms
    name = "run_queue_latency_seconds"
    doc = ("Time runnable tasks waited for a CPU, from wakeup or preemption to running; "
           "le bounds are powers of two of seconds.")
    if collector.opts.get("by") != "pod":
        families = [histogram_family(name, doc, snapshot.hist if snapshot is not None
                                     else None, NS_PER_SECOND, EXPORTER_LAST_SLOT)]
    else:
        items = pod_histograms(snapshot.per_key or {}, collector.cgroup_series("pod"),
                               collector.cap) if snapshot is not None else []
        families = [labelled_histogram_family(name, doc, ["namespace", "pod"], items,
                                              NS_PER_SECOND, EXPORTER_LAST_SLOT,
                                              collector.render_cache(name))]
    return families + counters(RUNQLAT_COUNTERS, snapshot)
