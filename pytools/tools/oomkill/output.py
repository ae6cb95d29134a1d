"""oomkill's data and what is made of it: an event (one kill) as plain data
and its line, the counts per victim (the map) grouped by --by as a table
or JSON, and the exporter's oom_kills_total."""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, replace
from typing import Callable, Dict, Optional, Tuple

from ... import render
from ...deltas import diff
from ...escape import escape
from ...series import OTHER, fold
from ...workloads import GROUPINGS, describe, labels

CONSTRAINTS = ("unknown", "memcg", "global")
HAVE_RSS, HAVE_ADJ, HAVE_UID, HAVE_COMM = 1, 2, 4, 8     # bpf/oomkill.c
NOT_ATTRIBUTED = "[not attributed]"
# (cgroup id, tgid, comm, constraint, attributed); tgid 0 and comm "" where
# the map keys by cgroup only (the exporter).
Cell = Tuple[int, int, str, str, bool]
KEY_HEADERS = {"comm": "COMM", "pid": "PROCESS", "cgroup": "CGROUP ID",
               "pod": "NAMESPACE/POD", "container": "NAMESPACE/POD/CONTAINER"}
HEADER = f"{'TIME':<15} {'POD':<28} {'VICTIM':<24} {'CONSTRAINT':<20} " \
         f"{'RSS (anon/file/shmem)':<26} {'ADJ':>5} TRIGGER"


def size_text(n_bytes: Optional[int]) -> str:
    if n_bytes is None:
        return "?"
    value, unit = float(n_bytes), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{int(value)}{unit}" if unit == "B" else f"{value:.1f}{unit}"


def decode(event, wall_offset: float, workload: Callable[[int], Dict[str, str]],
           page_size: int = os.sysconf("SC_PAGE_SIZE")) -> dict:
    """An event struct (bpf/oomkill.c) as plain data: what the kernel did
    not say is None."""
    have = int(event.have)
    attributed = bool(event.attributed)
    constraint = CONSTRAINTS[event.constraint] if event.constraint < len(CONSTRAINTS) \
        else str(event.constraint)
    when = _dt.datetime.fromtimestamp(event.ts / 1e9 + wall_offset, _dt.timezone.utc)
    kb = (lambda v: int(v)) if have & HAVE_RSS else (lambda v: None)
    victim = workload(int(event.cgroup_id)) if attributed else \
        {"namespace": None, "pod": None, "container": None}
    return {
        "event": "oom_kill", "time": when.isoformat(timespec="microseconds"),
        **victim, "attributed": attributed,
        "cgroup_id": int(event.cgroup_id) if attributed else None,
        "pid": int(event.pid) if attributed else None, "tid": int(event.tid),
        "comm": escape(bytes(event.comm).split(b"\0", 1)[0]) if have & HAVE_COMM else None,
        "constraint": constraint,
        "memcg_limit_bytes": int(event.limit_pages) * page_size if event.limit_pages else None,
        "total_vm_kb": kb(event.total_vm), "anon_rss_kb": kb(event.anon_rss),
        "file_rss_kb": kb(event.file_rss), "shmem_rss_kb": kb(event.shmem_rss),
        "pgtables_kb": kb(event.pgtables),
        "oom_score_adj": int(event.oom_score_adj) if have & HAVE_ADJ else None,
        "uid": int(event.uid) if have & HAVE_UID else None,
        "trigger": {"pid": int(event.trigger_pid), "tid": int(event.trigger_tid),
                    "comm": escape(bytes(event.trigger_comm).split(b"\0", 1)[0]),
                    "cgroup_id": int(event.trigger_cgroup_id),
                    **workload(int(event.trigger_cgroup_id))},
    }


def _pod(fields: dict) -> str:
    return "/".join(v for v in (fields.get("namespace"), fields.get("pod"),
                                fields.get("container")) if v) or "-"


def event_line(e: dict) -> str:
    pod = _pod(e) if e["attributed"] else NOT_ATTRIBUTED
    victim = render.process_label(e["comm"] or "?", e["pid"] or e["tid"])
    constraint = e["constraint"]
    if e["memcg_limit_bytes"]:
        constraint += f" {size_text(e['memcg_limit_bytes'])}"
    if e["anon_rss_kb"] is None:
        rss = "?"
    else:
        rss = "/".join(size_text(e[f"{k}_rss_kb"] * 1024) for k in ("anon", "file", "shmem"))
    adj = "?" if e["oom_score_adj"] is None else str(e["oom_score_adj"])
    t = e["trigger"]
    trigger = render.process_label(t["comm"], t["pid"])
    if _pod(t) != "-" and _pod(t) != pod:
        trigger += f" in {_pod(t)}"
    return (f"{e['time'][11:26]:<15} {render.shorten(pod, 28):<28} {victim:<24} "
            f"{constraint:<20} {rss:<26} {adj:>5} {trigger}")


# ------------------------------------------------------------------ counts

@dataclass(frozen=True)
class OomSnapshot:
    """Kills since attach (or, after `delta`, over an interval)."""
    counts: Dict[Cell, int]
    overflow: int = 0             # kills not keyed: the map was full
    taken_at: float = 0.0
    elapsed: float = 0.0

    @property
    def unattributed(self) -> int:
        return sum(n for cell, n in self.counts.items() if not cell[4])

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.overflow


def delta(cur: OomSnapshot, prev: OomSnapshot) -> OomSnapshot:
    return replace(cur, counts=diff(cur.counts, prev.counts), overflow=cur.overflow - prev.overflow,
                   elapsed=cur.taken_at - prev.taken_at)


def grouped(snap: OomSnapshot, by: str, workloads=None) -> Dict[str, Tuple[dict, int]]:
    """Attributed kills per --by key: key shown -> (its JSON labels, count)."""
    out: Dict[str, Tuple[dict, int]] = {}
    fields: Dict[str, object]       # the key's JSON labels: names, or a pid and a comm
    for (cgroup_id, tgid, comm, _, attributed), n in snap.counts.items():
        if not attributed:
            continue
        if by in GROUPINGS:
            values = labels(workloads.of(cgroup_id), by)
            key, fields = describe(values, by), dict(zip(GROUPINGS[by], values, strict=True))
        elif by == "pid":
            key, fields = render.process_label(comm, tgid), {"pid": tgid, "comm": comm}
        elif by == "comm":
            key, fields = comm, {"comm": comm}
        else:
            key, fields = str(cgroup_id), {"cgroup_id": cgroup_id}
        out[key] = (fields, out.get(key, (None, 0))[1] + n)
    return out


def counts_table(snap: OomSnapshot, by: str, workloads=None) -> str:
    groups = grouped(snap, by, workloads)
    rows = [[key, n] for key, (_, n) in sorted(groups.items(), key=lambda kv: (-kv[1][1], kv[0]))]
    if snap.unattributed:
        rows.append([NOT_ATTRIBUTED, snap.unattributed])
    if snap.overflow:
        rows.append(["[map full: not keyed]", snap.overflow])
    rows.append(["TOTAL", snap.total])
    return "OOM kills by " + by + "\n" + render.table(rows, [KEY_HEADERS[by], "KILLS"])


def counts_json(snap: OomSnapshot, by: str, workloads=None) -> dict:
    groups = grouped(snap, by, workloads)
    return {"by": by,
            "groups": [{"key": key, **fields, "count": n} for key, (fields, n)
                       in sorted(groups.items(), key=lambda kv: (-kv[1][1], kv[0]))],
            "unattributed": snap.unattributed, "overflow": snap.overflow, "total": snap.total}


# ------------------------------------------------------------------ exporter

def oom_families(snapshot: Optional[OomSnapshot], collector) -> list:
    """oom_kills_total{namespace,pod,container}: kills by the victim's
    container (outside pods, the labels are empty); kills whose victim's
    cgroup was not read are oom_kills_unattributed_total, never in a pod;
    pods beyond the cap and kills the map could not key are in ~other."""
    # prometheus_client is the exporter's alone: the commands start without it.
    from ...families import LabelledCounterFamily
    names = list(GROUPINGS["container"])
    kills = LabelledCounterFamily("oom_kills", "Processes the kernel's OOM killer killed, by "
                                  "the victim's namespace, pod and container.", names,
                                  collector.render_cache("oom_kills_total"))
    unattributed = LabelledCounterFamily(
        "oom_kills_unattributed", "OOM kills whose victim's cgroup could not be read "
        "(the tracepoint-only probe mode).", [], collector.render_cache(
            "oom_kills_unattributed_total"))
    if snapshot is not None:
        per_cgroup: Dict[int, int] = {}
        for (cgroup_id, _, _, _, attributed), n in snapshot.counts.items():
            if attributed:
                per_cgroup[cgroup_id] = per_cgroup.get(cgroup_id, 0) + n
        series = collector.cgroup_series("container")
        live = series.sweep(series.group(per_cgroup), collector.cap)
        cells, folded = fold(collector.cap, ((label, (), total)
                                             for label, (total, _) in live.items()),
                             weight=lambda v: v)
        other_key = (OTHER,) * len(names)
        other = cells.pop(other_key, 0) + snapshot.overflow + (collector.cap.retired or 0)
        for key, value in sorted(cells.items()):
            kills.add(list(key), value)
        if other or folded:
            kills.add(list(other_key), other)
        unattributed.add([], snapshot.unattributed)
        collector.stats.record_folded("oom_kills_total", folded)
    return [kills, unattributed]
