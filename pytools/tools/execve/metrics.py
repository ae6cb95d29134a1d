"""execve: Prometheus metric families, from a snapshot."""

from __future__ import annotations

from typing import Dict, Optional

from .plan import WORKLOAD_KINDS
from .snapshot import ExecveSnapshot
from ...series import OTHER, fold, label_value
from ...workloads import GROUPINGS


def execve_families(snapshot: Optional[ExecveSnapshot], collector) -> list:
    """execve_total{<by>}: calls to execve/execveat by key, and
    execve_failed_total{<by>}: of those, the calls that returned an error
    (what ran is the difference); by pod or container, the labels are
    namespace, pod and container, by service the service. Calls the kernel
    could not key (its map full) and keys beyond the cap are in `~other`,
    the same keys in both families."""
    # prometheus_client is the exporter's alone: the commands start without it.
    from ...families import LabelledCounterFamily
    by = collector.opts["by"]
    series = collector.cgroup_series("container" if by == "pod" else by) \
        if by in WORKLOAD_KINDS else None
    names = list(GROUPINGS["container" if by == "pod" else by]) if series else [by]
    calls = LabelledCounterFamily("execve", f"execve and execveat calls by {by}.", names,
                                  collector.render_cache("execve_total"))
    failed = LabelledCounterFamily(
        "execve_failed", f"execve and execveat calls that returned an error, by {by} "
        "(ENOENT: each miss of a $PATH walk); those that ran are execve_total minus these.",
        names, collector.render_cache("execve_failed_total"))
    if snapshot is not None:
        if series:
            grouped = series.sweep(series.group(snapshot.counts), collector.cap)
            counts = {label: total for label, (total, _) in grouped.items()}
            failures = {label: total for label, (total, _)
                        in series.group(snapshot.failed).items()}
        else:
            counts = {(label_value(str(k)),): v for k, v in snapshot.counts.items()}
            failures = {(label_value(str(k)),): v for k, v in snapshot.failed.items()}
        cells, folded = fold(collector.cap, ((key, (), v) for key, v in counts.items()),
                             weight=lambda v: v)
        other_key = (OTHER,) * len(names)
        other = cells.pop(other_key, 0) + snapshot.overflow + (collector.cap.retired or 0)
        failed_cells: Dict[tuple, int] = {}
        for key, value in failures.items():
            cell = key if key in cells else other_key
            failed_cells[cell] = failed_cells.get(cell, 0) + value
        failed_other = failed_cells.pop(other_key, 0) + snapshot.failed_overflow
        for key, value in sorted(cells.items()):
            calls.add(key, value)
            failed.add(key, failed_cells.get(key, 0))
        if other or folded or failed_other:
            calls.add(list(other_key), other)
            failed.add(list(other_key), failed_other)
        collector.stats.record_folded("execve_total", folded)
    return [calls, failed]
