"""oomkill's output as it runs: one line (or JSON object) per kill from the
program's event stream (pytools.tracing), lost events counted and shown,
and at the end the kills per --by key, read from the count map."""

from __future__ import annotations

from typing import Optional

from ... import tracing
from .output import HEADER, counts_json, counts_table, decode, event_line


class OomTracer(tracing.Tracer):
    """Emits each kill of an OomKillReader's stream."""

    def __init__(self, reader, emit, as_json: bool, pages: int):
        self.reader = reader
        self.wall_offset = tracing.wall_offset()   # bpf_ktime_get_ns is monotonic
        self.event_type = tracing.event_struct(reader.program, "oomkill_scratch")
        super().__init__(reader.program, emit, as_json, self._decode, event_line, pages)

    def _decode(self, address: int, size: int) -> dict:
        return decode(self.event_type.from_address(address), self.wall_offset,
                      self.reader.pod_of)


def run_trace(reader, session, deadline: Optional[float] = None) -> None:
    """Kills as they come until `deadline` or Ctrl-C/SIGTERM; then the
    counts per --by key (from the map, never from the stream)."""
    tracer = OomTracer(reader, session.emit, session.as_json, reader.pages)
    tracing.run_trace(tracer, reader.program, session, HEADER, deadline)
    by, snap = session.opts.by, reader.snapshot()
    session.emit({"event": "counts", **counts_json(snap, by, reader.names.workloads)}
                 if session.as_json else counts_table(snap, by, reader.names.workloads))
