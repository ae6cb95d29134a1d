"""vfs_read latency: a log2 histogram of how long reads take."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ..hist import SLOTS, Log2Hist
from .base import LoadedTool
from ..probes import Candidate, Hook

READ_SYSCALLS = ("read", "pread64", "readv", "preadv", "preadv2")
# Their numbers, for the raw tracepoint (which sees every syscall by number).
SYSCALL_NUMBERS = {
    "x86_64": {"read": 0, "pread64": 17, "readv": 19, "preadv": 295, "preadv2": 327},
    "aarch64": {"read": 63, "pread64": 67, "readv": 65, "preadv": 69, "preadv2": 286},
}
DEFAULT_MAX_PROCS = 1024


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


def cflags(unit_ns: int = 1000, pid: Optional[int] = None, comm: Optional[str] = None,
           min_latency_ns: Optional[int] = None, per_process: Optional[str] = None,
           max_procs: int = DEFAULT_MAX_PROCS, pid_max: int = 32768,
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
        if not comm or len(comm.encode()) > 15 or '"' in comm or "\\" in comm:
            raise ValueError("a comm is 1 to 15 bytes, without quotes or backslashes")
        flags.append(f'-DFILTER_COMM="{comm}"')
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
    procs = None
    if cur.per_process is not None:
        procs = {}
        for key, hist in cur.per_process.items():
            d = hist - prev.per_process[key] if key in (prev.per_process or {}) else hist
            if d.count:
                procs[key] = d
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


def _comm(raw) -> str:
    return bytes(raw.comm).split(b"\0", 1)[0].decode(errors="replace")


def read_pid_max() -> int:
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read())


class VfsReadLatency(LoadedTool):
    source = "vfs_read_latency.c"

    def __init__(self, unit: str = "usecs", pid: Optional[int] = None,
                 comm: Optional[str] = None, min_latency_ns: Optional[int] = None,
                 per_process: Optional[str] = None, max_procs: int = DEFAULT_MAX_PROCS,
                 mode: str = "auto", floor: str = ""):
        from ..hist import UNITS
        from ..loader import load
        self.unit_name = unit
        self.unit_ns = UNITS[unit]
        self.per_process = per_process
        flags = cflags(self.unit_ns, pid, comm, min_latency_ns, per_process, max_procs,
                       read_pid_max(), floor)
        self.program = load(self.source, plan(), flags, mode)

    def snapshot(self) -> LatencySnapshot:
        table = self.program.table("vfs_read_latency_hist")
        per_cpu = table[table.Key(0)]
        slots = [sum(h.slots[k] for h in per_cpu) for k in range(SLOTS)]
        total_ns = sum(h.sum_ns for h in per_cpu)
        clashes = sum(h.clashes for h in per_cpu)
        procs = None
        if self.per_process:
            counts = {(k.tgid, _comm(k), k.slot): v.value
                      for k, v in self.program.table("vfs_read_latency_proc_hist").items()}
            sums = {(k.tgid, _comm(k)): v.value
                    for k, v in self.program.table("vfs_read_latency_proc_sum").items()}
            procs = proc_hists(counts, sums, self.unit_ns, self.unit_name)
        return LatencySnapshot(Log2Hist(tuple(slots), self.unit_ns, total_ns, self.unit_name),
                               clashes, procs, time.monotonic())
