"""runqlat: log2 histograms of run-queue latency (how long runnable tasks
wait for a CPU), for the machine, per process, per thread, or per pod."""

from __future__ import annotations

import ast
import os
import re
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import click

from .. import cdefs, render
from ..deltas import diff
from ..hist import NATIVE, NS_PER_SECOND, SLOTS, UNITS, Log2Hist, slot_flags
from ..names import c_string, comm_words
from ..options import (alias_option, comm_option, histograms_option, pid_option, top_option,
                       unit_options)
from ..probes import Candidate, Hook
from ..structs import Field
from ..kernel import find_tracefs, kernel_version_code, read_pid_max, start_slots
from ..tool import Tool, View
from .base import Reader

# -P, -L, --by: what a histogram is kept per (PER_KEY in bpf/runqlat.c).
# What bpf/runqlat.c takes from here (pytools/cdefs.py): passed as -D flags.
WAITS = ("unattributed", "map_full", "lost")    # runqlat_unattributed's indices
SHARED = {**cdefs.enum("KEY", ("tgid", "tid", "cgroup"), first=1), **cdefs.enum("WAIT", WAITS),
          "WAIT_COUNTS": len(WAITS)}
PER_KEYS = {"pid": SHARED["KEY_TGID"], "tid": SHARED["KEY_TID"], "pod": SHARED["KEY_CGROUP"],
            "container": SHARED["KEY_CGROUP"]}
WORKLOAD_KINDS = ("pod", "container")
DEFAULT_MAX_KEYS = 10240
# Threads waiting at once share these slots by tid (a clash is counted):
# 65,536 slots of 16-24 bytes, 1-1.5 MiB, where pid_max-sized arrays were
# 64-96 MiB and slower (cache and TLB misses on the hot path, measured).
MAX_START_SLOTS = 1 << 16
DEFAULT_STATE_MASK = 0xFF        # TASK_REPORT_MAX - 1 on 4.14+ kernels (0x100 - 1)
EXPORTER_UNIT = NATIVE     # slots on native histogram edges (hist.NATIVE)
EXPORTER_LAST_SLOT = 27
HOOKS = ("sched_wakeup", "sched_wakeup_new", "sched_switch")

ORDER_REASON = (
    "the raw sched tracepoints first: no trace record is formatted, and the task "
    "itself gives the wakee's process and cgroup at every wait; the sched "
    "tracepoints' own fields otherwise, with the process and cgroup remembered when "
    "a task leaves a CPU. Both run on every wakeup and context switch of the machine.")

COST_NOTE = (
    "runs on every wakeup and context switch of the machine: on a pipe ping-pong it "
    "added 90-210 ns per switch to the tracepoints' own 300-370 ns, where bcc's runqlat "
    "added 560-660 (scripts/bench-runqlat, docs/benchmarks.md)")


# What the raw tracepoints read of a task (bpf/runqlat.c's `// btf:` line),
# placed from the kernel's BTF where the headers are not its own.
FIELDS = (
    Field("TASK_PID", "task_struct->pid"),
    Field("TASK_TGID", "task_struct->tgid"),
    Field("TASK_STATE", "task_struct->__state|state"),     # renamed in 5.14
    Field("TASK_COMM", "task_struct->comm"),
    Field("TASK_CGROUP", "task_struct->cgroups->dfl_cgrp->kn->id"),
)


def plan() -> List[Candidate]:
    """Raw tracepoints (they read struct task_struct: exact headers or
    BTF), else the tracepoints' own fields (see bpf/runqlat.c for what each
    loses)."""
    return [
        Candidate("raw_tracepoint", "scheduler via raw tracepoints", "PROBE_RAW_TRACEPOINT",
                  tuple(Hook("raw_tracepoint", f"sched:{h}") for h in HOOKS),
                  reads_structs=True, fields=FIELDS),
        Candidate("tracepoint", "scheduler via tracepoints", "PROBE_TRACEPOINT",
                  tuple(Hook("tracepoint", f"sched:{h}") for h in HOOKS),
                  note="a task's process and cgroup as of when it last left a CPU"),
    ]


# ------------------------------------------------------- prev_state's bits

_PRINT_FMT_MASK = re.compile(r"\(REC->prev_state & \(")


def state_mask(format_text: str) -> Optional[int]:
    """The prev_state bits that mean "not runnable", from sched_switch's
    print format: the mask it tests before printing "R" (TASK_REPORT_MAX - 1:
    0xff on 4.14+, where a preempted task reports TASK_REPORT_MAX)."""
    match = _PRINT_FMT_MASK.search(format_text)
    if not match:
        return None
    start = match.end() - 1
    depth = 0
    for i in range(start, len(format_text)):
        depth += {"(": 1, ")": -1}.get(format_text[i], 0)
        if depth == 0:
            return _evaluate(format_text[start:i + 1])
    return None


def _evaluate(expression: str) -> Optional[int]:
    """An integer expression of literals, | + - << (nothing else is run)."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        return None
    ops = {ast.BitOr: lambda a, b: a | b, ast.Add: lambda a, b: a + b,
           ast.Sub: lambda a, b: a - b, ast.LShift: lambda a, b: a << b}

    def value(node) -> int:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            return ops[type(node.op)](value(node.left), value(node.right))
        raise ValueError(ast.dump(node))
    try:
        return value(tree.body)
    except (ValueError, RecursionError):
        return None


TRACEFS = "/sys/kernel/tracing"


def read_state_mask(tracefs: str = TRACEFS) -> int:
    try:
        with open(os.path.join(tracefs, "events", "sched", "sched_switch", "format")) as f:
            return state_mask(f.read()) or DEFAULT_STATE_MASK
    except OSError:
        return DEFAULT_STATE_MASK


def cflags(unit: str = "usecs", pid: Optional[int] = None, comm: Optional[str] = None,
           per: Optional[str] = None, pid_max: int = 32768,
           mask: int = DEFAULT_STATE_MASK, max_keys: int = DEFAULT_MAX_KEYS) -> List[str]:
    flags = slot_flags(unit) + cdefs.flags(SHARED) + [
        f"-DSTART_SLOTS={min(start_slots(pid_max), MAX_START_SLOTS)}", f"-DSTATE_MASK={mask:#x}",
        f"-DKERNEL_VERSION_CODE={kernel_version_code():#x}", f"-DMAX_KEYS={max_keys}"]
    if pid is not None:
        flags.append(f"-DFILTER_PID={pid}")
    if comm is not None:
        low, high = comm_words(comm.encode())
        flags += [f"-DFILTER_COMM_LO={low:#x}ULL", f"-DFILTER_COMM_HI={high:#x}ULL"]
    if per is not None:
        if per not in PER_KEYS:
            raise ValueError(f"per is one of {', '.join(PER_KEYS)}")
        flags.append(f"-DPER_KEY={PER_KEYS[per]}")
    return flags


@dataclass(frozen=True)
class RunqSnapshot:
    hist: Log2Hist
    per_key: Optional[Dict[int, Log2Hist]] = None   # tgid, tid or cgroup id -> waits
    unattributed: int = 0     # waits of tasks whose process or cgroup was not known
    map_full: int = 0         # waits not kept per key: the key maps were full
    lost: int = 0             # waits not timed: another thread took their start slot
    taken_at: float = 0.0
    elapsed: float = 0.0
    # tgid or tid -> its name at its last wait (the kernel's), else /proc's
    names: Dict[int, str] = field(default_factory=dict)


def delta(cur: RunqSnapshot, prev: RunqSnapshot) -> RunqSnapshot:
    keys = None if cur.per_key is None else diff(cur.per_key, prev.per_key or {})
    return RunqSnapshot(cur.hist - prev.hist, keys, cur.unattributed - prev.unattributed,
                        cur.map_full - prev.map_full, cur.lost - prev.lost, cur.taken_at,
                        cur.taken_at - prev.taken_at, cur.names)


def key_hists(slot_counts: Dict[Tuple[int, int], int], sums: Dict[int, int], unit_ns: int,
              unit_name: str) -> Dict[int, Log2Hist]:
    slots: Dict[int, List[int]] = {}
    for (key, slot), count in slot_counts.items():
        slots.setdefault(key, [0] * SLOTS)[min(slot, SLOTS - 1)] += count
    return {key: Log2Hist(tuple(s), unit_ns, sums.get(key, 0), unit_name)
            for key, s in slots.items()}


class RunqLatReader(Reader):
    """Loads bpf/runqlat.c and reads its histograms into RunqSnapshots."""

    def __init__(self, unit: str = "usecs", pid: Optional[int] = None,
                 comm: Optional[str] = None, per: Optional[str] = None, mode: str = "auto"):
        from ..loader import load, prepare
        self.unit_name, self.unit_ns, self.per = unit, UNITS.get(unit, 1), per
        prepare()                   # tracefs mounted: cflags reads sched_switch's format
        opts = {"unit": unit, "pid": pid, "comm": comm, "per": per}
        self.program = load(TOOL.name, TOOL.plan(opts), TOOL.cflags(opts), mode,
                            command=TOOL.command)
        self.workloads = None
        if per in WORKLOAD_KINDS:
            from ..workloads import Workloads, pod_log_root
            self.workloads = Workloads(log_root=pod_log_root())

    def forget_cgroups(self, ids) -> None:
        """Delete these cgroup ids' histograms (gone pods) from the kernel."""
        from ..maps import delete_keys
        delete_keys(self.program.table("runqlat_key_hist"), ids, lambda k: k.id)
        delete_keys(self.program.table("runqlat_key_sum"), ids, lambda k: k.value)

    def snapshot(self) -> RunqSnapshot:
        from ..maps import items, scalar
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
            names.update({key: task_name(key) for key in keys if key not in names})
        return RunqSnapshot(hist, keys, unattributed, full, lost, time.monotonic(),
                            names=names)


# ----------------------------------------------------------------- rendering

def task_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


GROUP_HEADERS = {"pid": "PROCESS", "tid": "THREAD", "pod": "NAMESPACE/POD",
                 "container": "NAMESPACE/POD/CONTAINER"}
GROUP_NOUNS = {"pid": "processes", "tid": "threads", "pod": "pods", "container": "containers"}


def runqlat_groups(snap: RunqSnapshot, per: Optional[str], workloads
                   ) -> List[Tuple[str, dict, Log2Hist]]:
    """(key, labels, hist) per group, busiest first: processes or threads
    as `dd [10642]` (pid or tid, comm), or workloads (their labels)."""
    if snap.per_key is None or per is None:
        return []
    if per in WORKLOAD_KINDS:
        from ..workloads import GROUPINGS, describe, group_by_workload
        grouped = group_by_workload(snap.per_key, workloads, per)
        return [(describe(key, per), dict(zip(GROUPINGS[per], key)), h) for key, h in
                sorted(grouped.items(), key=lambda kv: (-kv[1].count, kv[0]))]
    out = []
    for key, h in sorted(snap.per_key.items(), key=lambda kv: (-kv[1].count, kv[0])):
        name = snap.names.get(key, "?")
        out.append((render.process_label(name, key), {per: key, "comm": name}, h))
    return out


def notes_lines(snap: RunqSnapshot) -> List[str]:
    notes = []
    if snap.unattributed:
        notes.append(f"[{snap.unattributed} waits of tasks never seen leaving a CPU: "
                     "no process or cgroup]")
    if snap.map_full:
        notes.append(f"[{snap.map_full} waits not kept per key: map full]")
    if snap.lost:
        notes.append(f"[{snap.lost} waits not timed: their start slot was taken]")
    return notes


def runqlat_text(snap: RunqSnapshot, probe_label: str, seconds: float, top: int,
                 per: Optional[str], workloads=None, timestamp: Optional[str] = None,
                 histograms: bool = False) -> str:
    parts = [render.title(f"{probe_label}, {seconds:.1f}s", timestamp),
             render.hist_text(snap.hist)]
    if per is not None:
        parts += render.grouped_text(runqlat_groups(snap, per, workloads), top,
                                     GROUP_HEADERS[per], snap.hist.unit_name, histograms,
                                     GROUP_NOUNS[per])
    parts += notes_lines(snap)
    return "\n".join(parts)


def runqlat_json(snap: RunqSnapshot, probe: dict, seconds: float, top: int, when: str,
                 per: Optional[str], workloads=None) -> dict:
    out = {"time": when, "interval_s": round(seconds, 3), "probe": probe,
           "hist": render.hist_json(snap.hist), "unattributed": snap.unattributed,
           "map_full": snap.map_full, "lost": snap.lost, "by": per}
    if per is not None:
        out["groups"], out["other"] = render.groups_json(
            runqlat_groups(snap, per, workloads), top)
    return out


# ------------------------------------------------------------------ exporter

RUNQLAT_COUNTERS = (   # unlabelled counters: (name, help, value of a snapshot)
    ("run_queue_unattributed", "Waits counted in the total but in no pod's series: the "
     "task's cgroup was not known yet, or the per-cgroup map was full.",
     lambda s: s.unattributed + s.map_full),
    ("run_queue_lost", "Waits not timed: another waiting thread took their start slot "
     "(threads share a bounded array by thread id).", lambda s: s.lost),
)


def runqlat_families(snapshot: Optional[RunqSnapshot], collector) -> list:
    """run_queue_latency_seconds, unlabelled, or by (namespace, pod) with
    --runqlat-by pod: pods beyond the cap in ~other."""
    from ..families import counters, histogram_family, labelled_histogram_family
    from ..series import pod_histograms
    name = "run_queue_latency_seconds"
    doc = ("Time runnable tasks waited for a CPU, from wakeup or preemption to running; "
           "le bounds are powers of two of seconds.")
    if collector.opts.get("by") != "pod":
        families = [histogram_family(name, doc, snapshot.hist if snapshot is not None
                                     else None, NS_PER_SECOND, EXPORTER_LAST_SLOT)]
    else:
        items = pod_histograms(snapshot.per_key or {}, collector.cgroup_series("pod"),
                               collector.cap) if snapshot is not None else []
        families = [labelled_histogram_family(name, doc, ["namespace", "pod"], items,
                                              NS_PER_SECOND, EXPORTER_LAST_SLOT,
                                              collector.render_cache(name))]
    return families + counters(RUNQLAT_COUNTERS, snapshot)


# ---------------------------------------------------------------------- spec

def _per(opts) -> Optional[str]:
    """What a histogram is kept per: the reader's `per`, or the command's
    --by (-P and -L are --by pid and --by tid)."""
    return opts["per"] if "per" in opts else opts.get("by")


class RunqLatTool(Tool):
    name = "runqlat"
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
    exporter_options = (
        click.option("--runqlat-by", "runqlat_by", type=click.Choice(["none", "pod"]),
                     default="none", show_default=True,
                     help="Labels of run_queue_latency_seconds (pod: namespace, pod)."),
    )
    # Opt-in in the exporter: it runs on every context switch of the node.
    exporter_default = False
    order_reason = ORDER_REASON

    def plan(self, opts=None):
        return plan()

    def cflags(self, opts):
        return cflags(opts["unit"], opts.get("pid"), opts.get("comm"), _per(opts),
                      read_pid_max(), read_state_mask(find_tracefs() or TRACEFS))

    def open(self, opts, mode="auto"):
        return RunqLatReader(opts["unit"], opts["pid"], opts["comm"], _per(opts), mode)

    def delta(self, cur, prev):
        return delta(cur, prev)

    def text(self, shown, view: View) -> str:
        return runqlat_text(shown, view.label, shown.elapsed, view.opts["top"],
                            _per(view.opts), view.reader.workloads, view.clock,
                            view.opts.get("histograms", False))

    def json(self, shown, view: View) -> dict:
        return runqlat_json(shown, view.probe, shown.elapsed, view.opts["top"], view.when,
                            _per(view.opts), view.reader.workloads)

    def exporter_open(self, opts, mode="auto"):
        per = "pod" if opts.get("by") == "pod" else None
        return RunqLatReader(unit=EXPORTER_UNIT, per=per, mode=mode)

    def families(self, snapshot, collector):
        return runqlat_families(snapshot, collector)


TOOL = RunqLatTool()
