"""The exporter's self-cost: what its BPF programs cost, without holding the
kernel's run-time statistics on.

While BPF statistics are on, every BPF program on the node (this
toolkit's and any other agent's) pays two clock reads per run
(docs/benchmarks.md, "What the statistics cost"). So the exporter samples
them: on for WINDOW_S seconds in every PERIOD_S, off in between. A
program's counters (run_cnt, run_time_ns) only grow while statistics are
on, so a window's growth, divided by the share of its cycle the window
was on (both measured with the monotonic clock), estimates the cycle's;
the estimates add up into counters that only grow.

Duty cycle: 0.5 s in 30 s (1/60). The time-averaged tax is then the
statistics' per-run tax over 60, at most 2% of a program's own per-run
cost (its dispatch included) wherever the tax per run is at most 1.2x
that cost; measured on vfs_read's tracepoints here, the tax (87 ns per
run) is 0.37x the tool's own cost per read, so 0.6%, and 0.76x even an
empty program's there (docs/benchmarks.md).

Where the operator has set kernel.bpf_stats_enabled=1, statistics are on
anyway: the figures are then the kernel's exact counters, and the
exporter turns nothing on or off. With --self-cost off it never turns
them on and reports no cost at all.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from . import runstats
from .runstats import Cost

log = logging.getLogger("bpf-exporter")

WINDOW_S = 0.5
PERIOD_S = 30.0
MODES = ("sampled", "off")

Key = Tuple[str, str]           # (collector, program)
Costs = Dict[Key, Cost]


@dataclass(frozen=True)
class Estimate:
    """A program's estimated runs and run time (floats: scaled counts)."""
    runs: float
    run_ns: float


class Estimator:
    """Sampled windows' counter growth, each scaled to its cycle and
    summed (pure: the numbers come from SelfCost)."""

    def __init__(self):
        self.totals: Dict[Key, Estimate] = {}
        self.on_seconds = 0.0
        self.elapsed_seconds = 0.0

    def add(self, before: Costs, after: Costs, on_seconds: float, cycle_seconds: float) -> None:
        """A window: counters at its start and end, how long statistics
        were on between the two reads, and the time since the previous
        window's end (the cycle the window stands for)."""
        if on_seconds <= 0:
            return
        scale = max(cycle_seconds, on_seconds) / on_seconds
        for key, end in after.items():
            start = before.get(key)
            if start is None:
                continue            # appeared during the window: next one
            grew = end - start
            if grew.runs < 0 or grew.run_ns < 0:
                continue            # a reloaded program: its counters restarted
            old = self.totals.get(key, Estimate(0.0, 0.0))
            self.totals[key] = Estimate(old.runs + grew.runs * scale,
                                        old.run_ns + grew.run_ns * scale)
        self.on_seconds += on_seconds
        self.elapsed_seconds += max(cycle_seconds, on_seconds)

    @property
    def duty(self) -> Optional[float]:
        return self.on_seconds / self.elapsed_seconds if self.elapsed_seconds else None


class SelfCost:
    """The programs' cost for the exporter's self metrics. read_costs()
    gives every program's counters now ({key: Cost}). how: "exact" (the
    sysctl holds statistics on), "sampled" (a thread turns them on for
    `window` seconds in every `period`), or "off" (--self-cost off, or
    statistics cannot be turned on: `problem` says why)."""

    def __init__(self, read_costs: Callable[[], Costs], mode: str = "sampled",
                 window: float = WINDOW_S, period: float = PERIOD_S,
                 clock: Callable[[], float] = time.monotonic):
        if mode not in MODES:
            raise ValueError(f"self-cost mode {mode!r}: one of {', '.join(MODES)}")
        self.read_costs = read_costs
        self.window, self.period, self.clock = window, period, clock
        self.problem: Optional[str] = None
        self.estimator = Estimator()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        if mode == "off":
            self.how = "off"
        elif runstats.sysctl_on():
            self.how = "exact"
        else:
            fd, self.problem = runstats.enable_stats()     # may we? (CAP_SYS_ADMIN)
            self.how = "off" if fd is None else "sampled"
            if fd is not None:
                self._thread = threading.Thread(target=self._run, args=(fd,),
                                                name="self-cost", daemon=True)
                self._thread.start()

    def describe(self) -> str:
        if self.how == "exact":
            return ("exact: kernel.bpf_stats_enabled=1 on this node holds BPF statistics "
                    "on, for every BPF program on it (two clock reads per run); not toggled")
        if self.how == "sampled":
            return (f"sampled: BPF statistics on {self.window:g} s in every "
                    f"{self.period:g} s, counts scaled by that share")
        return "not exported: " + (self.problem or "--self-cost off")

    def costs(self) -> Optional[Dict[Key, Estimate]]:
        """Each program's cost so far (estimated where sampled); None where
        it is not measured."""
        if self.how == "exact":
            return {k: Estimate(float(c.runs), float(c.run_ns))
                    for k, c in self.read_costs().items()}
        if self.how == "sampled":
            with self._lock:
                return dict(self.estimator.totals)
        return None

    def duty(self) -> Optional[float]:
        """The share of time statistics were on for these figures."""
        if self.how == "exact":
            return 1.0
        with self._lock:
            return self.estimator.duty

    def _window(self, fd: int, since: Optional[float]) -> float:
        """Statistics are on (fd holds them): counters now, again after the
        window, then off. Returns the window's end (its reads' midpoint)."""
        try:
            t0 = self.clock()
            before = self.read_costs()
            start = (t0 + self.clock()) / 2
            self._stop.wait(self.window)
            t1 = self.clock()
            after = self.read_costs()
            end = (t1 + self.clock()) / 2
        finally:
            os.close(fd)
        with self._lock:
            self.estimator.add(before, after, end - start, end - (start if since is None
                                                                   else since))
        return end

    def _run(self, fd: Optional[int]) -> None:
        since = None                          # the first window stands for itself
        while True:
            if fd is not None:
                try:
                    since = self._window(fd, since)
                except Exception as e:        # never let the thread die silently
                    log.error("self-cost window failed: %s", e)
            if self._stop.wait(max(0.0, self.period - self.window)):
                return
            fd, problem = runstats.enable_stats()
            if fd is None:
                log.warning("self-cost window skipped: %s", problem)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
