"""runqlat: the tool's spec (pytools.tool.Tool) and the reader that loads bpf/runqlat.c."""

from __future__ import annotations

import time
from typing import Optional

import click

from ...hist import SLOTS, UNITS, Log2Hist
from ...keyed_hists import EXPORTER_UNIT, WORKLOAD_KINDS, key_hists
from ...maps import delete_keys, items, scalar
from ...names import c_string
from ...options import (alias_option, comm_option, histograms_option, pid_option,
                       pod_labels_option, top_option, unit_options)
from ...tool import Names, Tool, View
from ...workloads import Workloads, pod_log_root
from ..base import Reader, load
from .metrics import runqlat_families
from .output import runqlat_json, runqlat_text, task_name
from .plan import (COST_NOTE, ORDER_REASON, PER_KEYS, SHARED, WAITS, RunqLatOptions, cflags_of,
                   plan_of)
from .snapshot import RunqSnapshot, delta


class RunqLatReader(Reader):
    """Loads bpf/runqlat.c and reads its histograms into RunqSnapshots."""

    def __init__(self, options: Optional[RunqLatOptions] = None, mode: str = "auto",
                 **fields):
        """`fields`: the options' fields, where no `options` are given."""
        options = options or RunqLatOptions(**fields)
        self.unit_name, self.unit_ns = options.unit, UNITS.get(options.unit, 1)
        self.per = options.by
        self.program = load(TOOL, options, mode)
        if self.per in WORKLOAD_KINDS:
            self.names = Names(workloads=Workloads(log_root=pod_log_root()))

    def forget_cgroups(self, ids) -> None:
        """Delete these cgroup ids' histograms (gone pods) from the kernel."""
        delete_keys(self.program.table("runqlat_key_hist"), ids, lambda k: k.id)
        delete_keys(self.program.table("runqlat_key_sum"), ids, lambda k: k.value)

    def snapshot(self) -> RunqSnapshot:
        table = self.program.table("runqlat_hist")
        per_cpu = table[table.Key(0)]
        slots = tuple(sum(h.slots[k] for h in per_cpu) for k in range(SLOTS))
        hist = Log2Hist(slots, self.unit_ns, sum(h.sum_ns for h in per_cpu), self.unit_name)
        counts = self.program.table("runqlat_unattributed")
        unattributed, full, lost = (sum(counts[counts.Key(SHARED[f"WAIT_{w.upper()}"])])
                                    for w in WAITS)
        keys, names = None, {}
        if self.per:
            slot_counts = {(k.id, k.slot): v
                           for k, v in items(self.program.table("runqlat_key_hist"))}
            sums = {scalar(k): v for k, v in items(self.program.table("runqlat_key_sum"))}
            keys = key_hists(slot_counts, sums, self.unit_ns, self.unit_name)
        if self.per in ("pid", "tid"):
            names = {scalar(k): c_string(v.comm)
                     for k, v in items(self.program.table("runqlat_key_comm"))}
            names.update({key: task_name(key) for key in keys or {} if key not in names})
        return RunqSnapshot(hist, keys, unattributed, full, lost, time.monotonic(),
                            names=names)


class RunqLatTool(Tool):
    name = "runqlat"
    order = 50
    command = "runqlat"
    summary = "log2 histograms of run-queue latency: how long tasks wait for a CPU"
    description = f"""Histogram of run-queue latency: how long a runnable task waits for
    a CPU, from its wakeup (or being preempted) to running, for the machine,
    per process, thread, Kubernetes pod or container (--by): is the CPU the
    bottleneck, and for whom. Grouped by pod, the waits are the waiting
    task's: a pod's line says who waits for a CPU, not who keeps it busy (a
    noisy neighbour shows as the others' waits; top or the pods' CPU usage
    names it).

    Every INTERVAL seconds (default 5), COUNT times or until Ctrl-C, print a
    log2 histogram and a summary: count, exact average, p50/p90/p99
    estimated from the slots. Cost: it {COST_NOTE}.
    """
    examples = """\b
Examples:
  runqlat                     # histogram in microseconds every 5 s
  runqlat 1 5                 # every second, five times
  runqlat -m                  # in milliseconds
  runqlat -P --top 5          # per process (--by pid), the 5 busiest
  runqlat -L                  # per thread (--by tid)
  runqlat --by pod            # who waits, per Kubernetes pod (not who hogs)
  runqlat --by pod --histograms  # a histogram per pod
  runqlat -p 1234             # waits of process 1234 only
  runqlat -c nginx            # waits of processes named nginx
  runqlat --json 1 3          # one JSON object per interval
"""
    options = (
        unit_options,
        pid_option("Only waits of this process."),
        comm_option("Only waits of processes with this name"),
        click.option("--by", type=click.Choice(tuple(PER_KEYS)),
                     help="Waits per process (pid), thread (tid), pod or container: the "
                          "waiting task's, so who waits, not who keeps the CPU busy."),
        alias_option("-P", to="by", flag_value="pid", help="Same as --by pid."),
        alias_option("-L", to="by", flag_value="tid", help="Same as --by tid."),
        alias_option("--pids", to="by", use="--by pid", flag_value="pid"),
        alias_option("--tids", to="by", use="--by tid", flag_value="tid"),
        top_option("Groups shown with --by, busiest first."),
        histograms_option(),
    )
    exporter_options = (pod_labels_option("runqlat", "run_queue_latency_seconds"),)
    # Opt-in in the exporter: it runs on every context switch of the node.
    exporter_default = False
    order_reason = ORDER_REASON
    Options = RunqLatOptions
    plan = staticmethod(plan_of)
    cflags = staticmethod(cflags_of)
    delta = staticmethod(delta)
    families = staticmethod(runqlat_families)

    def open(self, options, mode="auto"):
        return RunqLatReader(options, mode)

    def text(self, shown, view: View) -> str:
        return runqlat_text(shown, view.label, shown.elapsed, view.opts.top, view.opts.by,
                            view.names.workloads, view.clock, view.opts.histograms)

    def json(self, shown, view: View) -> dict:
        return runqlat_json(shown, view.probe, shown.elapsed, view.opts.top, view.when,
                            view.opts.by, view.names.workloads)

    def exporter_open(self, opts, mode="auto"):
        by = "pod" if opts.get("by") == "pod" else None
        return RunqLatReader(RunqLatOptions(unit=EXPORTER_UNIT, by=by), mode)


TOOL = RunqLatTool()
