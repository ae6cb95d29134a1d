"""One run of a tool's command: the interval loop (Session), the bcc-style
banner (announce), one interval's output (emit) and --ebpf (print_ebpf).
The click commands that build a Session are pytools.cli's."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import click

from . import privileges, runstats
from .render import clock_time, iso_time
from .runloop import run_intervals
from .tool import Tool, View


def emit(text_or_obj) -> None:
    if isinstance(text_or_obj, dict):
        click.echo(json.dumps(text_or_obj, sort_keys=False))
    else:
        click.echo(text_or_obj)
    sys.stdout.flush()


def announce(program, verbose: bool, order: str = "", counted: str = "") -> None:
    """The bcc-style banner on stderr (with what is counted, where a reader
    says: `counted`), and with -v the probe choice."""
    if verbose:
        for attempt in program.attempts:
            status = "attached" if attempt.error is None else f"failed: {attempt.error}"
            click.echo(f"probe {attempt.mode}: {attempt.label}: {status}", err=True)
        click.echo(f"hooks: {', '.join(h.describe() for h in program.hooks)}", err=True)
        if order:
            click.echo(f"order: {order}", err=True)
        # the loader (headers, tempfiles) only where a program is loaded: --help starts without it.
        from .loader import prepare
        headers = prepare().headers
        click.echo(f"headers: {headers.path} ({headers.how})", err=True)
        if program.structs:
            click.echo(f"structs: {program.structs}", err=True)
        if program.candidate.note:
            click.echo(f"note: {program.candidate.note}", err=True)
        for feature in program.features:
            if feature.detail and feature.name not in program.missing_features:
                click.echo(f"{feature.name}: {feature.detail}", err=True)
        for feature, problem in program.missing_features.items():
            click.echo(f"without {feature}: {problem}", err=True)
    what = f": {counted}" if counted else ""
    click.echo(f"Tracing {program.candidate.label}{what}... Hit Ctrl-C to end.", err=True)


class Session:
    """One run of a tool's command: its options (Tool.options_of) and how
    it prints."""

    def __init__(self, tool: Tool, opts, interval: float, count: Optional[int],
                 as_json: bool, timestamp: bool, verbose: bool):
        self.tool, self.opts = tool, opts
        self.interval, self.count = interval, count
        self.as_json, self.timestamp, self.verbose = as_json, timestamp, verbose

    emit = staticmethod(emit)

    def announce(self, program, counted: str = "") -> None:
        announce(program, self.verbose, self.tool.order_reason, counted)

    def show(self, reader, shown, probe: dict, cost=None, cost_problem=None,
             seconds: float = 0.0) -> None:
        """One interval's output; with --json the tool's own BPF cost in
        it, with -v that cost on stderr (pytools.runstats)."""
        view = View(probe, reader.program.candidate.label, iso_time(),
                    clock_time() if self.timestamp else None, self.interval, self.opts,
                    self.verbose, reader.names)
        if self.as_json:
            obj = self.tool.json(shown, view)
            obj["bpf_cost"] = runstats.as_json(cost, cost_problem)
            emit(obj)
        else:
            emit(self.tool.text(shown, view) + "\n")
            if self.verbose:
                click.echo(runstats.describe(cost, seconds) if cost is not None
                           else f"bpf cost: not measured: {cost_problem}", err=True)

    def intervals(self, reader) -> None:
        """Snapshot now, then at each interval show the difference from the
        previous snapshot (or from the first, when cumulative), including
        the partial interval that Ctrl-C or SIGTERM cuts."""

        cumulative = self.tool.cumulative(self.opts)
        probe = reader.program.probe_info()     # fixed once attached
        stats = runstats.RunStats() if (self.verbose or self.as_json) else None

        def cost_now():
            costs = stats.cost(reader.program) if stats else None
            return None if costs is None else runstats.total(costs)

        start = previous = reader.snapshot()
        first_cost = last_cost = cost_now()
        last_time = first_time = time.monotonic()

        def tick():
            nonlocal previous, last_cost, last_time
            current, cost, now = reader.snapshot(), cost_now(), time.monotonic()
            base_cost, base_time = (first_cost, first_time) if cumulative else (last_cost,
                                                                                last_time)
            shown_cost = None if cost is None or base_cost is None else cost - base_cost
            self.show(reader, self.tool.delta(current, start if cumulative else previous), probe,
                      shown_cost, stats.problem if stats else None, now - base_time)
            previous, last_cost, last_time = current, cost, now

        try:
            run_intervals(self.interval, self.count, tick,
                          on_start=lambda: self.announce(reader.program,
                                                          reader.counted))
        finally:
            if stats:
                stats.close()


def print_ebpf(tool: Tool, opts, mode: str) -> None:
    """The exact program text and flags the tool would load: found by really
    loading it where this process may (then detached at once), else the
    plan's first candidate, said to be unchecked."""

    # the loader (headers, tempfiles) only where a program is loaded: --help starts without it.
    from .loader import bpf_source, unchecked_cflags

    cannot_load = None
    if privileges.missing_privilege(os.geteuid(),
                                privileges.parse_capeff(Path("/proc/self/status").read_text())):
        cannot_load = "loading needs root"
    elif not privileges.bcc_importable():
        cannot_load = "the bcc module is not installed"
    if cannot_load:
        candidate, flags = unchecked_cflags(tool.plan(opts), tool.cflags(opts), mode)
        lines = [f"// cflags: {' '.join(flags)}",
                 f"// probe: {candidate.label} (not checked against this kernel: "
                 f"{cannot_load}; optional features left out)"]
        text = bpf_source(tool.name)
    else:
        with tool.open(opts, mode) as reader:
            program = reader.program
            lines = [f"// cflags: {' '.join(program.cflags)}",
                     f"// probe: {program.candidate.label} (attached on this kernel)"]
            if program.structs:
                lines.append(f"// structs: {program.structs}")
            lines += [f"// without {name}: {problem}"
                      for name, problem in program.missing_features.items()]
            text = program.text
    click.echo("\n".join(lines))
    click.echo(text)
