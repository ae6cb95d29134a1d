"""vfs_read: the probe plan, the compile flags and the constants shared with bpf/vfs_read.c."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from ... import cdefs, syscalls
from ...hist import slot_flags
from ...kernel import read_pid_max, start_slots
from ...keyed_hists import WORKLOAD_KINDS, KeyedHistOptions
from ...names import comm_words
from ...probes import Candidate, Feature, Hook
from .kinds import KIND_SHARED, KINDS, kind_feature, kind_of, wants_kind


READ_SYSCALLS = ("read", "pread64", "readv", "preadv", "preadv2")
PER_PROCESS_KEYS = ("pid", "comm")        # what -P and -C key by (PER_PROCESS)
# What bpf/vfs_read.c takes from here (pytools/cdefs.py): passed as -D flags;
# and NR_<syscall> where the machine's numbers are known (pytools/syscalls.py).
SHARED = {**cdefs.enum("PER", PER_PROCESS_KEYS, first=1), **KIND_SHARED}
DEFAULT_MAX_PROCS = 1024
PER_CHOICES = PER_PROCESS_KEYS + WORKLOAD_KINDS + ("kind",)
DEFAULT_PID_MAX = 32768          # the kernel's default /proc/sys/kernel/pid_max


@dataclass(frozen=True)
class VfsReadOptions(KeyedHistOptions):
    """The command's options (the exporter's: exporter_open), built once;
    `by` is one of PER_CHOICES or None."""
    min_latency: int = 0             # ns; 0: every read
    # "all" (every read, no struct read), one of KINDS (only those; an
    # error where the kind cannot be told), or None: regular files where the
    # kind can be told, else every read, said so. The command's default is
    # None; a reader built without it (the exporter's) counts every read.
    kind: Optional[str] = "all"
    max_procs: int = DEFAULT_MAX_PROCS
    floor: str = ""                  # scripts/bench-vfsread only: "empty" or "clock" bodies

    @property
    def counts(self) -> str:
        """What is counted: kinds.kind_of."""
        return kind_of(self.by, self.kind)


# Why the plan is in this order (shown by -v and pytools doctor): what each
# mode costs the whole machine, not only each traced read.
ORDER_REASON = (
    "cheapest for the whole machine first: fentry/fexit on vfs_read (a direct "
    "call), then kprobe/kretprobe (a trap per call, more on return), then the "
    "read syscalls' own tracepoints (only reads run a program; the syscall "
    "tracepoint flag sends every syscall down the slower path, as it does for any "
    "syscall tracer). The raw syscall tracepoints run a program on every syscall of "
    "the machine (+138 ns on each non-read, measured): never automatic, "
    "--probe raw_tracepoint for read-heavy machines.")


def plan(machine: Optional[str] = None) -> List[Candidate]:
    """By cost to the whole machine (ORDER_REASON): fentry, kprobes, the
    per-syscall tracepoints; the raw syscall tracepoints only when forced
    (they need this machine's syscall numbers). The tracepoint modes time
    the syscall, not vfs_read itself."""
    raw = []
    if syscalls.numbers(machine):
        raw = [Candidate("raw_tracepoint", "read syscalls via raw tracepoints",
                         "PROBE_RAW_TRACEPOINT",
                         (Hook("raw_tracepoint", "raw_syscalls:sys_enter"),
                          Hook("raw_tracepoint", "raw_syscalls:sys_exit")),
                         note="times read, pread64, readv, preadv, preadv2 syscalls; runs "
                              "on every syscall of the machine", auto=False)]
    return [
        Candidate("fentry", "vfs_read via fentry", "PROBE_FENTRY",
                  (Hook("fentry", "vfs_read"), Hook("fexit", "vfs_read"))),
        Candidate("kprobe", "vfs_read via kprobe", "PROBE_KPROBE",
                  (Hook("kprobe", "vfs_read", "vfs_read_entry"),
                   Hook("kretprobe", "vfs_read", "vfs_read_return"))),
        Candidate("tracepoint", "read syscalls via tracepoints", "PROBE_TRACEPOINT",
                  tuple(Hook("tracepoint", f"syscalls:sys_{edge}_{name}")
                        for name in READ_SYSCALLS for edge in ("enter", "exit")),
                  note="times read, pread64, readv, preadv, preadv2 syscalls"),
        *raw,
    ]


def cflags(unit: str = "usecs", pid: Optional[int] = None, comm: Optional[str] = None,
           min_latency_ns: Optional[int] = None, per: Optional[str] = None,
           max_procs: int = DEFAULT_MAX_PROCS, pid_max: int = DEFAULT_PID_MAX,
           floor: str = "", machine: Optional[str] = None,
           kind: Optional[str] = None) -> List[str]:
    """floor, for the benchmark only: "empty" (hooks with empty bodies) or
    "clock" (bodies that only read the clock at a read's entry and exit).
    kind: only reads on that kind of file (KINDS); they take effect with
    the kind feature (kind_feature) compiled in."""
    flags = slot_flags(unit) + cdefs.flags(SHARED) + [f"-DSTART_SLOTS={start_slots(pid_max)}"]
    numbers = syscalls.numbers(machine)
    flags += [f"-DNR_{name}={numbers[name]}" for name in READ_SYSCALLS if name in numbers]
    if pid is not None:
        flags.append(f"-DFILTER_PID={pid}")
    if comm is not None:
        low, high = comm_words(comm.encode())
        flags += [f"-DFILTER_COMM_LO={low:#x}ULL", f"-DFILTER_COMM_HI={high:#x}ULL"]
    if min_latency_ns:
        flags.append(f"-DMIN_LATENCY_NS={min_latency_ns}ULL")
    if kind in KINDS:
        flags.append(f"-DKIND_FILTER={SHARED['KIND_' + kind.upper()]}")
    if per is not None:
        if per not in PER_CHOICES:
            raise ValueError(f"per is one of {', '.join(PER_CHOICES)}")
        if per == "kind":
            flags.append("-DPER_KIND")
        elif per in WORKLOAD_KINDS:
            flags += ["-DPER_CGROUP", f"-DMAX_PROCS={max_procs}"]
        else:
            flags += [f"-DPER_PROCESS={SHARED['PER_' + per.upper()]}",
                      f"-DMAX_PROCS={max_procs}"]
    if floor:
        if floor not in ("empty", "clock"):
            raise ValueError("floor is 'empty' or 'clock'")
        flags.append("-DFLOOR" if floor == "empty" else "-DFLOOR_CLOCK")
    return flags


ProcKey = Tuple[int, str]   # (tgid or 0, comm)


def plan_of(options: Optional[VfsReadOptions] = None) -> List[Candidate]:
    return plan()


def cflags_of(options: VfsReadOptions) -> List[str]:
    return cflags(options.unit, options.pid, options.comm, options.min_latency or None,
                  options.by, options.max_procs, read_pid_max(), options.floor,
                  kind=options.counts)


def features_of(options: VfsReadOptions) -> List[Feature]:
    return [kind_feature()] if wants_kind(options.by, options.kind) else []
