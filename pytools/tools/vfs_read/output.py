"""vfs_read: text and JSON output, from a snapshot."""

from __future__ import annotations

from typing import List, Optional, Tuple

from ... import render
from ...hist import Log2Hist
from ...keyed_hists import Group, busiest, workload_groups
from .kinds import KINDS
from .plan import ProcKey
from .snapshot import LatencySnapshot


def proc_label(key: ProcKey) -> str:
    tgid, comm = key
    return render.process_label(comm, tgid)


GROUP_HEADERS = {"pid": "PROCESS", "comm": "COMM", "pod": "NAMESPACE/POD",
                 "container": "NAMESPACE/POD/CONTAINER", "kind": "KIND"}
GROUP_NOUNS = {"pid": "processes", "comm": "names", "pod": "pods", "container": "containers",
               "kind": "kinds"}


def latency_groups(snap: LatencySnapshot, workloads=None, by: Optional[str] = None
                   ) -> List[Group]:
    """(key, labels, hist) of each group, busiest first: processes as
    `dd [10642]` (pid, comm), names (comm), or workloads (their labels)."""
    if snap.per_cgroup is not None:
        assert by is not None, "a snapshot keyed by cgroup comes with its --by"
        return workload_groups(snap.per_cgroup, workloads, by)
    if snap.per_process is not None:
        ordered = busiest(snap.per_process)
        return [(proc_label(key), {"pid": key[0], "comm": key[1]} if key[0] else
                 {"comm": key[1]}, h) for key, h in ordered]
    if snap.per_kind is not None:      # in KINDS' order, not by count
        return [(k, {"kind": k}, h) for k, h in _kinds(snap)]
    return []


def _kinds(snap: LatencySnapshot) -> List[Tuple[str, Log2Hist]]:
    """Per kind of file, in KINDS' order."""
    per_kind = snap.per_kind or {}
    return [(k, per_kind[k]) for k in KINDS if k in per_kind]


def latency_text(snap: LatencySnapshot, probe_label: str, seconds: float, top: int,
                 timestamp: Optional[str] = None, workloads=None, by: Optional[str] = None,
                 histograms: bool = False) -> str:
    parts = [render.title(f"{probe_label}, {seconds:.1f}s", timestamp),
             render.hist_text(snap.hist)]
    if snap.start_clashes:
        parts.append(f"({snap.start_clashes} reads not timed: thread id slot clash)")
    if by:
        parts += render.grouped_text(latency_groups(snap, workloads, by), top,
                                     GROUP_HEADERS[by], snap.hist.unit_name, histograms,
                                     GROUP_NOUNS[by])
    return "\n".join(parts)


def latency_json(snap: LatencySnapshot, probe: dict, seconds: float, top: int,
                 when: str, workloads=None, by: Optional[str] = None) -> dict:
    out = {"time": when, "interval_s": round(seconds, 3), "probe": probe,
           "hist": render.hist_json(snap.hist), "start_clashes": snap.start_clashes,
           "by": by}
    if by:
        out["groups"], out["other"] = render.groups_json(latency_groups(snap, workloads, by),
                                                         top)
    return out
