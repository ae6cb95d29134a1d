"""runqlat: the probe plan, the compile flags and the constants shared with bpf/runqlat.c."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import List, Optional

from ... import cdefs
from ...hist import slot_flags
from ...keyed_hists import KeyedHistOptions
from ...names import comm_words
from ...probes import Candidate, Hook
from ...structs import Field
from ...kernel import (find_tracefs, kernel_version_code, read_pid_max, start_slots,
                       tracepoint_format)


@dataclass(frozen=True)
class RunqLatOptions(KeyedHistOptions):
    """The command's options (the exporter's: exporter_open), built once;
    `by` is one of PER_KEYS or None."""


# -P, -L, --by: what a histogram is kept per (PER_KEY in bpf/runqlat.c).
# What bpf/runqlat.c takes from here (pytools/cdefs.py): passed as -D flags.
WAITS = ("unattributed", "map_full", "lost")    # runqlat_unattributed's indices
SHARED = {**cdefs.enum("KEY", ("tgid", "tid", "cgroup"), first=1), **cdefs.enum("WAIT", WAITS),
          "WAIT_COUNTS": len(WAITS)}
PER_KEYS = {"pid": SHARED["KEY_TGID"], "tid": SHARED["KEY_TID"], "pod": SHARED["KEY_CGROUP"],
            "container": SHARED["KEY_CGROUP"]}
DEFAULT_MAX_KEYS = 10240
# Threads waiting at once share these slots by tid (a clash is counted):
# 65,536 slots of 16-24 bytes, 1-1.5 MiB, where pid_max-sized arrays were
# 64-96 MiB and slower (cache and TLB misses on the hot path, measured).
MAX_START_SLOTS = 1 << 16
DEFAULT_STATE_MASK = 0xFF        # TASK_REPORT_MAX - 1 on 4.14+ kernels (0x100 - 1)
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
    """The mask of this kernel's sched_switch format (its field list,
    kernel.parse_format_fields, does not say it: the print format does)."""
    text = tracepoint_format(tracefs, "sched:sched_switch")
    return (state_mask(text) if text is not None else None) or DEFAULT_STATE_MASK


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


def plan_of(options: Optional[RunqLatOptions] = None) -> List[Candidate]:
    return plan()


def cflags_of(options: RunqLatOptions) -> List[str]:
    return cflags(options.unit, options.pid, options.comm, options.by, read_pid_max(),
                  read_state_mask(find_tracefs() or TRACEFS))
