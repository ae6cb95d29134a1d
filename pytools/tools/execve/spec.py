"""execve: the tool's spec (pytools.tool.Tool) and the reader that loads bpf/execve.c."""

from __future__ import annotations

import time
from typing import Dict, Optional

import click

from ...maps import items
from ...options import alias_option, max_keys_option, pid_option, top_option
from ...tool import Names, Tool, View
from ...workloads import Workloads, pod_log_root
from ..base import Reader, load
from .trace import NOTE as TRACE_NOTE, OPTIONS as TRACE_OPTIONS, PARENT_FIELDS, check_pages
from .trace import cflags as trace_cflags, features as trace_features, run as run_trace
from .metrics import execve_families
from .output import COLUMNS_HELP, by_workload, execve_json, execve_table
from .plan import (DEFAULT_MAX_KEYS, EXPORTER_KINDS, KEY_KINDS, MAX_KEYS_LIMIT, WORKLOAD_KINDS,
                   ExecveOptions, Key, cflags, decode_key, plan)
from .snapshot import ExecveSnapshot, delta


def _read_counts(table, by: str) -> Dict[Key, int]:
    counts: Dict[Key, int] = {}
    for raw_key, value in items(table):
        key = decode_key(by, raw_key)
        counts[key] = counts.get(key, 0) + int(value)
    return counts


class ExecveReader(Reader):
    """Loads bpf/execve.c and reads its maps into ExecveSnapshots."""

    def __init__(self, options: Optional[ExecveOptions] = None, mode: str = "auto",
                 **fields):
        """`fields`: the options' fields, where no `options` are given."""
        options = options or ExecveOptions(**fields)
        self.by = options.by
        self.program = load(TOOL, options, mode)
        if options.by in WORKLOAD_KINDS or options.trace:
            self.names = Names(workloads=Workloads(log_root=pod_log_root()))

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


class ExecveTool(Tool):
    name = "execve"
    order = 10
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

    Options = ExecveOptions
    feature_fields = PARENT_FIELDS
    features = staticmethod(trace_features)
    delta = staticmethod(delta)
    families = staticmethod(execve_families)

    @staticmethod
    def plan(options=None):
        return plan()

    @staticmethod
    def cflags(options):
        return cflags(options.by, options.pid, options.uid, options.max_keys) + \
            trace_cflags(options)

    def options_of(self, params):
        check_pages(params)
        return super().options_of(params)

    def open(self, options, mode="auto"):
        return ExecveReader(options, mode)

    def run(self, reader, session):
        if not session.opts.trace:
            return session.intervals(reader)
        run_trace(reader, session)

    def cumulative(self, options):
        return options.cumulative

    def text(self, shown, view: View) -> str:
        if shown.by in WORKLOAD_KINDS:
            shown, _ = by_workload(shown, view.names.workloads)
        return execve_table(shown, view.opts.top, shown.elapsed, view.clock,
                            view.rated(shown.elapsed), view.opts.outcome)

    def json(self, shown, view: View) -> dict:
        fields = None
        if shown.by in WORKLOAD_KINDS:
            shown, fields = by_workload(shown, view.names.workloads)
        return execve_json(shown, view.opts.top, shown.elapsed, view.probe, view.when,
                           view.rated(shown.elapsed), fields, view.opts.outcome)

    def exporter_open(self, opts, mode="auto"):
        return ExecveReader(ExecveOptions(by=opts["by"]), mode)

TOOL = ExecveTool()
