"""file-opens: open/openat/openat2 calls by caller, file and result; with
--failed only the failures, by errno; with --trace each one as it happens."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, List, Optional

import click

from ... import cdefs, events
from ...escape import escape
from ...maps import items
from ...options import buffer_pages_option, max_keys_option, pid_option, top_option
from ...probes import Candidate, Hook
from ...syscalls import numbers
from ...tool import Names, Tool, View
from ...workloads import WORKLOAD_KINDS, Workloads, pod_log_root
from ..base import CgroupKeyed, load
from .output import (Cell, OpensSnapshot, by_workload, delta, errors_families, opens_json,
                     opens_table)
from .trace import run_trace

KEY_KINDS = ("comm", "pid", "cgroup", "pod", "container")
CALLS = ("open", "openat", "openat2")
SHARED = {**cdefs.enum("KEY", ("comm", "pid", "cgroup"), first=1),
          **cdefs.enum("CALL", CALLS, first=1),
          "PATH_KEY_LEN": 160,          # path bytes in a count key (the NUL included)
          "PATH_EVENT_LEN": 4096}       # in a traced event: PATH_MAX
DEFAULT_MAX_KEYS = 10240
MAX_KEYS_LIMIT = 1 << 20
PATH_NOTE = ("The path is the one the caller passed: its pointer taken at the "
             "syscall's entry, its bytes read at the exit, after the kernel copied them "
             "(so a path not yet in memory at entry still reads): a relative path is "
             "relative to the caller's working directory (openat: to its directory fd); "
             "a path that could not be read shows as [path unreadable], counted, never dropped.")


@dataclass(frozen=True)
class FileOpensOptions:
    """The command's options (the exporter's: exporter_open), built once."""
    by: str = "comm"
    pid: Optional[int] = None
    top: int = 10
    failed: bool = False
    trace: bool = False
    max_keys: int = DEFAULT_MAX_KEYS
    buffer_pages: int = events.DEFAULT_PAGES
    paths: bool = True         # False (the exporter): no path in the key, no entry hook
    ringbuf: bool = True       # False (tests): the perf buffer, as before 5.8


def syscalls_here(machine: Optional[str] = None) -> List[str]:
    """The opens this architecture has (arm64 has no open(2)): pytools.syscalls."""
    table = numbers(machine) or numbers("x86_64")
    return [call for call in CALLS if call in table]


def plan(need_enter: bool = True, machine: Optional[str] = None) -> List[Candidate]:
    hooks = []
    for call in syscalls_here(machine):
        define = "" if call == "openat" else f"HOOK_{call.upper()}"
        if need_enter:
            hooks.append(Hook("tracepoint", f"syscalls:sys_enter_{call}", define=define))
        hooks.append(Hook("tracepoint", f"syscalls:sys_exit_{call}", define=define))
    # any_of: openat2 (5.6+) only where the kernel has it.
    return [Candidate("tracepoint", "open syscalls via tracepoints", "PROBE_TRACEPOINT",
                      tuple(hooks), any_of=True)]


def cflags(by: str, pid: Optional[int] = None, failed: bool = False, trace: bool = False,
           paths: bool = True, max_keys: int = DEFAULT_MAX_KEYS,
           pages: int = events.DEFAULT_PAGES) -> List[str]:
    if by not in KEY_KINDS:
        raise ValueError(f"unknown key {by!r}; choose from {', '.join(KEY_KINDS)}")
    if max_keys < 1:
        raise ValueError("max_keys must be at least 1")
    kernel_key = "cgroup" if by in WORKLOAD_KINDS else by
    flags = cdefs.flags(SHARED) + events.page_flags(pages) + [
        f"-DBY={SHARED['KEY_' + kernel_key.upper()]}", f"-DMAX_KEYS={max_keys}"]
    if pid is not None:
        flags.append(f"-DFILTER_PID={pid}")
    if failed:
        flags.append("-DFAILED_ONLY")
    if trace:
        flags.append("-DTRACE")
    if not paths:
        flags.append("-DNO_PATH")
    return flags


def decode_key(by: str, raw):
    if by == "comm":
        return escape(bytes(raw.comm).split(b"\0", 1)[0])
    if by == "pid":
        return int(raw.pid)
    return int(raw.cgroup_id)


class FileOpensReader(CgroupKeyed):
    """Loads bpf/file_opens.c and reads its maps into OpensSnapshots."""
    count_map = "file_opens_total"

    def __init__(self, options: Optional[FileOpensOptions] = None, mode: str = "auto",
                 **fields):
        """`fields`: the options' fields, where no `options` are given."""
        options = options or FileOpensOptions(**fields)
        self.by, self.paths, self.pages = options.by, options.paths, options.buffer_pages
        self.program = load(TOOL, options, mode)
        self.calls = {SHARED[f"CALL_{c.upper()}"]: c for c in CALLS}
        if options.by in WORKLOAD_KINDS or options.trace:
            self.names = Names(workloads=Workloads(log_root=pod_log_root()))

    def snapshot(self) -> OpensSnapshot:
        counts: Dict[Cell, int] = {}
        for raw, value in items(self.program.table("file_opens_total")):
            path = bytes(raw.path).split(b"\0", 1)[0] if self.paths else b""
            cell = (decode_key(self.by, raw), path, int(raw.err))
            counts[cell] = counts.get(cell, 0) + int(value)
        return OpensSnapshot(self.by, counts,
                             int(self.program.table("file_opens_overflow")[0].value),
                             time.monotonic(),
                             path_cut=SHARED["PATH_KEY_LEN"] - 1 if self.paths else 0)


class FileOpensTool(Tool):
    name = "file_opens"
    order = 60
    command = "file-opens"
    summary = "open/openat/openat2 calls by caller or pod, file and result; --trace each"
    description = f"""Count open(), openat() and openat2() calls by caller (or pod),
    file and result; with --failed only the failures, by errno (an ENOENT
    storm, EACCES, EMFILE); with --trace print each open as it happens.

    Every INTERVAL seconds (default 5), COUNT times or until Ctrl-C, print the
    most frequent (caller, result, path) rows with counts and rates. Syscall
    tracepoints only. {PATH_NOTE} Count keys hold the first
    {SHARED['PATH_KEY_LEN'] - 1} bytes of a path (a longer one is marked
    [cut]); traced events the whole path. Paths and names are printed
    escaped on one line (\\n, \\e, \\xHH for bytes that are not UTF-8). In
    --trace, events the buffer could not take are counted in the kernel and
    shown as "[N events lost]".
    """
    examples = """\b
Examples:
  file-opens                   # top 10 (caller, result, path) every 5 s
  file-opens --failed --by pod # failed opens per pod and errno
  file-opens --failed -p 1234  # what process 1234 fails to open
  file-opens --trace           # one line per open, as it happens
  file-opens --trace --failed --json  # one JSON object per failed open
  file-opens --by pid 1 5      # per process, every second, five times
"""
    options = (
        click.option("--by", type=click.Choice(KEY_KINDS), default="comm",
                     show_default=True, help="What to count opens by (with file and result)."),
        pid_option("Only opens by this process."),
        top_option("Rows to show; the rest are summed on one line."),
        click.option("--failed", is_flag=True, help="Only opens that returned an error."),
        click.option("--trace", is_flag=True, help="Print each open instead of counts."),
        max_keys_option(MAX_KEYS_LIMIT, DEFAULT_MAX_KEYS,
                        "opens beyond it are counted as not keyed"),
        buffer_pages_option(),
    )
    exporter_options = ()

    Options = FileOpensOptions
    delta = staticmethod(delta)
    families = staticmethod(errors_families)

    @staticmethod
    def plan(options=None):
        options = options or FileOpensOptions()
        return plan(options.paths or options.trace)    # the entry hook reads the path

    @staticmethod
    def cflags(options):
        return cflags(options.by, options.pid, options.failed, options.trace, options.paths,
                      options.max_keys, options.buffer_pages)

    @staticmethod
    def features(options):
        return events.stream_features(options.trace, options.ringbuf)

    def options_of(self, params):
        events.checked_pages(params.get("buffer_pages", events.DEFAULT_PAGES))
        return super().options_of(params)

    def open(self, options, mode="auto"):
        return FileOpensReader(options, mode)

    def run(self, reader, session):
        if not session.opts.trace:
            return session.intervals(reader)
        deadline = (time.monotonic() + session.interval * session.count
                    if session.count else None)
        run_trace(reader, session, reader.pod_of, reader.pages, deadline)

    @staticmethod
    def _named(shown, view: View):
        """Cgroup ids as pods or containers where --by asks: (snapshot, JSON fields)."""
        if shown.by not in WORKLOAD_KINDS:
            return shown, None
        return by_workload(shown, view.names.workloads)

    def text(self, shown, view: View) -> str:
        named, _ = self._named(shown, view)
        return opens_table(named, view.opts.top, shown.elapsed, view.opts.failed,
                           view.clock, view.rated(shown.elapsed))

    def json(self, shown, view: View) -> dict:
        named, fields = self._named(shown, view)
        return opens_json(named, view.opts.top, shown.elapsed, view.probe, view.when,
                          view.rated(shown.elapsed), fields)

    def exporter_open(self, opts, mode="auto"):
        # Errors only, by cgroup, no path: one exit hook, a map bounded by
        # pods x errnos.
        return FileOpensReader(FileOpensOptions(by="cgroup", failed=True, paths=False), mode)

TOOL = FileOpensTool()
