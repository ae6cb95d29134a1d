"""Printing a program's event stream (pytools.events) as it comes: one line
or JSON object per event, the events the kernel could not deliver shown as
they are counted ("[N events lost]"), a summary at the end. Tools bring
their own decoding (address, size -> plain data, or None to skip) and line
format; this module is what every --trace shares."""

from __future__ import annotations

import ctypes
import time
from typing import Callable, Optional

import click

from .events import EventStream
from .runloop import signals_held
from .workloads import GROUPINGS, labels


def lost_line(count: int, kind: str) -> str:
    return f"[{count} events lost: the {kind} was full]"


class Tracer:
    """Reads a loaded program's events, emitting each through `emit`."""

    def __init__(self, program, emit: Callable[[object], None], as_json: bool,
                 decode: Callable[[int, int], Optional[dict]], line: Callable[[dict], str],
                 pages: int):
        self.emit, self.as_json, self.decode, self.line = emit, as_json, decode, line
        self.printed = 0
        self.lost_shown = 0
        self.stream = EventStream(program, self.on_event, pages)

    def on_event(self, address: int, size: int) -> None:
        e = self.decode(address, size)
        if e is None:
            return
        self.emit(e if self.as_json else self.line(e))
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


def event_struct(program, scratch: str):
    """The ctypes type of a program's event, from the per-CPU array it is
    built in (`scratch`: an array's Leaf is one value per CPU)."""
    leaf = program.table(scratch).Leaf
    return getattr(leaf, "_type_", leaf)


def tail(event_type, field: str, address: int, size: int, length: int) -> bytes:
    """The first `length` bytes of an event's variable tail `field` (the
    last member, sent only as far as used), never past the `size` sent."""
    offset = getattr(event_type, field).offset
    return ctypes.string_at(address + offset, max(0, min(length, size - offset)))


def wall_offset() -> float:
    """Add to bpf_ktime_get_ns()/1e9 (CLOCK_MONOTONIC) for the wall time."""
    return time.time() - time.monotonic()


def run_trace(tracer: Tracer, program, session, header: str,
              deadline: Optional[float] = None) -> None:
    """Events as they come, until `deadline` (monotonic) or Ctrl-C/SIGTERM;
    then the rest already in the buffer, the lost count, and a summary."""

    try:   # from the banner on, Ctrl-C ends the trace cleanly
        with signals_held():   # the banner and the header, whole, before a Ctrl-C ends it
            session.announce(program)
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


def session_deadline(session) -> Optional[float]:
    """A trace run with COUNT ends after INTERVAL x COUNT seconds."""
    return time.monotonic() + session.interval * session.count if session.count else None


def pod_fields(workloads, cgroup_id: int) -> dict:
    """namespace, pod and container of a cgroup id ("" outside pods): the
    pod fields of a traced event (pytools.workloads)."""
    return dict(zip(GROUPINGS["container"], labels(workloads.of(cgroup_id), "container"),
                    strict=True))
