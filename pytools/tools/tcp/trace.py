"""tcpretrans --trace: one line (or JSON object) per retransmit or reset,
as bcc's tcpretrans prints them, with the socket owner's pod; through the
shared event stream (pytools.events), lost events counted and shown."""

from __future__ import annotations

import datetime as _dt
from typing import Callable, Dict

from ... import tracing
from ...names import c_string
from .output import KINDS, address, state_name

KIND_NAMES = dict(enumerate(("R", "S", "RST>", "RST<")))   # bcc's R (retransmit), S (SYN)
HEADER = f"{'TIME':<15} {'POD':<24} {'LADDR:LPORT':<28} {'T':<4} {'RADDR:RPORT':<28} " \
         f"{'STATE':<12} SEGS"


def decode(event, wall_offset: float, workload: Callable[[int], Dict[str, str]]) -> dict:
    when = _dt.datetime.fromtimestamp(event.ts / 1e9 + wall_offset, _dt.timezone.utc)
    family, kind = int(event.family), int(event.kind)
    return {"event": KINDS[kind] if kind < len(KINDS) else str(kind),
            "time": when.isoformat(timespec="microseconds"),
            **(workload(int(event.cgroup)) if event.cgroup else {"unattributed": True}),
            **({"pid": int(event.pid), "comm": c_string(event.comm)} if event.pid else {}),
            "local": address(family, bytes(event.saddr), int(event.sport)),
            "remote": address(family, bytes(event.daddr), int(event.dport)),
            "state": state_name(int(event.state)), "segments": int(event.segs),
            "kind": KIND_NAMES.get(kind, "?")}


def event_line(e: dict) -> str:
    pod = "/".join(v for v in (e.get("namespace"), e.get("pod")) if v) or \
        ("[no socket]" if e.get("unattributed") else "-")
    return (f"{e['time'][11:26]:<15} {pod:<24} {e['local']:<28} {e['kind']:<4} "
            f"{e['remote']:<28} {e['state']:<12} {e['segments']}")


def tracer(reader, emit, as_json: bool, workload, pages: int) -> tracing.Tracer:
    """A TcpRetransReader's events (bpf/tcp.c's tcp_event) as lines or
    JSON, those of sockets outside --cgroup left out."""
    event_type = reader.event_type()
    offset = tracing.wall_offset()      # bpf_ktime_get_ns is monotonic

    def decode_at(address_: int, size: int):
        event = event_type.from_address(address_)
        if not reader.allowed(int(event.cgroup)):
            return None
        return decode(event, offset, workload)
    return tracing.Tracer(reader.program, emit, as_json, decode_at, event_line, pages)
