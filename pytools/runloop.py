"""The interval loop every tool shares: tick every `interval` seconds, `count`
times or until Ctrl-C/SIGTERM, and always give the last partial interval."""

from __future__ import annotations

import contextlib
import signal
import time
from typing import Callable, Iterator, Optional


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, so both end in the same clean detach."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_intervals(interval: float, count: Optional[int],
                  tick: Callable[[], None], clock=time.monotonic, sleep=time.sleep) -> bool:
    """Call tick() at the end of each interval. Deadlines are kept from the
    start, so slow ticks do not make intervals drift. On Ctrl-C (or SIGTERM
    inside sigterm_as_interrupt) tick() runs once more for the partial
    interval. Returns True if it was interrupted."""
    deadline = clock()
    done = 0
    while count is None or done < count:
        deadline += interval
        interrupted = False
        try:
            remaining = deadline - clock()
            if remaining > 0:
                sleep(remaining)
        except KeyboardInterrupt:
            interrupted = True
        tick()
        done += 1
        if interrupted:
            return True
    return False
