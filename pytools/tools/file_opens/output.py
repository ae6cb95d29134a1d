"""file-opens' snapshot and what is made of it: the table, the JSON, and
the exporter's file_open_errors_total."""

from __future__ import annotations

import errno as errno_mod
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Dict, Optional, Tuple, Union

from ... import render
from ...deltas import diff
from ...escape import escape
from ...workloads import GROUPINGS, describe, labels
from ...series import OTHER, fold

Key = Union[str, int]
Cell = Tuple[Key, bytes, int]     # (key, path as read, errno or 0)
UNREADABLE = "[path unreadable]"
CUT = "[cut]"
KEY_HEADERS = {"comm": "COMM", "pid": "PID", "cgroup": "CGROUP ID", "pod": "NAMESPACE/POD",
               "container": "NAMESPACE/POD/CONTAINER"}


def errno_name(err: int) -> str:
    """"ok" for 0, else the errno's name (ENOENT), or its number."""
    if err == 0:
        return "ok"
    return errno_mod.errorcode.get(err, str(err))


def path_text(raw: bytes, cut_at: int) -> str:
    """A path from a count key, escaped (pytools.escape); one that filled the
    key is marked as cut; an empty one (not readable) said so."""
    if not raw:
        return UNREADABLE
    return escape(raw) + (CUT if cut_at and len(raw) >= cut_at else "")


@dataclass(frozen=True)
class OpensSnapshot:
    """Opens since attach (or, after `delta`, over an interval)."""
    by: str
    counts: Dict[Cell, int]
    overflow: int = 0             # opens not keyed: the map was full
    taken_at: float = 0.0
    elapsed: float = 0.0
    path_cut: int = 0             # a path this long may have been cut (0: no paths)

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.overflow

    @property
    def failed(self) -> int:
        return sum(v for (_, _, err), v in self.counts.items() if err)


def delta(cur: OpensSnapshot, prev: OpensSnapshot) -> OpensSnapshot:
    return replace(cur, counts=diff(cur.counts, prev.counts),
                   overflow=cur.overflow - prev.overflow,
                   elapsed=cur.taken_at - prev.taken_at)


def by_workload(snap: OpensSnapshot, workloads) -> Tuple[OpensSnapshot, Dict[str, dict]]:
    """Cgroup ids as pods or containers: a snapshot keyed by display
    string, and each key's JSON fields."""
    fields: Dict[str, dict] = {}
    counts: Dict[Cell, int] = {}
    for (cgroup_id, path, err), n in snap.counts.items():
        values = labels(workloads.of(int(cgroup_id)), snap.by)
        key = describe(values, snap.by)
        fields[key] = dict(zip(GROUPINGS[snap.by], values, strict=True))
        counts[(key, path, err)] = counts.get((key, path, err), 0) + n
    return replace(snap, counts=counts), fields


def opens_table(snap: OpensSnapshot, top: int, seconds: float, failed_only: bool,
                timestamp: Optional[str] = None, rated: bool = True) -> str:
    shown, other_keys, other_count = render.top_entries(snap.counts, top)

    def rate(n: int) -> str:
        return f"{render.rate(n, seconds):.1f}" if rated else "-"

    rows = [([render.shorten(str(key), 28), errno_name(err), n, rate(n)],
             path_text(path, snap.path_cut)) for (key, path, err), n in shown]
    if other_keys:
        rows.append(([f"[{other_keys} other rows]", "", other_count, rate(other_count)], ""))
    if snap.overflow:
        rows.append((["[map full: not keyed]", "", snap.overflow, rate(snap.overflow)], ""))
    rows.append((["TOTAL", "", snap.total, rate(snap.total)], f"{snap.failed} failed"))
    # The path last and left-aligned: it is as long as it is.
    table = render.table([cells for cells, _ in rows],
                         [KEY_HEADERS[snap.by], "RESULT", "COUNT", "RATE/s"]).splitlines()
    lines = [f"{line}  {path}".rstrip() for line, path in
             zip(table, ["PATH" if snap.path_cut else ""] + [p for _, p in rows], strict=True)]
    lines.insert(len(lines) - 1, "-" * max(len(line) for line in lines))
    what = "failed opens" if failed_only else "opens"
    title = f"{timestamp} " if timestamp else ""
    return "\n".join([title + f"{what} over {seconds:.1f}s"] + lines)


def opens_json(snap: OpensSnapshot, top: int, seconds: float, probe: dict, when: str,
               rated: bool = True, fields: Optional[Dict[Any, dict]] = None) -> dict:
    """groups[]: each (key, file, result) row with the key's labels."""
    shown, other_keys, other_count = render.top_entries(snap.counts, top)
    groups = []
    for (key, path, err), n in shown:
        group = {"key": key, **(fields or {}).get(key, {}), "result": errno_name(err),
                 "errno": err or None, "count": n,
                 "rate": round(render.rate(n, seconds), 3) if rated else None}
        if snap.path_cut:
            group.update(path=escape(path), path_unreadable=not path,
                         path_cut=len(path) >= snap.path_cut)
        groups.append(group)
    return {"time": when, "interval_s": round(seconds, 3), "by": snap.by, "groups": groups,
            "other": {"rows": other_keys, "count": other_count}, "overflow": snap.overflow,
            "total": snap.total, "failed": snap.failed, "probe": probe}


# ------------------------------------------------------------------ exporter

def errors_families(snapshot: Optional[OpensSnapshot], collector) -> list:
    """file_open_errors_total{namespace,pod,errno}: failed opens by pod and
    errno. Errors only: successful opens run to millions a second on a busy
    node and say little per pod, and a path label would be unbounded; pods
    x errnos stay small. Pods beyond the cap and opens the kernel could not
    key (its map full) are in ~other."""
    # prometheus_client is the exporter's alone: the commands start without it.
    from ...families import LabelledCounterFamily
    family = LabelledCounterFamily("file_open_errors", "Failed open/openat/openat2 calls by "
                                   "pod and errno.", ["namespace", "pod", "errno"],
                                   collector.render_cache("file_open_errors_total"))
    if snapshot is not None:
        series = collector.cgroup_series("pod")
        per_cgroup: Dict[int, Counter] = {}
        for (cgroup_id, _, err), n in snapshot.counts.items():
            if err:
                per_cgroup.setdefault(int(cgroup_id), Counter())[errno_name(err)] += n
        grouped = series.sweep(series.group(per_cgroup), collector.cap,
                               weight=lambda c: sum(c.values()))
        # Capped by the series' own label (namespace, pod, ""), as the sweep
        # retires it; exported without the empty container.
        cells, folded = fold(collector.cap, ((label, (name,), n)
                                             for label, (errs, _) in grouped.items()
                                             for name, n in errs.items()), weight=lambda v: v)
        out: Dict[Tuple[str, str, str], int] = {}
        for key, n in cells.items():
            out[(key[0], key[1], key[-1])] = out.get((key[0], key[1], key[-1]), 0) + n
        for name, n in (collector.cap.retired or Counter()).items():
            out[(OTHER, OTHER, name)] = out.get((OTHER, OTHER, name), 0) + n
        if snapshot.overflow:
            out[(OTHER, OTHER, OTHER)] = snapshot.overflow
        for key, value in sorted(out.items()):
            family.add(list(key), value)
        collector.stats.record_folded("file_open_errors_total", folded)
    return [family]
