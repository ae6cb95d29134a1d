"""vfs_read: Prometheus metric families, from a snapshot."""

from __future__ import annotations

from typing import Optional

from ...keyed_hists import latency_family
from .snapshot import LatencySnapshot


VFS_READ_COUNTERS = (   # unlabelled counters: (name, help, value of a snapshot)
    ("vfs_read_latency_lost", "Reads not timed because another thread shared their "
     "start slot (bounded start array).", lambda s: s.start_clashes),
)


def vfs_read_families(snapshot: Optional[LatencySnapshot], collector) -> list:
    """vfs_read_latency_seconds, unlabelled, or by (namespace, pod) with
    --vfs-read-by pod: pods beyond the cap in ~other, and reads of cgroups
    the kernel's per-cgroup map had no room for counted apart."""
    # prometheus_client is the exporter's alone: the commands start without it.
    from ...families import counters
    families = latency_family(
        "vfs_read_latency_seconds", "Time from vfs_read entry to return (or read syscall "
        "entry to exit, in tracepoint mode); le bounds are powers of two of seconds.",
        snapshot.hist if snapshot is not None else None,
        snapshot.per_cgroup if snapshot is not None else None, collector)
    if collector.opts.get("by") == "pod":
        families += counters(VFS_READ_BY_POD_COUNTERS, snapshot)
    return families + counters(VFS_READ_COUNTERS, snapshot)


VFS_READ_BY_POD_COUNTERS = (
    ("vfs_read_latency_unlabelled", "Reads timed but not in a pod's series: their "
     "cgroup found the per-cgroup map full (--vfs-read-by pod).",
     lambda s: max(0, s.hist.count - sum(h.count for h in (s.per_cgroup or {}).values()))),
)
