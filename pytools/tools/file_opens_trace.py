"""file-opens --trace: one line (or JSON object) per open as it happens,
from the program's event stream (pytools.events), with the events the
kernel could not deliver counted and shown, never dropped silently."""

from __future__ import annotations

import ctypes
import datetime as _dt
import os
import time
from typing import Callable, Dict, Optional

from ..escape import escape
from .file_opens_output import UNREADABLE, errno_name

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


def lost_line(count: int, kind: str) -> str:
    return f"[{count} events lost: the {kind} was full]"


class Tracer:
    """Reads a FileOpensReader's events, emitting each through `emit`."""

    def __init__(self, reader, emit: Callable[[object], None], as_json: bool,
                 workload: Callable[[int], Dict[str, str]], pages: int):
        from ..events import EventStream
        self.reader, self.emit, self.as_json, self.workload = reader, emit, as_json, workload
        self.printed = 0
        self.lost_shown = 0
        self.wall_offset = time.time() - time.monotonic()   # bpf_ktime_get_ns is monotonic
        per_cpu = reader.program.table("file_opens_scratch").Leaf   # an array: one per CPU
        self.event_type = getattr(per_cpu, "_type_", per_cpu)
        self.path_offset = self.event_type.path.offset
        self.stream = EventStream(reader.program, self.on_event, pages)

    def on_event(self, address: int, size: int) -> None:
        event = self.event_type.from_address(address)
        length = max(0, min(int(event.path_len), size - self.path_offset))
        path = ctypes.string_at(address + self.path_offset, length).rstrip(b"\0") \
            if length else b""
        e = decode(event, path, self.reader.calls, self.wall_offset, self.workload)
        self.emit(e if self.as_json else event_line(e))
        self.printed += 1

    def show_lost(self) -> None:
        """Say how many more events were lost since last said."""
        lost = self.stream.lost()
        if lost > self.lost_shown:
            more, self.lost_shown = lost - self.lost_shown, lost
            self.emit({"event": "lost", "count": more, "buffer": self.stream.kind}
                      if self.as_json else lost_line(more, self.stream.kind))

    def summary(self):
        if self.as_json:
            return {"event": "end", "printed": self.printed, "lost": self.lost_shown,
                    "buffer": self.stream.kind}
        return f"{self.printed} events printed, {self.lost_shown} lost ({self.stream.kind})"


def run_trace(reader, session, workload: Callable[[int], Dict[str, str]], pages: int,
              deadline: Optional[float] = None, tracer_class=None, header: str = HEADER
              ) -> None:
    """Events as they come, until `deadline` (monotonic) or Ctrl-C/SIGTERM;
    then the rest already in the buffer, the lost count, and a summary."""
    import click

    from ..runloop import signals_held
    tracer = (tracer_class or Tracer)(reader, session.emit, session.as_json, workload, pages)
    try:   # from the banner on, Ctrl-C ends the trace cleanly
        session.announce(reader.program)
        if not session.as_json:
            session.emit(header)
        while deadline is None or time.monotonic() < deadline:
            with signals_held():      # a signal waits for the poll: no half-printed event
                tracer.stream.poll(100)
                tracer.show_lost()
    except KeyboardInterrupt:
        pass
    with signals_held():
        tracer.stream.drain()
        tracer.show_lost()
        summary = tracer.summary()
        if session.as_json:
            session.emit(summary)
        else:
            click.echo(summary, err=True)
