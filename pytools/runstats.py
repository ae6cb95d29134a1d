"""What the tools' own BPF programs cost, from the kernel's accounting.

The kernel counts each program's runs and run time (`run_cnt`,
`run_time_ns`, shown in /proc/<pid>/fdinfo/<prog fd>) while BPF statistics
are enabled: by `bpf(BPF_ENABLE_STATS, BPF_STATS_RUN_TIME)` (5.8+), which
holds them on only as long as its file descriptor is open, so only while the
tool runs (bpf-exporter samples them instead: pytools/selfcost.py); or by
the sysctl kernel.bpf_stats_enabled. While on, every BPF program on the
machine pays two clock reads per run. Where neither is on
and this process may not turn them on (it needs CAP_SYS_ADMIN), the cost is
not reported at all, and `problem` says why: never zeros.
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from .syscalls import SYS_BPF

BPF_ENABLE_STATS = 32
BPF_STATS_RUN_TIME = 0
SYSCTL = "/proc/sys/kernel/bpf_stats_enabled"
STATS_INODE = "anon_inode:bpf-stats"     # what /proc/PID/fd/N of such an fd reads


@dataclass(frozen=True)
class Cost:
    runs: int
    run_ns: int

    def __sub__(self, other: "Cost") -> "Cost":
        return Cost(self.runs - other.runs, self.run_ns - other.run_ns)

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.runs + other.runs, self.run_ns + other.run_ns)

    @property
    def ns_per_run(self) -> Optional[float]:
        return self.run_ns / self.runs if self.runs else None


def parse_fdinfo(text: str) -> Optional[Tuple[int, Cost]]:
    """(prog id, Cost) from a program fd's fdinfo text, None if not a program."""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        return int(fields["prog_id"]), Cost(int(fields["run_cnt"]), int(fields["run_time_ns"]))
    except (KeyError, ValueError):
        return None


class RunStats:
    """Turns the kernel's BPF run-time statistics on (if they are not) for
    as long as it is open, and reads a program's cost from its fds."""

    def __init__(self):
        self.fd: Optional[int] = None
        self.problem: Optional[str] = None
        if sysctl_on():
            return
        self.fd, self.problem = enable_stats()

    def cost(self, program) -> Optional[Dict[str, Cost]]:
        """Each of the program's functions' cost since it was loaded, by
        name; None where statistics are not on."""
        if self.problem is not None:
            return None
        return program_costs(program)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "RunStats":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def enable_stats() -> Tuple[Optional[int], Optional[str]]:
    """bpf(BPF_ENABLE_STATS): (the fd that holds the statistics on until it
    is closed, None), or (None, why not)."""
    attr = (ctypes.c_uint32 * 4)(BPF_STATS_RUN_TIME)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(SYS_BPF, BPF_ENABLE_STATS, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd >= 0:
        return fd, None
    err = ctypes.get_errno()
    if err == errno.EPERM:
        return None, ("BPF run-time statistics are off and turning them on needs "
                      "CAP_SYS_ADMIN (or sysctl kernel.bpf_stats_enabled=1)")
    if err == errno.EINVAL:
        return None, "this kernel cannot turn BPF run-time statistics on (before 5.8)"
    return None, f"BPF run-time statistics: {os.strerror(err)}"


def program_costs(program) -> Optional[Dict[str, Cost]]:
    """Each of a loaded program's functions' (bcc) counters, by name, from
    its fds' fdinfo; None for no program."""
    if program is None or program.bpf is None:
        return None
    out: Dict[str, Cost] = {}
    for name, function in list(program.bpf.funcs.items()):
        fd = getattr(function, "fd", None)
        if fd is None or fd < 0:
            continue
        try:
            with open(f"/proc/self/fdinfo/{fd}") as f:
                parsed = parse_fdinfo(f.read())
        except OSError:
            continue
        if parsed:
            key = name.decode() if isinstance(name, bytes) else str(name)
            out[key] = parsed[1]
    return out


def sysctl_value() -> Optional[str]:
    """kernel.bpf_stats_enabled as the kernel shows it, None if unreadable."""
    try:
        with open(SYSCTL) as f:
            return f.read().strip()
    except OSError:
        return None


def sysctl_on() -> bool:
    return sysctl_value() == "1"


def holders(proc: str = "/proc") -> List[Tuple[int, str]]:
    """(pid, comm) of each process holding a BPF_ENABLE_STATS fd: the
    kernel names that fd's anonymous inode "bpf-stats"."""
    out = []
    for pid in sorted((int(p) for p in os.listdir(proc) if p.isdigit())):
        try:
            fds = os.listdir(f"{proc}/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{proc}/{pid}/fd/{fd}")
            except OSError:
                continue
            if target == STATS_INODE:
                try:
                    with open(f"{proc}/{pid}/comm") as f:
                        comm = f.read().strip()
                except OSError:
                    comm = "?"
                out.append((pid, comm))
                break
    return out


def total(costs: Dict[str, Cost]) -> Cost:
    out = Cost(0, 0)
    for c in costs.values():
        out = out + c
    return out


def describe(cost: Cost, seconds: float) -> str:
    """One line for -v: runs, ns per run and CPU time of an interval."""
    per = f"{cost.ns_per_run:.0f} ns/run" if cost.ns_per_run is not None else "- ns/run"
    share = f", {cost.run_ns / seconds / 1e7:.3f}% of a CPU" if seconds > 0 else ""
    return (f"bpf cost: {cost.runs} runs, {per}, {cost.run_ns / 1e6:.2f} ms CPU{share}")


def as_json(cost: Optional[Cost], problem: Optional[str]) -> dict:
    if cost is None:
        return {"runs": None, "run_ns": None, "ns_per_run": None, "note": problem}
    return {"runs": cost.runs, "run_ns": cost.run_ns,
            "ns_per_run": None if cost.ns_per_run is None else round(cost.ns_per_run, 1)}
