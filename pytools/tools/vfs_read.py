"""vfsread-latency: a log2 histogram of how long reads take."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import click

from .. import render
from ..deltas import diff
from ..hist import NS_PER_SECOND, SLOTS, UNITS, Log2Hist
from ..names import c_string
from ..options import pid_option, top_option, unit_options, warn
from ..probes import Candidate, Hook
from ..tool import Tool, View
from .base import LoadedTool

READ_SYSCALLS = ("read", "pread64", "readv", "preadv", "preadv2")
# Their numbers, for the raw tracepoint (which sees every syscall by number).
SYSCALL_NUMBERS = {
    "x86_64": {"read": 0, "pread64": 17, "readv": 19, "preadv": 295, "preadv2": 327},
    "aarch64": {"read": 63, "pread64": 67, "readv": 65, "preadv": 69, "preadv2": 286},
}
DEFAULT_MAX_PROCS = 1024
DEFAULT_PID_MAX = 32768          # the kernel's default /proc/sys/kernel/pid_max
TASK_COMM_LEN = 16               # a comm is at most 15 bytes and a NUL
# Latencies the exporter exposes: counted in microseconds; slot k's upper
# bound is 2^k us - 1 ns. A fixed set up to slot 27 (~134 s): slower reads
# are counted in +Inf only.
EXPORTER_UNIT = "usecs"
EXPORTER_LAST_SLOT = 27


def plan(machine: Optional[str] = None) -> List[Candidate]:
    """kprobes first (the classic way, any kernel with kprobes), then fentry
    (cheaper, needs BTF and no lockdown), then the read syscalls: through
    the raw syscall tracepoints (half the floor cost; needs this machine's
    syscall numbers) or else the per-syscall tracepoints. Those two time
    the syscall, not vfs_read itself."""
    raw = []
    if (machine or os.uname().machine) in SYSCALL_NUMBERS:
        raw = [Candidate("raw_tracepoint", "read syscalls via raw tracepoints",
                         "PROBE_RAW_TRACEPOINT",
                         (Hook("raw_tracepoint", "raw_syscalls:sys_enter"),
                          Hook("raw_tracepoint", "raw_syscalls:sys_exit")),
                         note="times read, pread64, readv, preadv, preadv2 syscalls")]
    return [
        Candidate("kprobe", "vfs_read via kprobe", "PROBE_KPROBE",
                  (Hook("kprobe", "vfs_read", "vfs_read_entry"),
                   Hook("kretprobe", "vfs_read", "vfs_read_return"))),
        Candidate("fentry", "vfs_read via fentry", "PROBE_FENTRY",
                  (Hook("fentry", "vfs_read"), Hook("fexit", "vfs_read"))),
        *raw,
        Candidate("tracepoint", "read syscalls via tracepoints", "PROBE_TRACEPOINT",
                  tuple(Hook("tracepoint", f"syscalls:sys_{edge}_{name}")
                        for name in READ_SYSCALLS for edge in ("enter", "exit")),
                  note="times read, pread64, readv, preadv, preadv2 syscalls"),
    ]


def start_slots(pid_max: int) -> int:
    """Smallest power of two covering every thread id, capped at 2^22 (64 MiB)."""
    n = 1
    while n < min(pid_max, 1 << 22):
        n <<= 1
    return n


def c_literal(data: bytes) -> str:
    """A C string literal of any bytes, each as an octal escape (at most
    three digits, so no escape can swallow the next byte): quotes and
    backslashes in a comm reach the kernel's compare as they are."""
    return '"' + "".join(f"\\{b:03o}" for b in data) + '"'


def cflags(unit_ns: int = 1000, pid: Optional[int] = None, comm: Optional[str] = None,
           min_latency_ns: Optional[int] = None, per_process: Optional[str] = None,
           max_procs: int = DEFAULT_MAX_PROCS, pid_max: int = DEFAULT_PID_MAX,
           floor: str = "", machine: Optional[str] = None) -> List[str]:
    """floor, for the benchmark only: "empty" (hooks with empty bodies) or
    "clock" (bodies that only read the clock at a read's entry and exit)."""
    flags = [f"-DUNIT_NS={unit_ns}", f"-DUNIT_BITS={unit_ns.bit_length()}",
             f"-DSTART_SLOTS={start_slots(pid_max)}"]
    numbers = SYSCALL_NUMBERS.get(machine or os.uname().machine, {})
    flags += [f"-DNR_{name}={nr}" for name, nr in numbers.items()]
    if pid is not None:
        flags.append(f"-DFILTER_PID={pid}")
    if comm is not None:
        if not comm or len(comm.encode()) >= TASK_COMM_LEN:
            raise ValueError(f"a comm is 1 to {TASK_COMM_LEN - 1} bytes")
        flags.append(f"-DFILTER_COMM={c_literal(comm.encode())}")
    if min_latency_ns:
        flags.append(f"-DMIN_LATENCY_NS={min_latency_ns}ULL")
    if per_process is not None:
        if per_process not in ("pid", "comm"):
            raise ValueError("per_process is 'pid' or 'comm'")
        flags += [f"-DPER_PROCESS={1 if per_process == 'pid' else 2}", f"-DMAX_PROCS={max_procs}"]
    if floor:
        if floor not in ("empty", "clock"):
            raise ValueError("floor is 'empty' or 'clock'")
        flags.append("-DFLOOR" if floor == "empty" else "-DFLOOR_CLOCK")
    return flags


ProcKey = Tuple[int, str]   # (tgid or 0, comm)


@dataclass(frozen=True)
class LatencySnapshot:
    hist: Log2Hist
    start_clashes: int = 0
    per_process: Optional[Dict[ProcKey, Log2Hist]] = None
    taken_at: float = 0.0
    elapsed: float = 0.0


def delta(cur: LatencySnapshot, prev: LatencySnapshot) -> LatencySnapshot:
    procs = None if cur.per_process is None else diff(cur.per_process, prev.per_process or {})
    return LatencySnapshot(cur.hist - prev.hist, cur.start_clashes - prev.start_clashes,
                           procs, cur.taken_at, cur.taken_at - prev.taken_at)


def proc_hists(slot_counts: Dict[Tuple[int, str, int], int], sums: Dict[ProcKey, int],
               unit_ns: int, unit_name: str) -> Dict[ProcKey, Log2Hist]:
    """Per-process histograms from the flat (tgid, comm, slot) -> count map."""
    slots: Dict[ProcKey, List[int]] = {}
    for (tgid, comm, slot), count in slot_counts.items():
        slots.setdefault((tgid, comm), [0] * SLOTS)[slot] += count
    return {key: Log2Hist(tuple(s), unit_ns, sums.get(key, 0), unit_name)
            for key, s in slots.items()}


def read_pid_max() -> int:
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read())


class VfsReadLatency(LoadedTool):
    """Loads bpf/vfs_read.c and reads its histograms into LatencySnapshots."""

    def __init__(self, unit: str = "usecs", pid: Optional[int] = None,
                 comm: Optional[str] = None, min_latency_ns: Optional[int] = None,
                 per_process: Optional[str] = None, max_procs: int = DEFAULT_MAX_PROCS,
                 mode: str = "auto", floor: str = ""):
        from ..loader import load
        self.unit_name = unit
        self.unit_ns = UNITS[unit]
        self.per_process = per_process
        flags = cflags(self.unit_ns, pid, comm, min_latency_ns, per_process, max_procs,
                       read_pid_max(), floor)
        self.program = load(TOOL.name, plan(), flags, mode)

    def snapshot(self) -> LatencySnapshot:
        table = self.program.table("vfs_read_latency_hist")
        per_cpu = table[table.Key(0)]
        slots = [sum(h.slots[k] for h in per_cpu) for k in range(SLOTS)]
        total_ns = sum(h.sum_ns for h in per_cpu)
        clashes = sum(h.clashes for h in per_cpu)
        procs = None
        if self.per_process:
            counts = {(k.tgid, c_string(k.comm), k.slot): v.value
                      for k, v in self.program.table("vfs_read_latency_proc_hist").items()}
            sums = {(k.tgid, c_string(k.comm)): v.value
                    for k, v in self.program.table("vfs_read_latency_proc_sum").items()}
            procs = proc_hists(counts, sums, self.unit_ns, self.unit_name)
        return LatencySnapshot(Log2Hist(tuple(slots), self.unit_ns, total_ns, self.unit_name),
                               clashes, procs, time.monotonic())


# ----------------------------------------------------------------- rendering

def proc_label(key: ProcKey) -> str:
    tgid, comm = key
    return f"{comm} [{tgid}]" if tgid else comm


def _busiest(per_process: Dict[ProcKey, Log2Hist]) -> List[Tuple[ProcKey, Log2Hist]]:
    return sorted(per_process.items(), key=lambda kv: (-kv[1].count, kv[0]))


def latency_text(snap: LatencySnapshot, probe_label: str, seconds: float, top: int,
                 timestamp: Optional[str] = None) -> str:
    parts = [render.title(f"{probe_label}, {seconds:.1f}s", timestamp),
             render.hist_text(snap.hist)]
    if snap.start_clashes:
        parts.append(f"({snap.start_clashes} reads not timed: thread id slot clash)")
    if snap.per_process is not None:
        ordered = _busiest(snap.per_process)
        for key, hist in ordered[:top]:
            parts += ["", proc_label(key), render.hist_text(hist)]
        if len(ordered) > top:
            parts.append(f"[{len(ordered) - top} more processes]")
    return "\n".join(parts)


def latency_json(snap: LatencySnapshot, probe: dict, seconds: float, top: int,
                 when: str) -> dict:
    out = {"time": when, "interval_s": round(seconds, 3), "probe": probe,
           "hist": render.hist_json(snap.hist), "start_clashes": snap.start_clashes}
    if snap.per_process is not None:
        ordered = _busiest(snap.per_process)
        out["per_process"] = [{"pid": key[0] or None, "comm": key[1],
                               "hist": render.hist_json(h)} for key, h in ordered[:top]]
        out["other_processes"] = max(0, len(ordered) - top)
    return out


# ------------------------------------------------------------------ exporter

def vfs_read_families(snapshot: Optional[LatencySnapshot]) -> list:
    from prometheus_client.core import CounterMetricFamily
    from ..exporter import histogram_family
    hist = histogram_family(
        "vfs_read_latency_seconds", "Time from vfs_read entry to return (or read syscall "
        "entry to exit, in tracepoint mode); le bounds are the exact log2 slot edges.",
        snapshot.hist if snapshot is not None else None, NS_PER_SECOND, EXPORTER_LAST_SLOT)
    clashes = CounterMetricFamily(
        "vfs_read_latency_lost", "Reads not timed because another thread shared their "
        "start slot (bounded start array).")
    if snapshot is not None:
        clashes.add_metric([], snapshot.start_clashes)
    return [hist, clashes]


# ---------------------------------------------------------------------- spec

def _comm(ctx, param, comm: Optional[str]) -> Optional[str]:
    """-c: 1 to 15 bytes, as the kernel keeps it: a longer name is cut to
    the 15 bytes the kernel compares, with a warning."""
    if comm is None:
        return None
    data = comm.encode()
    if not data:
        raise click.BadParameter("a process name is 1 to 15 bytes")
    if len(data) >= TASK_COMM_LEN:
        data = data[:TASK_COMM_LEN - 1]
        while True:     # do not cut a UTF-8 character in two
            try:
                comm = data.decode()
                break
            except UnicodeDecodeError:
                data = data[:-1]
        warn(ctx, f"the kernel keeps 15 bytes of a process name: matching {comm!r}")
    return comm


class VfsRead(Tool):
    name = "vfs_read"
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
  vfsread-latency -P --top 5  # one histogram per process, 5 busiest
  vfsread-latency --min-latency 1000   # ignore reads under 1000 us
  vfsread-latency --json 1 3  # one JSON object per interval
  vfsread-latency --probe tracepoint   # force the per-syscall tracepoints
"""
    options = (
        unit_options,
        pid_option("Only reads by this process."),
        click.option("-c", "--comm", callback=_comm,
                     help="Only reads by processes with this name (filtered in kernel)."),
        click.option("-P", "--per-pid", "per_process", flag_value="pid",
                     help="One histogram per process (pid)."),
        click.option("--per-comm", "per_process", flag_value="comm",
                     help="One histogram per process name."),
        top_option("Processes shown with -P/--per-comm, busiest first."),
        click.option("--min-latency", type=click.IntRange(0, 10**12), default=0,
                     help="Ignore reads faster than this, in the display unit."),
    )

    def plan(self):
        return plan()

    @staticmethod
    def _min_ns(opts) -> Optional[int]:
        return opts["min_latency"] * UNITS[opts["unit"]] or None

    def cflags(self, opts):
        return cflags(UNITS[opts["unit"]], opts["pid"], opts["comm"], self._min_ns(opts),
                      opts["per_process"], pid_max=read_pid_max())

    def open(self, opts, mode="auto"):
        return VfsReadLatency(opts["unit"], opts["pid"], opts["comm"], self._min_ns(opts),
                              opts["per_process"], mode=mode)

    def delta(self, cur, prev):
        return delta(cur, prev)

    def text(self, shown, view: View) -> str:
        return latency_text(shown, view.label, shown.elapsed, view.opts["top"], view.clock)

    def json(self, shown, view: View) -> dict:
        return latency_json(shown, view.probe, shown.elapsed, view.opts["top"], view.when)

    def exporter_open(self, opts, mode="auto"):
        return VfsReadLatency(unit=EXPORTER_UNIT, mode=mode)

    def families(self, snapshot, collector):
        return vfs_read_families(snapshot)


TOOL = VfsRead()
