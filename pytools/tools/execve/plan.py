"""execve: the probe plan, the compile flags and the constants shared with bpf/execve.c."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Union

from ... import events
from ...names import c_string
from ...workloads import GROUPINGS
from ...probes import Candidate, Hook


KEY_KINDS = ("filename", "comm", "uid", "cgroup", "pod", "container", "service")
# Keyed by cgroup id in the kernel, named in user space (pytools.workloads).
WORKLOAD_KINDS = tuple(GROUPINGS)           # pod, container, service
EXPORTER_KINDS = ("filename", "comm", "uid", "cgroup", "pod", "container", "service")
DEFAULT_MAX_KEYS = 10240
MAX_KEYS_LIMIT = 1 << 20
EMPTY_FILENAME = "[execveat AT_EMPTY_PATH]"
KEY_HEADERS = {"filename": "FILENAME", "comm": "COMM", "uid": "UID", "cgroup": "CGROUP ID",
               "pod": "NAMESPACE/POD", "container": "NAMESPACE/POD/CONTAINER",
               "service": "SERVICE"}

Key = Union[str, int]


@dataclass(frozen=True)
class ExecveOptions:
    """The command's options (the exporter's: exporter_open), built once."""
    by: str = "filename"
    pid: Optional[int] = None
    uid: Optional[int] = None
    top: int = 10
    outcome: Optional[str] = None     # --failed or --ok
    cumulative: bool = False
    max_keys: int = DEFAULT_MAX_KEYS
    trace: bool = False
    buffer_pages: int = events.DEFAULT_PAGES
    ringbuf: bool = True              # False (tests): the perf buffer, as before 5.8


def plan() -> List[Candidate]:
    """Entry counts every call; exit tells which failed (its return value)."""
    hooks = tuple(Hook("tracepoint", f"syscalls:sys_{edge}_{name}")
                  for edge in ("enter", "exit") for name in ("execve", "execveat"))
    return [Candidate("tracepoint", "execve/execveat syscalls via tracepoints",
                      "PROBE_TRACEPOINT", hooks)]


def cflags(by: str, pid: Optional[int] = None, uid: Optional[int] = None,
           max_keys: int = DEFAULT_MAX_KEYS) -> List[str]:
    if by not in KEY_KINDS:
        raise ValueError(f"unknown key {by!r}; choose from {', '.join(KEY_KINDS)}")
    if max_keys < 1:
        raise ValueError("max_keys must be at least 1")
    kernel_key = "cgroup" if by in WORKLOAD_KINDS else by
    flags = [f"-DBY_{kernel_key.upper()}", f"-DMAX_KEYS={max_keys}"]
    if pid is not None:
        flags.append(f"-DFILTER_PID={pid}")
    if uid is not None:
        flags.append(f"-DFILTER_UID={uid}")
    return flags


def decode_key(by: str, raw) -> Key:
    """A map key (a ctypes struct, or anything with the same field) as plain data."""
    if by == "filename":
        return c_string(raw.filename) or EMPTY_FILENAME
    if by == "comm":
        return c_string(raw.comm)
    if by == "uid":
        return int(raw.uid)
    if by == "cgroup" or by in WORKLOAD_KINDS:
        return int(raw.cgroup_id)
    raise ValueError(f"unknown key {by!r}")
