"""runqlat: text and JSON output, from a snapshot."""

from __future__ import annotations

from typing import List, Optional

from ... import render
from ...keyed_hists import WORKLOAD_KINDS, Group, busiest, workload_groups
from .snapshot import RunqSnapshot


def task_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


GROUP_HEADERS = {"pid": "PROCESS", "tid": "THREAD", "pod": "NAMESPACE/POD",
                 "container": "NAMESPACE/POD/CONTAINER"}
GROUP_NOUNS = {"pid": "processes", "tid": "threads", "pod": "pods", "container": "containers"}


def runqlat_groups(snap: RunqSnapshot, per: Optional[str], workloads) -> List[Group]:
    """(key, labels, hist) per group, busiest first: processes or threads
    as `dd [10642]` (pid or tid, comm), or workloads (their labels)."""
    if snap.per_key is None or per is None:
        return []
    if per in WORKLOAD_KINDS:
        return workload_groups(snap.per_key, workloads, per)
    out = []
    for key, h in busiest(snap.per_key):
        name = snap.names.get(key, "?")
        out.append((render.process_label(name, key), {per: key, "comm": name}, h))
    return out


def notes_lines(snap: RunqSnapshot) -> List[str]:
    notes = []
    if snap.unattributed:
        notes.append(f"[{snap.unattributed} waits of tasks never seen leaving a CPU: "
                     "no process or cgroup]")
    if snap.map_full:
        notes.append(f"[{snap.map_full} waits not kept per key: map full]")
    if snap.lost:
        notes.append(f"[{snap.lost} waits not timed: their start slot was taken]")
    return notes


def runqlat_text(snap: RunqSnapshot, probe_label: str, seconds: float, top: int,
                 per: Optional[str], workloads=None, timestamp: Optional[str] = None,
                 histograms: bool = False) -> str:
    parts = [render.title(f"{probe_label}, {seconds:.1f}s", timestamp),
             render.hist_text(snap.hist)]
    if per is not None:
        parts += render.grouped_text(runqlat_groups(snap, per, workloads), top,
                                     GROUP_HEADERS[per], snap.hist.unit_name, histograms,
                                     GROUP_NOUNS[per])
    parts += notes_lines(snap)
    return "\n".join(parts)


def runqlat_json(snap: RunqSnapshot, probe: dict, seconds: float, top: int, when: str,
                 per: Optional[str], workloads=None) -> dict:
    out = {"time": when, "interval_s": round(seconds, 3), "probe": probe,
           "hist": render.hist_json(snap.hist), "unattributed": snap.unattributed,
           "map_full": snap.map_full, "lost": snap.lost, "by": per}
    if per is not None:
        out["groups"], out["other"] = render.groups_json(
            runqlat_groups(snap, per, workloads), top)
    return out
