"""vfs_read: the tool's spec (pytools.tool.Tool) and the reader that loads bpf/vfs_read.c."""

from __future__ import annotations

import time
from typing import Optional

import click

from ...errors import ToolError
from ...hist import SLOTS, UNITS, Log2Hist
from ...keyed_hists import EXPORTER_UNIT, WORKLOAD_KINDS, key_hists
from ...maps import delete_keys, items, scalar
from ...names import c_string
from ...options import (Duration, alias_option, comm_option, display_unit, histograms_option,
                       pid_option, pod_labels_option, top_option, unit_options)
from ...tool import Names, Tool, View
from ...workloads import Workloads, pod_log_root
from ..base import Reader, load
from .kinds import KIND_FIELDS, KINDS, counted
from .metrics import vfs_read_families
from .output import latency_json, latency_text
from .plan import ORDER_REASON, PER_CHOICES, VfsReadOptions, cflags_of, features_of, plan_of
from .snapshot import LatencySnapshot, cgroup_hist, delta


class VfsReadReader(Reader):
    """Loads bpf/vfs_read.c and reads its histograms into LatencySnapshots."""

    def __init__(self, options: Optional[VfsReadOptions] = None, mode: str = "auto",
                 **fields):
        """`fields`: the options' fields, where no `options` are given."""
        options = options or VfsReadOptions(**fields)
        self.unit_name = options.unit
        self.unit_ns = UNITS.get(options.unit, 1)
        self.per = options.by
        self.program = load(TOOL, options, mode)
        missing = self.program.missing_features.get("kind")
        if missing and (options.kind is not None or self.per == "kind"):
            self.program.close()
            raise ToolError(f"cannot tell the kind of file a read is on: {missing}",
                            "use --kind all, or give the node its kernel's headers or BTF")
        self.kind = None if missing else options.counts
        self.counted = counted(options.counts, missing)
        if self.per in WORKLOAD_KINDS:
            self.names = Names(workloads=Workloads(log_root=pod_log_root()))

    def forget_cgroups(self, ids) -> None:
        """Delete these cgroup ids' histograms (gone pods) from the kernel."""
        delete_keys(self.program.table("vfs_read_latency_cgroup_hist"), ids, lambda k: k.value)

    def snapshot(self) -> LatencySnapshot:
        table = self.program.table("vfs_read_latency_hist")
        per_cpu = table[table.Key(0)]
        slots = [sum(h.slots[k] for h in per_cpu) for k in range(SLOTS)]
        total_ns = sum(h.sum_ns for h in per_cpu)
        clashes = sum(h.clashes for h in per_cpu)
        procs = cgroups = kinds = None
        if self.per == "kind":
            table = self.program.table("vfs_read_kind_hist")
            kinds = {}
            for i, name in enumerate(KINDS):
                cpus = table[table.Key(i)]
                hist = Log2Hist(tuple(sum(h.slots[k] for h in cpus) for k in range(SLOTS)),
                                self.unit_ns, sum(h.sum_ns for h in cpus), self.unit_name)
                if hist.count:
                    kinds[name] = hist
        elif self.per in WORKLOAD_KINDS:
            cgroups = {scalar(k): cgroup_hist(v, self.unit_ns, self.unit_name)
                       for k, v in items(self.program.table("vfs_read_latency_cgroup_hist"))}
        elif self.per:
            counts = {((k.tgid, c_string(k.comm)), k.slot): v
                      for k, v in items(self.program.table("vfs_read_latency_proc_hist"))}
            sums = {(k.tgid, c_string(k.comm)): v
                    for k, v in items(self.program.table("vfs_read_latency_proc_sum"))}
            procs = key_hists(counts, sums, self.unit_ns, self.unit_name)
        return LatencySnapshot(Log2Hist(tuple(slots), self.unit_ns, total_ns, self.unit_name),
                               clashes, procs, time.monotonic(), per_cgroup=cgroups,
                               per_kind=kinds, kind=self.kind)


class VfsReadTool(Tool):
    name = "vfs_read"
    order = 20
    command = "vfsread-latency"
    summary = "log2 histogram of read latency: vfs_read, or the read syscalls"
    description = """Histogram of read latency: vfs_read via kprobe or fentry, else the
    read syscalls (read, pread64, readv, preadv, preadv2) via the raw
    syscall tracepoints or the per-syscall tracepoints.

    Every INTERVAL seconds (default 5), COUNT times or until Ctrl-C, print a
    log2 histogram and a summary: count, exact average, and p50/p90/p99
    estimated from the histogram's slots.
    """
    examples = """\b
Examples:
  vfsread-latency             # histogram in microseconds every 5 s
  vfsread-latency 1 5         # every second, five times
  vfsread-latency -m          # in milliseconds (-n for nanoseconds)
  vfsread-latency -p 1234     # reads by process 1234 only
  vfsread-latency -c postgres # reads by processes named postgres
  vfsread-latency -P --top 5  # per process (--by pid), the 5 busiest
  vfsread-latency --by pod    # per Kubernetes pod, one line each
  vfsread-latency --by pod --histograms  # a histogram per pod
  vfsread-latency --min-latency 1ms    # ignore reads under 1 ms
  vfsread-latency --json 1 3  # one JSON object per interval
  vfsread-latency --probe tracepoint   # force the per-syscall tracepoints
  vfsread-latency --kind all  # reads on pipes, sockets, ttys too
  vfsread-latency --by kind   # one histogram per kind of file
"""
    options = (
        unit_options,
        pid_option("Only reads by this process."),
        comm_option("Only reads by processes with this name"),
        click.option("--by", type=click.Choice(PER_CHOICES),
                     help="One histogram per process (pid), process name (comm), pod, "
                          "container or kind of file (kind: every kind)."),
        alias_option("-P", to="by", flag_value="pid", help="Same as --by pid."),
        alias_option("--per", to="by", use="--by", type=click.Choice(PER_CHOICES)),
        alias_option("--per-pid", to="by", use="--by pid", flag_value="pid"),
        alias_option("--per-comm", to="by", use="--by comm", flag_value="comm"),
        top_option("Groups shown with --by, busiest first."),
        histograms_option(),
        click.option("--min-latency", type=Duration(display_unit), default=0,
                     metavar="DURATION",
                     help="Ignore reads faster than this: 1ms, 250us, or a number in the "
                          "display unit."),
        click.option("--kind", type=click.Choice(KINDS + ("all",)), default=None,
                     help="Only reads on this kind of file: file (regular files), pipe "
                          "(pipes, FIFOs), socket, tty (ttys, other character devices), "
                          "other; or all. Default: regular files, where the kind can be "
                          "told (else all, said in the banner): waits on pipes, sockets "
                          "and ttys are idle time, not slow reads."),
    )
    # `-P pod` (the old -P took a value): still read, with a warning.
    legacy_values = {"-P": PER_CHOICES}

    exporter_options = (pod_labels_option("vfs_read", "vfs_read_latency_seconds"),)

    order_reason = ORDER_REASON
    Options = VfsReadOptions
    plan = staticmethod(plan_of)
    cflags = staticmethod(cflags_of)
    features = staticmethod(features_of)
    delta = staticmethod(delta)
    families = staticmethod(vfs_read_families)
    # Where the kind of file is read (bpf/vfs_read.c's `// btf:` line), by
    # the kind feature rather than a candidate.
    feature_fields = KIND_FIELDS

    def options_of(self, params):
        if params.get("by") == "kind" and params.get("kind") not in (None, "all"):
            raise click.UsageError("--by kind shows every kind: use it with --kind all")
        return super().options_of(params)

    def open(self, options, mode="auto"):
        return VfsReadReader(options, mode)

    def text(self, shown, view: View) -> str:
        return latency_text(shown, view.label, shown.elapsed, view.opts.top, view.clock,
                            view.names.workloads, view.opts.by, view.opts.histograms)

    def json(self, shown, view: View) -> dict:
        out = latency_json(shown, view.probe, shown.elapsed, view.opts.top, view.when,
                           view.names.workloads, view.opts.by)
        out["kind"] = shown.kind or "all"    # what is counted
        return out

    def exporter_open(self, opts, mode="auto"):
        by = "pod" if opts.get("by") == "pod" else None
        return VfsReadReader(VfsReadOptions(unit=EXPORTER_UNIT, by=by), mode)

TOOL = VfsReadTool()
