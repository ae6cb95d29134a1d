"""execve counter: calls to execve/execveat by filename, comm, uid or cgroup."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Union

from .base import LoadedTool
from ..probes import Candidate, Hook

KEY_KINDS = ("filename", "comm", "uid", "cgroup")
DEFAULT_MAX_KEYS = 10240
EMPTY_FILENAME = "[execveat AT_EMPTY_PATH]"

Key = Union[str, int]


def plan(count_failed: bool = False) -> List[Candidate]:
    hooks = [Hook("tracepoint", "syscalls:sys_enter_execve"),
             Hook("tracepoint", "syscalls:sys_enter_execveat")]
    if count_failed:
        hooks += [Hook("tracepoint", "syscalls:sys_exit_execve"),
                  Hook("tracepoint", "syscalls:sys_exit_execveat")]
    return [Candidate("tracepoint", "execve/execveat syscalls via tracepoints",
                      "PROBE_TRACEPOINT", tuple(hooks))]


def cflags(by: str, pid: Optional[int] = None, uid: Optional[int] = None,
           max_keys: int = DEFAULT_MAX_KEYS, count_failed: bool = False) -> List[str]:
    if by not in KEY_KINDS:
        raise ValueError(f"unknown key {by!r}; choose from {', '.join(KEY_KINDS)}")
    if max_keys < 1:
        raise ValueError("max_keys must be at least 1")
    flags = [f"-DBY_{by.upper()}", f"-DMAX_KEYS={max_keys}"]
    if pid is not None:
        flags.append(f"-DFILTER_PID={pid}")
    if uid is not None:
        flags.append(f"-DFILTER_UID={uid}")
    if count_failed:
        flags.append("-DCOUNT_FAILED")
    return flags


def decode_key(by: str, raw) -> Key:
    """A map key (a ctypes struct, or anything with the same field) as plain data."""
    if by == "filename":
        name = bytes(raw.filename).split(b"\0", 1)[0].decode(errors="replace")
        return name or EMPTY_FILENAME
    if by == "comm":
        return bytes(raw.comm).split(b"\0", 1)[0].decode(errors="replace")
    if by == "uid":
        return int(raw.uid)
    if by == "cgroup":
        return int(raw.cgroup_id)
    raise ValueError(f"unknown key {by!r}")


@dataclass(frozen=True)
class ExecveSnapshot:
    """Counts since the program attached (or, after `delta`, over an interval)."""
    by: str
    counts: Dict[Key, int]
    overflow: int = 0                  # calls not keyed because the map was full
    failed: Optional[Dict[Key, int]] = None   # None: failures not counted
    failed_overflow: int = 0
    taken_at: float = 0.0              # time.monotonic() of the read
    elapsed: float = 0.0               # seconds covered (set by delta)

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.overflow

    @property
    def total_failed(self) -> Optional[int]:
        if self.failed is None:
            return None
        return sum(self.failed.values()) + self.failed_overflow


def _diff(cur: Dict[Key, int], prev: Dict[Key, int]) -> Dict[Key, int]:
    out = {}
    for key, value in cur.items():
        d = value - prev.get(key, 0)
        if d > 0:
            out[key] = d
    return out


def delta(cur: ExecveSnapshot, prev: ExecveSnapshot) -> ExecveSnapshot:
    """What happened between two cumulative snapshots (keys with no change dropped)."""
    return ExecveSnapshot(
        by=cur.by,
        counts=_diff(cur.counts, prev.counts),
        overflow=cur.overflow - prev.overflow,
        failed=None if cur.failed is None else _diff(cur.failed, prev.failed or {}),
        failed_overflow=cur.failed_overflow - prev.failed_overflow,
        taken_at=cur.taken_at,
        elapsed=cur.taken_at - prev.taken_at,
    )


def _read_counts(table, by: str) -> Dict[Key, int]:
    counts: Dict[Key, int] = {}
    for raw_key, value in table.items():
        key = decode_key(by, raw_key)
        counts[key] = counts.get(key, 0) + int(value.value)
    return counts


class ExecveCounter(LoadedTool):
    """Loads bpf/execve_counter.c and reads its maps into ExecveSnapshots."""

    source = "execve_counter.c"

    def __init__(self, by: str = "filename", pid: Optional[int] = None,
                 uid: Optional[int] = None, max_keys: int = DEFAULT_MAX_KEYS,
                 count_failed: bool = False, mode: str = "auto"):
        from ..loader import load  # keeps this module importable without bcc
        self.by = by
        self.count_failed = count_failed
        flags = cflags(by, pid, uid, max_keys, count_failed)
        self.program = load(self.source, plan(count_failed), flags, mode)

    def snapshot(self) -> ExecveSnapshot:
        overflow = self.program.table("execve_overflow")
        return ExecveSnapshot(
            by=self.by,
            counts=_read_counts(self.program.table("execve_total"), self.by),
            overflow=int(overflow[0].value),
            failed=(_read_counts(self.program.table("execve_failed"), self.by)
                    if self.count_failed else None),
            failed_overflow=int(overflow[1].value),
            taken_at=time.monotonic(),
        )
