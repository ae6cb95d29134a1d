"""Command-line front ends, built from the list of tools (pytools.tools):
one click command per tool, each also a console script, plus bpf-exporter
and `pytools doctor`. Everything here is shared: the `[interval [count]]`
arguments, the common options and the error handling; a command's run (its
loop, banner, output and --ebpf) is pytools.session's."""

from __future__ import annotations

import functools
import logging
import sys
from typing import Callable, Dict, Optional

import click
from click.core import ParameterSource

from .errors import ToolError
from .exporter_config import DEFAULT_GONE_AFTER, DEFAULT_MAX_SERIES, DEFAULT_PORT
from .options import (cgroup_option, interval_arguments, resolve_aliases,
                      rewrite_legacy_values, warn)
from . import exporter_config
from .runloop import sigterm_as_interrupt
from .selfcost import PERIOD_S, WINDOW_S
from .session import Session, emit, print_ebpf
from .tool import Tool
from .tools import TOOLS
from .workloads import DEFAULT_POD_LOGS

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
