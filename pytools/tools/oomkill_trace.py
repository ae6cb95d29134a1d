"""oomkill's output as it runs: one line (or JSON object) per kill from the
program's event stream (pytools.events), lost events counted and shown,
and at the end the kills per --by key, read from the count map."""

from __future__ import annotations

import time
from typing import Optional

from .file_opens_trace import Tracer, follow
from .oomkill_output import HEADER, counts_json, counts_table, decode, event_line


class OomTracer(Tracer):
    """Emits each kill of an OomKillReader's stream (show_lost and summary
    as file-opens --trace's)."""

    def __init__(self, reader, emit, as_json: bool, pages: int):
        from ..events import EventStream
        self.reader, self.emit, self.as_json = reader, emit, as_json
        self.printed = self.lost_shown = 0
        self.wall_offset = time.time() - time.monotonic()   # bpf_ktime_get_ns is monotonic
        per_cpu = reader.program.table("oomkill_scratch").Leaf
        self.event_type = getattr(per_cpu, "_type_", per_cpu)
        self.stream = EventStream(reader.program, self.on_event, pages)

    def on_event(self, address: int, size: int) -> None:
        e = decode(self.event_type.from_address(address), self.wall_offset, self.reader.pod_of)
        self.emit(e if self.as_json else event_line(e))
        self.printed += 1


def run_trace(reader, session, deadline: Optional[float] = None) -> None:
    """Kills as they come until `deadline` or Ctrl-C/SIGTERM; then the
    counts per --by key."""
    by = session.opts.get("by", "pod")

    def closing():
        snap = reader.snapshot()
        if session.as_json:
            return [{"event": "counts", **counts_json(snap, by, reader.workloads)}]
        return [counts_table(snap, by, reader.workloads)]

    follow(OomTracer(reader, session.emit, session.as_json, reader.pages), session,
           reader.program, HEADER, deadline, closing)
