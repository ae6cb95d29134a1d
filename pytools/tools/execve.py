"""execve-counter: calls to execve/execveat by filename, comm, uid or cgroup."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Union

import click

from .. import render
from ..deltas import diff
from ..names import c_string
from ..options import pid_option, top_option
from ..probes import Candidate, Hook
from ..tool import Tool, View
from .base import Reader

KEY_KINDS = ("filename", "comm", "uid", "cgroup", "pod", "container", "service")
# Keyed by cgroup id in the kernel, named in user space (pytools.workloads).
WORKLOAD_KINDS = ("pod", "container", "service")
EXPORTER_KINDS = ("filename", "comm", "uid", "cgroup", "pod", "service")
DEFAULT_MAX_KEYS = 10240
MAX_KEYS_LIMIT = 1 << 20
EMPTY_FILENAME = "[execveat AT_EMPTY_PATH]"
KEY_HEADERS = {"filename": "FILENAME", "comm": "COMM", "uid": "UID", "cgroup": "CGROUP ID",
               "pod": "NAMESPACE/POD", "container": "NAMESPACE/POD/CONTAINER",
               "service": "SERVICE"}

Key = Union[str, int]


def plan(count_failed: bool = False) -> List[Candidate]:
    hooks = [Hook("tracepoint", "syscalls:sys_enter_execve"),
             Hook("tracepoint", "syscalls:sys_enter_execveat")]
    if count_failed:
        hooks += [Hook("tracepoint", "syscalls:sys_exit_execve"),
                  Hook("tracepoint", "syscalls:sys_exit_execveat")]
    return [Candidate("tracepoint", "execve/execveat syscalls via tracepoints",
                      "PROBE_TRACEPOINT", tuple(hooks))]


def cflags(by: str, pid: Optional[int] = None, uid: Optional[int] = None,
           max_keys: int = DEFAULT_MAX_KEYS, count_failed: bool = False) -> List[str]:
    if by not in KEY_KINDS:
        raise ValueError(f"unknown key {by!r}; choose from {', '.join(KEY_KINDS)}")
    if max_keys < 1:
        raise ValueError("max_keys must be at least 1")
    kernel_key = "cgroup" if by in WORKLOAD_KINDS else by
    flags = [f"-DBY_{kernel_key.upper()}", f"-DMAX_KEYS={max_keys}"]
    if pid is not None:
        flags.append(f"-DFILTER_PID={pid}")
    if uid is not None:
        flags.append(f"-DFILTER_UID={uid}")
    if count_failed:
        flags.append("-DCOUNT_FAILED")
    return flags


def decode_key(by: str, raw) -> Key:
    """A map key (a ctypes struct, or anything with the same field) as plain data."""
    if by == "filename":
        return c_string(raw.filename) or EMPTY_FILENAME
    if by == "comm":
        return c_string(raw.comm)
    if by == "uid":
        return int(raw.uid)
    if by == "cgroup" or by in WORKLOAD_KINDS:
        return int(raw.cgroup_id)
    raise ValueError(f"unknown key {by!r}")


@dataclass(frozen=True)
class ExecveSnapshot:
    """Counts since the program attached (or, after `delta`, over an interval)."""
    by: str
    counts: Dict[Key, int]
    overflow: int = 0                  # calls not keyed because the map was full
    failed: Optional[Dict[Key, int]] = None   # None: failures not counted
    failed_overflow: int = 0
    taken_at: float = 0.0              # time.monotonic() of the read
    elapsed: float = 0.0               # seconds covered (set by delta)

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.overflow

    @property
    def total_failed(self) -> Optional[int]:
        if self.failed is None:
            return None
        return sum(self.failed.values()) + self.failed_overflow


def delta(cur: ExecveSnapshot, prev: ExecveSnapshot) -> ExecveSnapshot:
    """What happened between two cumulative snapshots (keys with no change dropped)."""
    return ExecveSnapshot(
        by=cur.by,
        counts=diff(cur.counts, prev.counts),
        overflow=cur.overflow - prev.overflow,
        failed=None if cur.failed is None else diff(cur.failed, prev.failed or {}),
        failed_overflow=cur.failed_overflow - prev.failed_overflow,
        taken_at=cur.taken_at,
        elapsed=cur.taken_at - prev.taken_at,
    )


def _read_counts(table, by: str) -> Dict[Key, int]:
    counts: Dict[Key, int] = {}
    from ..maps import items
    for raw_key, value in items(table):
        key = decode_key(by, raw_key)
        counts[key] = counts.get(key, 0) + int(value)
    return counts


class ExecveReader(Reader):
    """Loads bpf/execve.c and reads its maps into ExecveSnapshots."""

    def __init__(self, by: str = "filename", pid: Optional[int] = None,
                 uid: Optional[int] = None, max_keys: int = DEFAULT_MAX_KEYS,
                 count_failed: bool = False, mode: str = "auto"):
        from ..loader import load  # keeps this module importable without bcc
        self.by = by
        self.count_failed = count_failed
        opts = {"by": by, "pid": pid, "uid": uid, "max_keys": max_keys, "failed": count_failed}
        self.program = load(TOOL.name, TOOL.plan(opts), TOOL.cflags(opts), mode,
                            command=TOOL.command)
        self.workloads = None
        if by in WORKLOAD_KINDS:
            from ..workloads import Workloads, pod_log_root
            self.workloads = Workloads(log_root=pod_log_root())

    def forget_cgroups(self, ids) -> None:
        """Delete the counts of these cgroup ids (gone pods) from the kernel."""
        for name in ("execve_total", "execve_failed") if self.count_failed else ("execve_total",):
            table = self.program.table(name)
            for cgroup_id in ids:
                key = table.Key()
                key.cgroup_id = cgroup_id
                try:
                    del table[key]
                except KeyError:
                    pass

    def snapshot(self) -> ExecveSnapshot:
        overflow = self.program.table("execve_overflow")
        return ExecveSnapshot(
            by=self.by,
            counts=_read_counts(self.program.table("execve_total"), self.by),
            overflow=int(overflow[0].value),
            failed=(_read_counts(self.program.table("execve_failed"), self.by)
                    if self.count_failed else None),
            failed_overflow=int(overflow[1].value),
            taken_at=time.monotonic(),
        )


# ----------------------------------------------------------------- rendering

def by_workload(snap: ExecveSnapshot, workloads) -> "tuple[ExecveSnapshot, Dict[str, dict]]":
    """The snapshot's cgroup ids grouped by pod, container or service: a
    snapshot keyed by display string, and each key's JSON fields."""
    from ..workloads import GROUPINGS, describe, group_by_workload
    names = GROUPINGS[snap.by]
    fields: Dict[str, dict] = {}

    def group(counts: Dict[Key, int]) -> Dict[Key, int]:
        out: Dict[Key, int] = {}
        per_workload = group_by_workload({int(k): v for k, v in counts.items()}, workloads,
                                         snap.by)
        for values, count in per_workload.items():
            key = describe(values, snap.by)
            fields[key] = dict(zip(names, values))
            out[key] = out.get(key, 0) + count
        return out

    grouped = ExecveSnapshot(snap.by, group(snap.counts), snap.overflow,
                             None if snap.failed is None else group(snap.failed),
                             snap.failed_overflow, snap.taken_at, snap.elapsed)
    return grouped, fields


def execve_table(snap: ExecveSnapshot, top: int, seconds: float,
                 timestamp: Optional[str] = None, rated: bool = True) -> str:
    """A table of the top keys with counts and rates, then the total.
    rated=False: a few-ms interval, whose rates would mean nothing ("-")."""
    with_failed = snap.failed is not None
    key_width = render.WIDTH - (31 if with_failed else 22)

    def rate(count: int) -> str:
        return f"{render.rate(count, seconds):.1f}" if rated else "-"

    shown, other_keys, other_count = render.top_entries(snap.counts, top)
    rows = []
    for key, count in shown:
        row = [render.shorten(str(key), key_width), count, rate(count)]
        if with_failed:
            row.append(snap.failed.get(key, 0))
        rows.append(row)
    if other_keys:
        row = [f"[{other_keys} other keys]", other_count, rate(other_count)]
        if with_failed:
            shown_keys = {k for k, _ in shown}
            row.append(sum(v for k, v in snap.failed.items() if k not in shown_keys))
        rows.append(row)
    if snap.overflow or snap.failed_overflow:
        row = ["[map full: not keyed]", snap.overflow, rate(snap.overflow)]
        if with_failed:
            row.append(snap.failed_overflow)
        rows.append(row)
    total = ["TOTAL", snap.total, rate(snap.total)]
    if with_failed:
        total.append(snap.total_failed)
    rows.append(total)
    headers = [KEY_HEADERS[snap.by], "COUNT", "RATE/s"] + (["FAILED"] if with_failed else [])
    lines = render.table(rows, headers).splitlines()
    # A rule above the total line, as wide as the table.
    lines.insert(len(lines) - 1, "-" * max(len(line) for line in lines))
    title = f"{timestamp} " if timestamp else ""
    return "\n".join([title + f"execve calls over {seconds:.1f}s"] + lines)


def execve_json(snap: ExecveSnapshot, top: int, seconds: float, probe: dict, when: str,
                rated: bool = True, fields: Optional[Dict[str, dict]] = None) -> dict:
    def rate(count: int) -> Optional[float]:
        return round(render.rate(count, seconds), 3) if rated else None

    shown, other_keys, other_count = render.top_entries(snap.counts, top)
    entries = []
    for key, count in shown:
        entry = {"key": key, "count": count, "rate": rate(count)}
        entry.update((fields or {}).get(key, {}))
        if snap.failed is not None:
            entry["failed"] = snap.failed.get(key, 0)
        entries.append(entry)
    out = {
        "time": when,
        "interval_s": round(seconds, 3),
        "by": snap.by,
        "entries": entries,
        "other": {"keys": other_keys, "count": other_count},
        "overflow": snap.overflow,
        "total": snap.total,
        "probe": probe,
    }
    if snap.failed is not None:
        out["failed_total"] = snap.total_failed
        out["failed_overflow"] = snap.failed_overflow
    return out


# ------------------------------------------------------------------ exporter

def execve_families(snapshot: Optional[ExecveSnapshot], collector) -> list:
    """execve_total{<by>}: calls to execve/execveat by key; by pod, the
    labels are namespace, pod and container, by service the service.
    Calls the kernel could not key (its map full) and keys beyond the cap
    are in `~other`."""
    from ..families import LabelledCounterFamily
    from ..series import OTHER, fold, label_value
    from ..workloads import GROUPINGS
    by = collector.opts["by"]
    series = collector.cgroup_series("container" if by == "pod" else by) \
        if by in WORKLOAD_KINDS else None
    names = list(GROUPINGS["container" if by == "pod" else by]) if series else [by]
    family = LabelledCounterFamily("execve", f"execve and execveat calls by {by}.", names,
                                   collector.render_cache("execve_total"))
    if snapshot is not None:
        if series:
            grouped = series.sweep(series.group(snapshot.counts), collector.cap)
            counts = {label: total for label, (total, _) in grouped.items()}
        else:
            counts = {(label_value(str(k)),): v for k, v in snapshot.counts.items()}
        cells, folded = fold(collector.cap, ((key, (), v) for key, v in counts.items()),
                             weight=lambda v: v)
        other_key = (OTHER,) * len(names)
        other = cells.pop(other_key, 0) + snapshot.overflow + (collector.cap.retired or 0)
        for key, value in sorted(cells.items()):
            family.add(key, value)
        if other or folded:
            family.add(list(other_key), other)
        collector.stats.record_folded("execve_total", folded)
    return [family]


# ---------------------------------------------------------------------- spec

class ExecveTool(Tool):
    name = "execve"
    command = "execve-counter"
    summary = "execve/execveat calls per file name, caller, uid or cgroup, with rates"
    description = """Count execve() and execveat() calls, by file name, caller, user or cgroup.

    Every INTERVAL seconds (default 5), COUNT times or until Ctrl-C, print the
    most frequent keys with their count and rate per second, then the total.
    """
    examples = """\b
Examples:
  execve-counter              # top 10 executed files every 5 seconds
  execve-counter 1 10         # every second, ten times
  execve-counter --by comm    # who calls exec (the caller's name)
  execve-counter --by uid -T  # per user, with a time on each interval
  execve-counter --failed     # also count execs that failed (ENOENT, EACCES)
  execve-counter -p 1234      # execs made by process 1234 only
  execve-counter --json 1 5   # one JSON object per interval
  execve-counter --cumulative # totals since start instead of per interval
"""
    options = (
        click.option("-b", "--by", type=click.Choice(KEY_KINDS), default="filename",
                     show_default=True, help="What to count execs by."),
        pid_option("Only execs by this process."),
        click.option("--uid", type=click.IntRange(0, 2**32 - 2),
                     help="Only execs by this user id."),
        top_option("Rows to show; the rest are summed on one line."),
        click.option("--failed", is_flag=True, help="Also count execs that returned an error."),
        click.option("--cumulative", is_flag=True,
                     help="Show totals since start, not per interval."),
        click.option("--max-keys", type=click.IntRange(1, MAX_KEYS_LIMIT),
                     default=DEFAULT_MAX_KEYS, show_default=True,
                     help="Bound of the kernel map; calls beyond it are counted as not keyed."),
    )
    exporter_options = (
        click.option("--execve-by", "execve_by", type=click.Choice(EXPORTER_KINDS),
                     default="comm", show_default=True,
                     help="Labels of execve_total (pod: namespace, pod, container)."),
    )

    def plan(self, opts=None):
        return plan((opts or {}).get("failed", False))

    def cflags(self, opts):
        return cflags(opts["by"], opts.get("pid"), opts.get("uid"),
                      opts.get("max_keys", DEFAULT_MAX_KEYS), opts.get("failed", False))

    def open(self, opts, mode="auto"):
        return ExecveReader(opts["by"], opts["pid"], opts["uid"], opts["max_keys"],
                            opts["failed"], mode)

    def delta(self, cur, prev):
        return delta(cur, prev)

    def cumulative(self, opts):
        return opts["cumulative"]

    def text(self, shown, view: View) -> str:
        if shown.by in WORKLOAD_KINDS:
            shown, _ = by_workload(shown, view.reader.workloads)
        return execve_table(shown, view.opts["top"], shown.elapsed, view.clock,
                            view.rated(shown.elapsed))

    def json(self, shown, view: View) -> dict:
        fields = None
        if shown.by in WORKLOAD_KINDS:
            shown, fields = by_workload(shown, view.reader.workloads)
        return execve_json(shown, view.opts["top"], shown.elapsed, view.probe, view.when,
                           view.rated(shown.elapsed), fields)

    def exporter_open(self, opts, mode="auto"):
        return ExecveReader(by=opts["by"], mode=mode)

    def families(self, snapshot, collector):
        return execve_families(snapshot, collector)


TOOL = ExecveTool()
