"""runqlat: Prometheus metric families, from a snapshot."""

from __future__ import annotations

from typing import Optional

from ...keyed_hists import latency_family
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
    # prometheus_client is the exporter's alone: the commands start without it.
    from ...families import counters
    return latency_family(
        "run_queue_latency_seconds", "Time runnable tasks waited for a CPU, from wakeup or "
        "preemption to running; le bounds are powers of two of seconds.",
        snapshot.hist if snapshot is not None else None,
        snapshot.per_key if snapshot is not None else None,
        collector) + counters(RUNQLAT_COUNTERS, snapshot)
