"""execve: text and JSON output, from a snapshot."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple

from ... import render
from .plan import KEY_HEADERS, Key
from .snapshot import ExecveSnapshot
from ...workloads import GROUPINGS, describe, group_by_workload


def by_workload(snap: ExecveSnapshot, workloads) -> "tuple[ExecveSnapshot, Dict[str, dict]]":
    """The snapshot's cgroup ids grouped by pod, container or service: a
    snapshot keyed by display string, and each key's JSON fields."""
    names = GROUPINGS[snap.by]
    fields: Dict[str, dict] = {}

    def group(counts: Dict[Key, int]) -> Dict[Key, int]:
        out: Dict[Key, int] = {}
        per_workload = group_by_workload({int(k): v for k, v in counts.items()}, workloads,
                                         snap.by)
        for values, count in per_workload.items():
            key = describe(values, snap.by)
            fields[key] = dict(zip(names, values, strict=True))
            out[key] = out.get(key, 0) + count
        return out

    grouped = ExecveSnapshot(snap.by, group(snap.counts), snap.overflow,
                             group(snap.failed),
                             snap.failed_overflow, snap.taken_at, snap.elapsed)
    return grouped, fields


OUTCOMES = ("ok", "failed")
COLUMNS_HELP = ("RAN: calls that succeeded (the new program started); FAILED: calls that "
                "returned an error (ENOENT: no such file, as each miss of a $PATH walk; "
                "EACCES...); CALLS/s: both, per second.")


def ordered_keys(snap: ExecveSnapshot, top: int, outcome: Optional[str] = None
                 ) -> Tuple[List[Key], List[Key]]:
    """(the top keys, the rest): by what ran, then what failed; with
    outcome "ok" or "failed", only the keys with calls of that outcome,
    most first."""
    keys: Iterable[Key] = set(snap.counts) | set(snap.failed)
    if outcome == "failed":
        keys = [k for k in keys if snap.failed.get(k, 0)]
        weight = lambda k: (snap.failed.get(k, 0), snap.ran(k))    # noqa: E731
    else:
        if outcome == "ok":
            keys = [k for k in keys if snap.ran(k)]
        weight = lambda k: (snap.ran(k), snap.failed.get(k, 0))    # noqa: E731
    ordered = sorted(keys, key=lambda k: (tuple(-w for w in weight(k)), str(k)))
    return ordered[:top], ordered[top:]


def execve_table(snap: ExecveSnapshot, top: int, seconds: float,
                 timestamp: Optional[str] = None, rated: bool = True,
                 outcome: Optional[str] = None) -> str:
    """A table of the top keys: calls that ran, calls that failed, calls
    per second; then the keys left out, calls not keyed, and the total.
    rated=False: a few-ms interval, whose rates would mean nothing ("-")."""
    def rate(count: int) -> str:
        return f"{render.rate(count, seconds):.1f}" if rated else "-"

    def row(label: str, ran: int, failed: int) -> list:
        return [label, ran, failed, rate(ran + failed)]

    shown, rest = ordered_keys(snap, top, outcome)
    rows = [row(str(k), snap.ran(k), snap.failed.get(k, 0)) for k in shown]
    if rest:
        rows.append(row(f"[{len(rest)} other keys]", sum(snap.ran(k) for k in rest),
                        sum(snap.failed.get(k, 0) for k in rest)))
    if snap.overflow or snap.failed_overflow:
        rows.append(row("[map full: not keyed]", max(0, snap.overflow - snap.failed_overflow),
                        snap.failed_overflow))
    rows.append(row("TOTAL", snap.total_ran, snap.total_failed))
    lines = render.fitted_table(rows, [KEY_HEADERS[snap.by], "RAN", "FAILED", "CALLS/s"],
                                shorten_first=render.shorten).splitlines()
    # A rule above the total line, as wide as the table.
    lines.insert(len(lines) - 1, "-" * max(len(line) for line in lines))
    title = f"{timestamp} " if timestamp else ""
    which = {"ok": " (keys with execs that ran)",
             "failed": " (keys with failed execs)"}.get(outcome or "", "")
    return "\n".join([title + f"execve calls over {seconds:.1f}s{which}"] + lines)


def execve_json(snap: ExecveSnapshot, top: int, seconds: float, probe: dict, when: str,
                rated: bool = True, fields: Optional[Dict[Any, dict]] = None,
                outcome: Optional[str] = None) -> dict:
    """groups[]: each key with its labels, calls (count), ran, failed and
    calls per second (rate); the same fields for the rest and the total."""
    def rate(count: int) -> Optional[float]:
        return round(render.rate(count, seconds), 3) if rated else None

    shown, rest = ordered_keys(snap, top, outcome)
    groups = []
    for key in shown:
        ran, failed = snap.ran(key), snap.failed.get(key, 0)
        group = {"key": key, **(fields or {}).get(key, {}), "count": ran + failed,
                 "ran": ran, "failed": failed, "rate": rate(ran + failed)}
        groups.append(group)
    other_ran = sum(snap.ran(k) for k in rest)
    other_failed = sum(snap.failed.get(k, 0) for k in rest)
    return {
        "time": when,
        "interval_s": round(seconds, 3),
        "by": snap.by,
        "outcome": outcome,
        "groups": groups,
        "other": {"keys": len(rest), "count": other_ran + other_failed, "ran": other_ran,
                  "failed": other_failed},
        "overflow": snap.overflow,
        "failed_overflow": snap.failed_overflow,
        "total": snap.total,
        "ran": snap.total_ran,
        "failed": snap.total_failed,
        "probe": probe,
    }
