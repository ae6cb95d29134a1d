"""readahead-stats: requests, windows and pages read ahead, per device and
file, and what became of the pages (efficiency)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, List, Optional

import click

from ... import cdefs
from ...hist import SLOTS, Log2Hist
from ...maps import delete_keys, items
from ...names import DeviceNames, FileNames, c_string
from ...options import alias_option, device_option, pid_option, top_option
from ...probes import Candidate, Hook
from ...kernel import kernel_version_code
from ...tool import Names, Tool, View
from ...workloads import Workloads, pod_log_root
from ..base import Reader, load
from .efficiency import EFFICIENCY, kernel_efficiency_feature
from .metrics import (readahead_efficiency_families, readahead_families,
                                readahead_pod_families)
from .output import readahead_json, readahead_text, run_trace
from .snapshot import (EVENT_WINDOW, EVENTS, KINDS, Counts, ReadaheadSnapshot,
                                 Usage, delta)

# What bpf/readahead.c takes from here (pytools/cdefs.py): passed as -D flags.
SHARED = {**cdefs.enum("KIND", KINDS), **cdefs.enum("EVENT", EVENTS), "HIST_SLOTS": SLOTS}


TRACEPOINTS = ("page_cache_sync_ra", "page_cache_async_ra", "page_cache_ra_order",
               "page_cache_ra_unbounded")
# (function, BPF handler): the kernels each exists in are in bpf/readahead.c.
KPROBE_FUNCTIONS = (
    ("page_cache_sync_ra", "kp_sync_ra"),
    ("page_cache_async_ra", "kp_async_ra"),
    ("page_cache_sync_readahead", "kp_sync_readahead"),
    ("page_cache_async_readahead", "kp_async_readahead"),
    ("page_cache_ra_unbounded", "kp_ra_unbounded"),
    ("page_cache_ra_order", "kp_ra_order"),
    ("__do_page_cache_readahead", "kp_do_readahead"),
)


# fentry hooks the 5.10+ names only: a kernel with fentry (5.5+) but without
# them (5.5-5.9) falls through to kprobes.
FENTRY_FUNCTIONS = ("page_cache_sync_ra", "page_cache_async_ra", "page_cache_ra_unbounded",
                    "page_cache_ra_order")


ORDER_REASON = (
    "cheapest for the whole machine first: fentry on the readahead functions (a "
    "direct call), then the readahead tracepoints (6.18+: static, a perf event "
    "each), then kprobes (a trap each). All of them run only on readahead, never "
    "on other work.")


@dataclass(frozen=True)
class ReadaheadOptions:
    """The command's options (the exporter's: exporter_open), built once."""
    device: Optional[int] = None
    pid: Optional[int] = None
    top: int = 10
    table: Optional[str] = None    # --table pod|container: also counted per cgroup
    trace: bool = False
    efficiency: bool = False       # the command's default is on; measured only without trace
    files: bool = True             # False (the exporter): no per-file map

    @property
    def measures_efficiency(self) -> bool:
        return self.efficiency and not self.trace


def plan() -> List[Candidate]:
    """By cost (ORDER_REASON): fentry, the 6.18 tracepoints, kprobes, each
    on whichever readahead functions this kernel has (they were renamed
    across 5.10-5.18)."""
    return [
        Candidate("fentry", "readahead via fentry", "PROBE_FENTRY",
                  tuple(Hook("fentry", fn, define=f"HOOK_{fn}") for fn in FENTRY_FUNCTIONS),
                  any_of=True),
        Candidate("tracepoint", "readahead via tracepoints", "PROBE_TRACEPOINT",
                  tuple(Hook("tracepoint", f"readahead:{n}") for n in TRACEPOINTS)),
        Candidate("kprobe", "readahead via kprobes", "PROBE_KPROBE",
                  tuple(Hook("kprobe", fn, handler, f"HOOK_{fn}")
                        for fn, handler in KPROBE_FUNCTIONS), any_of=True),
    ]


def cflags(release: str, dev: Optional[int] = None, pid: Optional[int] = None,
           trace: bool = False, max_files: int = 10240, files: bool = True,
           by_cgroup: bool = False) -> List[str]:
    flags = cdefs.flags(SHARED) + [f"-DKERNEL_VERSION_CODE={kernel_version_code(release):#x}",
                                   f"-DMAX_FILES={max_files}"]
    if by_cgroup:
        flags.append("-DBY_CGROUP")
    if not files:
        flags.append("-DNO_FILES")
    if dev is not None:
        flags.append(f"-DFILTER_DEV={dev}")
    if pid is not None:
        flags.append(f"-DFILTER_PID={pid}")
    if trace:
        flags.append("-DTRACE")
    return flags


# ---------------------------------------------------------------- the reader

class ReadaheadReader(Reader):
    """Loads bpf/readahead.c and reads its maps into ReadaheadSnapshots."""

    def __init__(self, options: Optional[ReadaheadOptions] = None, mode: str = "auto",
                 **fields):
        """`fields`: the options' fields, where no `options` are given."""
        options = options or ReadaheadOptions(**fields)
        self.by = options.table
        self.program = load(TOOL, options, mode)
        self.names = Names(devices=DeviceNames(), files=FileNames(),
                           workloads=(Workloads(log_root=pod_log_root())
                                      if self.by is not None else None))
        if options.measures_efficiency:
            problem = self.program.missing_features.get(EFFICIENCY)
            if problem and not problem.startswith("readahead efficiency"):
                problem = f"readahead efficiency is not measured: {problem}"
        else:
            problem = "readahead efficiency was not asked for"
        self.efficiency_problem: Optional[str] = problem

    def snapshot(self) -> ReadaheadSnapshot:
        devices = {(k.dev, KINDS[k.kind]): Counts(v.requests, v.req_pages, v.windows, v.pages)
                   for k, v in items(self.program.table("readahead_devices"))}
        files = {(k.dev, k.ino): Counts(v.requests, v.req_pages, v.windows, v.pages)
                 for k, v in items(self.program.table("readahead_files"))}
        slots = [0] * SLOTS
        for k, per_cpu in self.program.table("readahead_window_pages_hist").items():
            slots[k.value] = sum(per_cpu)
        sums = self.program.table("readahead_window_pages_sum")
        pages = sum(sums[sums.Key(0)])
        overflow = self.program.table("readahead_overflow")
        usage = None
        if self.efficiency_problem is None:
            usage = {k.value: Usage(v.added, v.used, v.dropped, v.untracked)
                     for k, v in self.program.table("readahead_usage").items()}
        cgroups = None
        if self.by is not None:
            cgroups = {(k.cgroup_id, KINDS[k.kind]): Counts(v.requests, v.req_pages, v.windows,
                                                            v.pages)
                       for k, v in items(self.program.table("readahead_cgroups"))}
        return ReadaheadSnapshot(devices, files, Log2Hist(tuple(slots), 1, pages, "pages"),
                                 int(overflow[0].value), time.monotonic(), 0.0, usage,
                                 {d: u.unused_now for d, u in (usage or {}).items()}, cgroups,
                                 self.efficiency_problem)

    def forget_cgroups(self, ids) -> None:
        """Delete these cgroup ids' counts (gone pods) from the kernel."""
        delete_keys(self.program.table("readahead_cgroups"), ids, lambda k: k.cgroup_id)

    def open_trace(self, callback: Callable[[dict], None], lost: Callable[[int], None]):
        """Call callback(event dict) per event; lost(n) when the buffer dropped n."""
        table = self.program.table("readahead_events")

        def on_event(cpu, data, size):
            e = table.event(data)
            callback({"ts_ns": e.ts, "pid": e.pid, "comm": c_string(e.comm),
                      "event": "window" if e.hook == EVENT_WINDOW else "request",
                      "kind": KINDS[e.kind], "dev": e.dev, "ino": e.ino, "index": e.index,
                      "size": e.size, "async_size": e.async_size})

        table.open_perf_buffer(on_event, page_cnt=64, lost_cb=lost)

    def poll(self, timeout_ms: int) -> None:
        self.program.bpf.perf_buffer_poll(timeout=timeout_ms)


# ---------------------------------------------------------------------- spec

class ReadaheadTool(Tool):
    name = "readahead"
    order = 30
    command = "readahead-stats"
    summary = "page cache readahead: requests, windows, pages per device and file"
    description = """Show page cache readahead: sync and async requests, the windows the
    kernel submitted and their pages, per device, per file and (--table) per
    pod or container, with a log2 histogram of window sizes, and its
    efficiency: of the pages read ahead, how many were used, how many left
    the cache unused.

    Uses the readahead tracepoints (Linux 6.18+) where they exist, else
    fentry, else kprobes on the readahead functions of this kernel. Files are
    named by a path: of a process's open file, else found from the inode by
    a file handle (needs CAP_DAC_READ_SEARCH); else major:minor:inode, and
    -v says why. Efficiency needs the filemap tracepoints
    (mm_filemap_get_pages and others), else fexit on filemap_read,
    filemap_fault and filemap_map_pages; where the kernel has neither, the
    output says what is missing.
    """
    examples = """\b
Examples:
  readahead-stats             # readahead per kind, device, file every 5 s
  readahead-stats 1 3         # every second, three times
  readahead-stats -d vda      # one block device (name, /dev path or 254:0)
  readahead-stats -p 1234     # readahead done by process 1234
  readahead-stats --trace     # one line per readahead event
  readahead-stats --json 1 5  # one JSON object per interval
  readahead-stats --no-efficiency  # skip the per-page hooks
  readahead-stats --table pod # also pages per Kubernetes pod
"""
    options = (
        device_option("Only this block device (vda, /dev/vda or 254:0)."),
        pid_option("Only readahead by this process."),
        top_option("Files (and pods or containers) shown, most pages first."),
        click.option("--table", type=click.Choice(["pod", "container"]),
                     help="Also a table of readahead per Kubernetes pod or container."),
        alias_option("-b", "--by", to="table", use="--table",
                     type=click.Choice(["pod", "container"])),
        click.option("--trace", is_flag=True, help="Print each readahead event instead of totals."),
        click.option("--efficiency/--no-efficiency", default=True, show_default=True,
                     help="Follow each page read ahead to its first use or its eviction "
                          "(costs a map lookup per buffered read and page fault: ~110 ns "
                          "per buffered read on a 6.18 VM, scripts/bench-vfsread)."),
    )

    order_reason = ORDER_REASON

    Options = ReadaheadOptions
    delta = staticmethod(delta)

    @staticmethod
    def plan(options=None):
        return plan()

    @staticmethod
    def cflags(options):
        return cflags(os.uname().release, options.device, options.pid, options.trace,
                      files=options.files, by_cgroup=options.table is not None)

    @staticmethod
    def features(options):
        return [kernel_efficiency_feature()] if options.measures_efficiency else []

    def open(self, options, mode="auto"):
        return ReadaheadReader(options, mode)

    def run(self, reader, session):
        if session.opts.trace:
            run_trace(reader, session, reader.names.devices, reader.names.files)
        else:
            session.intervals(reader)

    def text(self, shown, view: View) -> str:
        names = view.names
        return readahead_text(shown, view.label, shown.elapsed, view.opts.top, names.devices,
                              names.files, view.clock, shown.efficiency_problem,
                              names.workloads, view.opts.table,
                              names.files.unresolved if view.verbose else None)

    def json(self, shown, view: View) -> dict:
        names = view.names
        return readahead_json(shown, view.probe, shown.elapsed, view.opts.top, names.devices,
                              names.files, view.when, shown.efficiency_problem,
                              names.workloads, view.opts.table)

    exporter_options = (
        click.option("--readahead-by", "readahead_by", type=click.Choice(["device", "pod"]),
                     default="device", show_default=True,
                     help="device: readahead_*_total by device; pod: also "
                          "readahead_pod_pages_total by namespace and pod."),
        click.option("--readahead-efficiency", "readahead_efficiency", is_flag=True,
                     help="Also follow each page read ahead to its first use or eviction "
                          "(readahead_{tracked,used,dropped,untracked}_pages_total); costs a "
                          "map lookup per buffered read and page fault: ~110 ns per "
                          "buffered read on a 6.18 VM (scripts/bench-vfsread)."),
    )

    def exporter_open(self, opts, mode="auto"):
        table = "pod" if opts.get("by") == "pod" else None
        return ReadaheadReader(ReadaheadOptions(table=table, files=False,
                                                efficiency=bool(opts.get("efficiency"))), mode)

    def families(self, snapshot, collector):
        families = readahead_families(snapshot, collector)
        if collector.opts.get("efficiency"):
            families += readahead_efficiency_families(snapshot, collector)
        if collector.opts.get("by") == "pod":
            families += readahead_pod_families(snapshot, collector)
        return families


TOOL = ReadaheadTool()
