"""execve-counter: calls to execve/execveat by filename, comm, uid or cgroup."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

import click

from .. import render
from ..deltas import diff
from ..names import c_string
from ..options import alias_option, max_keys_option, pid_option, top_option
from ..probes import Candidate, Hook
from ..tool import Tool, View
from .execve_trace import NOTE as TRACE_NOTE, OPTIONS as TRACE_OPTIONS, PARENT_FIELDS
from .execve_trace import cflags as trace_cflags, features as trace_features, reader_opts
from .base import Reader

KEY_KINDS = ("filename", "comm", "uid", "cgroup", "pod", "container", "service")
# Keyed by cgroup id in the kernel, named in user space (pytools.workloads).
WORKLOAD_KINDS = ("pod", "container", "service")
EXPORTER_KINDS = ("filename", "comm", "uid", "cgroup", "pod", "container", "service")
DEFAULT_MAX_KEYS = 10240
MAX_KEYS_LIMIT = 1 << 20
EMPTY_FILENAME = "[execveat AT_EMPTY_PATH]"
KEY_HEADERS = {"filename": "FILENAME", "comm": "COMM", "uid": "UID", "cgroup": "CGROUP ID",
               "pod": "NAMESPACE/POD", "container": "NAMESPACE/POD/CONTAINER",
               "service": "SERVICE"}

Key = Union[str, int]


def plan() -> List[Candidate]:
    """Entry counts every call; exit tells which failed (its return value)."""
    hooks = tuple(Hook("tracepoint", f"syscalls:sys_{edge}_{name}")
                  for edge in ("enter", "exit") for name in ("execve", "execveat"))
    return [Candidate("tracepoint", "execve/execveat syscalls via tracepoints",
                      "PROBE_TRACEPOINT", hooks)]


def cflags(by: str, pid: Optional[int] = None, uid: Optional[int] = None,
           max_keys: int = DEFAULT_MAX_KEYS) -> List[str]:
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
    """Counts since the program attached (or, after `delta`, over an interval):
    calls per key, and of those the calls that returned an error. A call
    that did not fail ran: the new program started (an exec does not return
    on success; its exit tracepoint sees 0)."""
    by: str
    counts: Dict[Key, int]             # calls
    overflow: int = 0                  # calls not keyed because the map was full
    failed: Dict[Key, int] = field(default_factory=dict)   # calls that returned < 0
    failed_overflow: int = 0
    taken_at: float = 0.0              # time.monotonic() of the read
    elapsed: float = 0.0               # seconds covered (set by delta)

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.overflow

    @property
    def total_failed(self) -> int:
        return sum(self.failed.values()) + self.failed_overflow

    @property
    def total_ran(self) -> int:
        return max(0, self.total - self.total_failed)

    def ran(self, key: Key) -> int:
        return max(0, self.counts.get(key, 0) - self.failed.get(key, 0))


def delta(cur: ExecveSnapshot, prev: ExecveSnapshot) -> ExecveSnapshot:
    """What happened between two cumulative snapshots (keys with no change dropped)."""
    return ExecveSnapshot(
        by=cur.by,
        counts=diff(cur.counts, prev.counts),
        overflow=cur.overflow - prev.overflow,
        failed=diff(cur.failed, prev.failed),
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
                 mode: str = "auto", trace: Optional[dict] = None):
        from ..loader import load  # keeps this module importable without bcc
        self.by = by
        # trace: execve_trace's options (trace, outcome, buffer_pages, ringbuf)
        opts = {"by": by, "pid": pid, "uid": uid, "max_keys": max_keys, **(trace or {})}
        self.program = load(TOOL.name, TOOL.plan(opts), TOOL.cflags(opts), mode,
                            TOOL.features(opts), command=TOOL.command)
        self.workloads = None
        if by in WORKLOAD_KINDS or opts.get("trace"):
            from ..workloads import Workloads, pod_log_root
            self.workloads = Workloads(log_root=pod_log_root())

    def forget_cgroups(self, ids) -> None:
        """Delete the counts of these cgroup ids (gone pods) from the kernel."""
        for name in ("execve_total", "execve_failed"):
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
            failed=_read_counts(self.program.table("execve_failed"), self.by),
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
    keys = set(snap.counts) | set(snap.failed)
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
                rated: bool = True, fields: Optional[Dict[str, dict]] = None,
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


# ------------------------------------------------------------------ exporter

def execve_families(snapshot: Optional[ExecveSnapshot], collector) -> list:
    """execve_total{<by>}: calls to execve/execveat by key, and
    execve_failed_total{<by>}: of those, the calls that returned an error
    (what ran is the difference); by pod or container, the labels are
    namespace, pod and container, by service the service. Calls the kernel
    could not key (its map full) and keys beyond the cap are in `~other`,
    the same keys in both families."""
    from ..families import LabelledCounterFamily
    from ..series import OTHER, fold, label_value
    from ..workloads import GROUPINGS
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


# ---------------------------------------------------------------------- spec

class ExecveTool(Tool):
    name = "execve"
    command = "execve-counter"
    summary = "execve/execveat calls that ran and failed, per file name, caller, uid or pod"
    description = f"""Count execve() and execveat() calls, what ran and what failed, by file
    name, caller, user, cgroup, pod, container or service.

    Every INTERVAL seconds (default 5), COUNT times or until Ctrl-C, print the
    keys with most execs that ran, then the total. Columns: {COLUMNS_HELP}

    {TRACE_NOTE}
    """
    examples = """\b
Examples:
  execve-counter              # top 10 executed files every 5 seconds
  execve-counter 1 10         # every second, ten times
  execve-counter --by comm    # who calls exec (the caller's name)
  execve-counter --by uid -T  # per user, with a time on each interval
  execve-counter --by pod     # per Kubernetes pod and container
  execve-counter --failed     # only keys with failed execs, most first
  execve-counter -p 1234      # execs made by process 1234 only
  execve-counter --json 1 5   # one JSON object per interval
  execve-counter --trace      # each exec: pod, pid, ppid, result, arguments
  execve-counter --trace --failed --by pod  # failed execs in pods only
  execve-counter --cumulative # totals since start instead of per interval
"""
    options = (
        click.option("--by", type=click.Choice(KEY_KINDS), default="filename",
                     show_default=True, help="What to count execs by."),
        alias_option("-b", to="by", use="--by", type=click.Choice(KEY_KINDS)),
        pid_option("Only execs by this process."),
        click.option("--uid", type=click.IntRange(0, 2**32 - 2),
                     help="Only execs by this user id."),
        top_option("Rows to show; the rest are summed on one line."),
        click.option("--failed", "outcome", flag_value="failed",
                     help="Only keys with failed execs, most failures first "
                          "(--trace: only failed execs)."),
        click.option("--ok", "outcome", flag_value="ok",
                     help="Only keys with execs that ran (--trace: only those execs)."),
        click.option("--cumulative", is_flag=True,
                     help="Show totals since start, not per interval."),
        max_keys_option(MAX_KEYS_LIMIT, DEFAULT_MAX_KEYS,
                        "calls beyond it are counted as not keyed"),
    ) + TRACE_OPTIONS
    exporter_options = (
        click.option("--execve-by", "execve_by", type=click.Choice(EXPORTER_KINDS),
                     default="comm", show_default=True,
                     help="Labels of execve_total and execve_failed_total (pod or "
                          "container: namespace, pod, container)."),
    )

    def plan(self, opts=None):
        return plan()

    def cflags(self, opts):
        return cflags(opts["by"], opts.get("pid"), opts.get("uid"),
                      opts.get("max_keys", DEFAULT_MAX_KEYS)) + trace_cflags(opts)

    feature_fields = PARENT_FIELDS

    def features(self, opts):
        return trace_features(opts)

    def open(self, opts, mode="auto"):
        return ExecveReader(opts["by"], opts["pid"], opts["uid"], opts["max_keys"], mode,
                            reader_opts(opts))

    def run(self, reader, session):
        if not session.opts.get("trace"):
            return session.intervals(reader)
        from .execve_trace import run
        run(reader, session)

    def delta(self, cur, prev):
        return delta(cur, prev)

    def cumulative(self, opts):
        return opts["cumulative"]

    def text(self, shown, view: View) -> str:
        if shown.by in WORKLOAD_KINDS:
            shown, _ = by_workload(shown, view.reader.workloads)
        return execve_table(shown, view.opts["top"], shown.elapsed, view.clock,
                            view.rated(shown.elapsed), view.opts.get("outcome"))

    def json(self, shown, view: View) -> dict:
        fields = None
        if shown.by in WORKLOAD_KINDS:
            shown, fields = by_workload(shown, view.reader.workloads)
        return execve_json(shown, view.opts["top"], shown.elapsed, view.probe, view.when,
                           view.rated(shown.elapsed), fields, view.opts.get("outcome"))

    def exporter_open(self, opts, mode="auto"):
        return ExecveReader(by=opts["by"], mode=mode)

    def families(self, snapshot, collector):
        return execve_families(snapshot, collector)


TOOL = ExecveTool()
