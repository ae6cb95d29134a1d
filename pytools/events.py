"""The event stream a BPF program sends its reader (bpf/events.h), with
nothing lost silently.

Where the kernel has BPF ring buffers (5.8+) the program is compiled with
EVENTS_RINGBUF: one buffer shared by all CPUs, events in order. Else a perf
buffer per CPU. Either way an event the kernel could not deliver (the buffer
full because the reader fell behind) is counted in the kernel, in the
per-CPU `events_lost` array, so `lost()` is exact; the perf buffer's own
lost callback reports the same drops, later, and is kept only as a floor.
Counts a tool exports never come from this stream: they come from its maps.

Any tool may use it: `#include "events.h"`, `events_submit(ctx, data, size)`
in the program; `ringbuf_feature()` in its features, `page_flags(pages)` in
its cflags, and an EventStream over its loaded program.
"""

from __future__ import annotations

from typing import Callable, Optional

import click

from .probes import Feature
from .kernel import kernel_version_code

RINGBUF = "ring buffer"
RINGBUF_DEFINE = "-DEVENTS_RINGBUF"
RINGBUF_SINCE = (5, 8)
DEFAULT_PAGES = 64          # per CPU for perf buffers; the ring buffer's whole size
PAGES_LIMIT = 1 << 16


def ringbuf_problem(version_code: int) -> Optional[str]:
    """Why a kernel (0xMMmmpp) has no BPF ring buffer, or None."""
    major, minor = RINGBUF_SINCE
    if version_code < (major << 16 | minor << 8):
        return f"BPF ring buffers need Linux {major}.{minor}+; events go through perf buffers"
    return None


def ringbuf_feature(version_code: Optional[int] = None) -> Feature:
    """The ring buffer as an optional feature: where it fails to load, the
    loader compiles the program without it (the perf buffer)."""
    if version_code is None:
        version_code = kernel_version_code()
    return Feature(RINGBUF, (RINGBUF_DEFINE,), problem=ringbuf_problem(version_code))


def page_flags(pages: int) -> list:
    """EVENTS_PAGES for events.h: a power of two (both buffers need it)."""
    if pages < 1 or pages > PAGES_LIMIT or pages & (pages - 1):
        raise ValueError(f"buffer pages must be a power of two from 1 to {PAGES_LIMIT}, "
                         f"not {pages}")
    return [f"-DEVENTS_PAGES={pages}"]


def stream_features(wanted: bool, ringbuf: bool = True) -> list:
    """A tool's features(opts) where it sends events: the ring buffer
    (ringbuf=False, in tests: the perf buffer, as before 5.8)."""
    return [ringbuf_feature()] if wanted and ringbuf else []


def checked_pages(pages: int) -> int:
    """--buffer-pages as given, or click's one-line error."""
    try:
        page_flags(pages)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--buffer-pages") from None
    return pages


class EventStream:
    """Events of a loaded program (pytools.loader.Program) handed to
    on_event(address, size) as they are polled; lost() is the count of
    events the kernel could not deliver."""

    def __init__(self, program, on_event: Callable[[int, int], None],
                 pages: int = DEFAULT_PAGES):
        self.program = program
        self.ringbuf = RINGBUF_DEFINE in program.cflags
        self.kind = RINGBUF if self.ringbuf else "perf buffer"
        self.reported_lost = 0       # the perf buffer's lost callback
        table = program.table("events")
        if self.ringbuf:
            table.open_ring_buffer(lambda ctx, data, size: on_event(data, size))
        else:
            table.open_perf_buffer(lambda cpu, data, size: on_event(data, size),
                                   page_cnt=pages, lost_cb=self._lost)

    def _lost(self, count: int) -> None:
        self.reported_lost += count

    def poll(self, timeout_ms: int) -> None:
        """Wait up to timeout_ms for events and hand over what came."""
        bpf = self.program.bpf
        if self.ringbuf:
            bpf.ring_buffer_poll(timeout_ms)
        else:
            bpf.perf_buffer_poll(timeout_ms)

    def drain(self) -> None:
        """Hand over every event already in the buffers."""
        bpf = self.program.bpf
        if self.ringbuf:
            bpf.ring_buffer_consume()
        else:
            bpf.perf_buffer_consume()

    def lost(self) -> int:
        counted = sum(int(v) for v in self.program.table("events_lost")[0])
        return max(counted, self.reported_lost)
