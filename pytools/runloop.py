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


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while an interval is printed: one that
    arrives meanwhile is delivered (as KeyboardInterrupt) once it is out,
    so an interval is never cut in half or printed twice."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def run_intervals(interval: float, count: Optional[int], tick: Callable[[], None],
                  clock=time.monotonic, sleep=time.sleep,
                  on_start: Optional[Callable[[], None]] = None) -> bool:
    """Call on_start() (the "Hit Ctrl-C" banner), then tick() at the end of
    each interval. Deadlines are kept from the start, so slow ticks do not
    make intervals drift. Ctrl-C (or SIGTERM inside sigterm_as_interrupt)
    from the banner on gives one more tick() for the partial interval.
    Returns True if it was interrupted."""
    deadline = clock()
    done = 0
    try:
        if on_start is not None:
            on_start()
        while count is None or done < count:
            deadline += interval
            remaining = deadline - clock()
            if remaining > 0:
                sleep(remaining)
            with signals_held():
                tick()
            done += 1
    except KeyboardInterrupt:
        with signals_held():
            tick()
        return True
    return False
