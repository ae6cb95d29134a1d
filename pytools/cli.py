"""Command-line front ends, built from the list of tools (pytools.tools):
one click command per tool, each also a console script, plus bpf-exporter
and `pytools doctor`. Everything here is shared: the `[interval [count]]`
loop, the common options, --ebpf, the banner and the error handling."""

from __future__ import annotations

import functools
import json
import sys
from typing import Callable, Dict, Optional
import time
import os
from pathlib import Path
import logging

import click
from click.core import ParameterSource

from .errors import ToolError
from .exporter_config import DEFAULT_GONE_AFTER, DEFAULT_MAX_SERIES, DEFAULT_PORT
from .options import (cgroup_option, interval_arguments, resolve_aliases,
                      rewrite_legacy_values, warn)
from .runloop import run_intervals, sigterm_as_interrupt
from .selfcost import PERIOD_S, WINDOW_S
from .tool import Tool, View
from .tools import TOOLS
from .workloads import DEFAULT_POD_LOGS
from . import runstats
from .render import clock_time, iso_time
from . import privileges
from . import exporter_config

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 80}
COMMON = ("interval", "count", "probe", "timestamp", "as_json", "verbose", "ebpf", "cgroup")


def fails_cleanly(func: Callable) -> Callable:
    """Turn expected failures into one line on stderr and exit status 1;
    Ctrl-C while loading into exit 130; a closed stdout pipe into exit 0."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        name = click.get_current_context().command_path
        try:
            return func(*args, **kwargs)
        except ToolError as e:
            click.echo(f"{name}: error: {e}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            sys.exit(130)
        except BrokenPipeError:
            sys.stderr.close()  # nothing left to say; keep Python quiet at exit
            sys.exit(0)
    return wrapper


def common_output_options(func: Callable) -> Callable:
    for decorator in reversed([
        click.option("-T", "--timestamp", is_flag=True, help="Print a time with each interval."),
        click.option("--json", "as_json", is_flag=True,
                     help="One JSON object per interval on stdout."),
        click.option("-v", "--verbose", is_flag=True,
                     help="Say which probes attached and why others did not."),
        click.option("--ebpf", is_flag=True, hidden=True,
                     help="Print the BPF C program and its flags, then exit."),
    ]):
        func = decorator(func)
    return func


def print_version(ctx: click.Context, param, value) -> None:
    if not value or ctx.resilient_parsing:
        return
    # importlib.metadata, for --version only: the commands start without it.
    from .version import build_info, version_line
    click.echo(version_line(ctx.command_path, build_info()))
    ctx.exit()


version_option = click.option(
    "--version", is_flag=True, expose_value=False, is_eager=True, callback=print_version,
    help="Print the version (with BCC's, Python's and the kernel's) and exit.")


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
                    clock_time() if self.timestamp else None, self.interval, self.opts, reader,
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


class ToolCommand(click.Command):
    """A tool's command: old spellings that click cannot declare (an option
    whose value became optional) are rewritten before parsing, with their
    deprecation line on stderr."""

    def __init__(self, *args, legacy_values=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.legacy_values = legacy_values or {}

    def parse_args(self, ctx, args):
        args, lines = rewrite_legacy_values(list(args), self.legacy_values)
        for line in lines:
            warn(ctx, line)
        return super().parse_args(ctx, args)


def make_command(tool: Tool) -> click.Command:
    def callback(interval, count, probe, timestamp, as_json, verbose, ebpf, cgroup, **opts):
        # the loader (headers, tempfiles) only where a program is loaded: --help starts without it.
        from .loader import shared_cflags
        ctx = click.get_current_context()
        opts = tool.options_of(resolve_aliases(
            opts, lambda name: ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE,
            lambda line: warn(ctx, line)))
        with shared_cflags(cgroup.cflags() if cgroup else ()):
            if ebpf:
                print_ebpf(tool, opts, probe)
                return
            with sigterm_as_interrupt(), tool.open(opts, probe) as reader:
                tool.run(reader, Session(tool, opts, interval, count, as_json, timestamp,
                                         verbose))

    func = fails_cleanly(callback)
    func = common_output_options(func)
    func = cgroup_option()(func)
    func = version_option(func)
    func = click.option("--probe", type=click.Choice(["auto"] + tool.modes()), default="auto",
                        show_default=True, help="Force a probe mode.")(func)
    for option in reversed(tool.options):
        func = option(func)
    func = interval_arguments(tool.default_interval)(func)
    return click.command(tool.command, cls=ToolCommand, context_settings=CONTEXT,
                         help=tool.description, short_help=tool.summary, epilog=tool.examples,
                         legacy_values=tool.legacy_values)(func)


def tool_options(command: click.Command, args=()) -> dict:
    """The tool's own options as its command parses `args` (defaults for none)."""
    ctx = command.make_context(command.name, list(args))
    return resolve_aliases({k: v for k, v in ctx.params.items() if k not in COMMON})


COMMANDS: Dict[str, click.Command] = {tool.name: make_command(tool) for tool in TOOLS}
# Console scripts (pyproject.toml) name these: pytools.cli:<command with _>.
globals().update({tool.command.replace("-", "_"): COMMANDS[tool.name] for tool in TOOLS})


# ------------------------------------------------------------------ exporter

EXPORTER_EXAMPLES = """\b
Examples:
  bpf-exporter                              # default collectors on :19435
  bpf-exporter --listen 127.0.0.1:9999      # loopback only, another port
  bpf-exporter --collectors execve,vfs_read # only these two
  bpf-exporter --collectors runqlat --runqlat-by pod  # CPU waits by pod
  bpf-exporter --execve-by comm             # exec counts by caller name
  bpf-exporter --strict                     # exit if any collector fails
  bpf-exporter --probe vfs_read=kprobe      # force vfs_read's probe mode
  curl -s localhost:19435/metrics | grep ^vfs_read
"""


def _parsed_by(parser_name: str, keep_text: bool = False) -> Callable:
    """A click callback running pytools.exporter_config's `parser_name` on the value:
    its ValueError becomes a usage error. keep_text: check only, pass the
    text on."""
    def callback(ctx, param, value):
        try:
            parsed = getattr(exporter_config, parser_name)(value)
        except ValueError as e:
            raise click.BadParameter(str(e)) from None
        return value if keep_text else parsed
    return callback


def collector_options(params: dict, shared: Optional[dict] = None) -> Dict[str, dict]:
    """Each tool's exporter options ("<name>_<option>") as {name: {option: value}},
    with the options every collector shares (pod_logs, gone_after)."""
    return {tool.name: {**(shared or {}),
                        **{key[len(tool.name) + 1:]: value for key, value in params.items()
                           if key.startswith(tool.name + "_")}} for tool in TOOLS}


def exporter_command() -> click.Command:
    def callback(listen, collectors, max_series, probes, strict, verbose, read_timeout,
                 max_connections, web_config, pod_logs, gone_after, self_cost, **params):

        # the exporter's server only for bpf-exporter: the commands start without it.
        from .httpd import Limits
        from .server import serve

        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                            format="bpf-exporter: %(levelname)s: %(message)s")
        serve(listen, collectors, max_series, strict,
              announce=lambda line: click.echo(line, err=True), modes=probes,
              options=collector_options(params, {"pod_logs": pod_logs,
                                                 "gone_after": gone_after}),
              limits=Limits(read_timeout=read_timeout, max_connections=max_connections),
              web_config=web_config, self_cost=self_cost)

    func = fails_cleanly(callback)
    for option in reversed([
        click.option("--listen", default=f":{DEFAULT_PORT}", show_default=True,
                     callback=_parsed_by("parse_listen", keep_text=True), metavar="ADDR:PORT",
                     help="ADDR:PORT to serve on (:PORT for all addresses, [::1]:PORT "
                          "for IPv6)."),
        click.option("--web.config.file", "web_config", metavar="FILE",
                     help="TLS and basic auth, in Prometheus exporter-toolkit's format "
                          "(as node_exporter); reread on SIGHUP."),
        click.option("--collectors",
                     default=",".join(t.name for t in TOOLS if t.exporter_default),
                     show_default=True, callback=_parsed_by("parse_collectors"),
                     help="Comma-separated collectors to load (also: "
                          + ", ".join(t.name for t in TOOLS if not t.exporter_default)
                          + ", opt-in for its cost to the node)."),
        *[option for tool in TOOLS for option in tool.exporter_options],
        click.option("--pod-logs", default=DEFAULT_POD_LOGS, show_default=True, metavar="DIR",
                     help="Where the kubelet's pods/ and containers/ log directories are "
                          "(pod and container names)."),
        click.option("--gone-after", type=click.FloatRange(1, 86400), default=DEFAULT_GONE_AFTER,
                     show_default=True, metavar="SECONDS",
                     help="Drop a gone pod's series (and its map entries) once unchanged "
                          "this long."),
        click.option("--max-series", type=click.IntRange(min=1), default=DEFAULT_MAX_SERIES,
                     show_default=True,
                     help="Label values per metric; the rest are summed into '~other'."),
        click.option("--probe", "probes", multiple=True,
                     callback=_parsed_by("parse_probe_modes"), metavar="COLLECTOR=MODE",
                     help="Force a collector's probe mode (auto or one its tool offers); "
                          "repeatable."),
        click.option("--strict", is_flag=True, help="Exit if any collector cannot attach."),
        click.option("--self-cost", type=click.Choice(["sampled", "off"]), default="sampled",
                     show_default=True,
                     help="The programs' CPU (bpf_exporter_program_*): estimated from the "
                          f"kernel's BPF statistics turned on {WINDOW_S:g} s in every "
                          f"{PERIOD_S:g} s (while on, "
                          "every BPF program on the node pays two clock reads per run; "
                          "exact, and never toggled, where kernel.bpf_stats_enabled=1), or "
                          "off: statistics never turned on, no such series."),
        click.option("--read-timeout", type=click.FloatRange(0.1, 60), default=5.0,
                     show_default=True, metavar="SECONDS",
                     help="Close a connection whose request has not fully arrived, or "
                          "that sat idle, this long."),
        click.option("--max-connections", type=click.IntRange(1, 65536), default=512,
                     show_default=True,
                     help="Open connections at most; a new one closes the oldest "
                          "that is still waiting for its request."),
        click.option("-v", "--verbose", is_flag=True, help="Log each collector's probe choice."),
        version_option,
    ]):
        func = option(func)
    return click.command("bpf-exporter", context_settings=CONTEXT, epilog=EXPORTER_EXAMPLES,
                         short_help="the tools' maps as Prometheus metrics on /metrics",
                         help="""Serve the tools' BPF maps as Prometheus metrics on /metrics.

    Programs are loaded once; maps are read at each scrape and never
    cleared, so counters only grow (a restart shows as a reset). Also
    serves / (a page linking to /metrics) and /healthz, which stays open
    when --web.config.file asks for passwords. SIGHUP rereads the web
    config; SIGTERM or Ctrl-C detaches every program and exits 0.
    """)(func)


bpf_exporter = exporter_command()


# ---------------------------------------------------------------------- group

@click.group(context_settings=CONTEXT)
@version_option
def main():
    """bpf-pytools: eBPF tracing tools on BCC."""


for _command in COMMANDS.values():
    main.add_command(_command)
main.add_command(bpf_exporter)


@main.command("doctor", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True,
              help="Print the checks as JSON (every detail, as with -v).")
@click.option("-v", "--verbose", is_flag=True,
              help="Also the headers each tool compiled against and why its probe modes "
                   "are tried in their order.")
def doctor(as_json, verbose):
    """Check privileges, bcc, tracefs, headers and every tool's probes.

    Exits 0 only when every tool can run on this machine; each failing row
    says how to fix it.
    """
    # doctor's checks (headers, tempfiles) for doctor only: the commands start without them.
    from . import doctor as checks_module

    checks = checks_module.run(lambda tool: tool.options_of(tool_options(COMMANDS[tool.name])),
                               verbose or as_json)
    if as_json:
        emit({"ok": checks_module.passed(checks),
              "checks": [c.__dict__ for c in checks]})
    else:
        click.echo(checks_module.render(checks))
    sys.exit(0 if checks_module.passed(checks) else 1)
