"""file-opens --trace: one line (or JSON object) per open as it happens,
from the program's event stream (pytools.events), with the events the
kernel could not deliver counted and shown, never dropped silently."""

from __future__ import annotations

import datetime as _dt
import os
from typing import Callable, Dict, Optional

from ... import tracing
from ...escape import escape
from ...tracing import lost_line  # noqa: F401  (re-exported: the line file-opens prints)
from .output import UNREADABLE, errno_name

ACCESS = {os.O_RDONLY: "O_RDONLY", os.O_WRONLY: "O_WRONLY", os.O_RDWR: "O_RDWR"}
# Composite flags first: O_SYNC holds O_DSYNC's bit, O_TMPFILE O_DIRECTORY's.
FLAG_NAMES = [(getattr(os, n), n) for n in (
    "O_TMPFILE", "O_SYNC", "O_CREAT", "O_EXCL", "O_NOCTTY", "O_TRUNC", "O_APPEND",
    "O_NONBLOCK", "O_DSYNC", "O_DIRECT", "O_LARGEFILE", "O_DIRECTORY", "O_NOFOLLOW",
    "O_NOATIME", "O_CLOEXEC", "O_PATH") if hasattr(os, n)]
HEADER = f"{'TIME':<15} {'POD':<24} {'PID':>7} {'COMM':<16} {'CALL':<7} {'RESULT':>7} " \
         f"{'FLAGS':<24} PATH"


def flag_names(flags: int) -> str:
    """O_RDONLY|O_CLOEXEC; bits without a name as hex."""
    names = [ACCESS.get(flags & os.O_ACCMODE, hex(flags & os.O_ACCMODE))]
    rest = flags & ~os.O_ACCMODE
    for bit, name in FLAG_NAMES:
        if bit and rest & bit == bit:
            names.append(name)
            rest &= ~bit
    if rest:
        names.append(hex(rest))
    return "|".join(names)


def decode(event, path: bytes, calls: Dict[int, str], wall_offset: float,
           workload: Callable[[int], Dict[str, str]]) -> dict:
    """An event struct (bpf/file_opens.c) and its path bytes as plain data."""
    ret = int(event.ret)
    when = _dt.datetime.fromtimestamp(event.ts / 1e9 + wall_offset, _dt.timezone.utc)
    return {"event": "open", "time": when.isoformat(timespec="microseconds"),
            **workload(int(event.cgroup_id)), "pid": int(event.pid), "tid": int(event.tid),
            "comm": escape(bytes(event.comm).split(b"\0", 1)[0]),
            "call": calls.get(int(event.call), str(event.call)),
            "flags": flag_names(int(event.flags)), "ret": ret,
            "result": errno_name(-ret) if ret < 0 else str(ret),
            "path": escape(path), "path_unreadable": not path}


def event_line(e: dict) -> str:
    pod = "/".join(v for v in (e.get("namespace"), e.get("pod")) if v) or "-"
    clock = e["time"][11:26]
    path = UNREADABLE if e["path_unreadable"] else e["path"]
    return (f"{clock:<15} {pod:<24} {e['pid']:>7} {e['comm']:<16} {e['call']:<7} "
            f"{e['result']:>7} {e['flags']:<24} {path}")


class Tracer(tracing.Tracer):
    """Reads a FileOpensReader's events, emitting each through `emit`."""

    def __init__(self, reader, emit: Callable[[object], None], as_json: bool,
                 workload: Callable[[int], Dict[str, str]], pages: int):
        self.reader, self.workload = reader, workload
        self.wall_offset = tracing.wall_offset()   # bpf_ktime_get_ns is monotonic
        self.event_type = tracing.event_struct(reader.program, "file_opens_scratch")
        super().__init__(reader.program, emit, as_json, self._decode, event_line, pages)

    def _decode(self, address: int, size: int) -> dict:
        event = self.event_type.from_address(address)
        path = tracing.tail(self.event_type, "path", address, size,
                            int(event.path_len)).rstrip(b"\0")
        return decode(event, path, self.reader.calls, self.wall_offset, self.workload)


def run_trace(reader, session, workload: Callable[[int], Dict[str, str]], pages: int,
              deadline: Optional[float] = None) -> None:
    """Events as they come, until `deadline` or Ctrl-C (pytools.tracing)."""
    tracer = Tracer(reader, session.emit, session.as_json, workload, pages)
    tracing.run_trace(tracer, reader.program, session, HEADER, deadline)
