"""System call numbers, per machine: the one table for the raw calls this
package makes (bpf, perf_event_open), the read syscalls vfs_read's raw
mode matches by number, and the opens file_opens hooks (arm64 has no open).
arm64's are include/uapi/asm-generic/unistd.h."""

from __future__ import annotations

import os
from typing import Dict, Optional

NUMBERS: Dict[str, Dict[str, int]] = {
    "x86_64": {"read": 0, "pread64": 17, "readv": 19, "preadv": 295, "preadv2": 327,
               "bpf": 321, "perf_event_open": 298,
               "open": 2, "openat": 257, "openat2": 437},
    "aarch64": {"read": 63, "pread64": 67, "readv": 65, "preadv": 69, "preadv2": 286,
                "bpf": 280, "perf_event_open": 241,
                "openat": 56, "openat2": 437},
}


def numbers(machine: Optional[str] = None) -> Dict[str, int]:
    """This machine's (or `machine`'s) table; empty where it is not known."""
    return NUMBERS.get(machine or os.uname().machine, {})


def number(name: str, machine: Optional[str] = None) -> int:
    """A call's number here (x86_64's where the machine is not known)."""
    return numbers(machine).get(name, NUMBERS["x86_64"][name])


SYS_BPF = number("bpf")
SYS_PERF_EVENT_OPEN = number("perf_event_open")
