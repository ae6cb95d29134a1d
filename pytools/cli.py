"""Command-line front ends: one click command per tool, each also a console
script. Commands parse arguments, start a tool, and loop; all output goes
through pytools.render."""

from __future__ import annotations

import functools
import json
import sys
from typing import Callable

import click

from . import render
from .errors import ToolError
from .exporter_config import COLLECTORS, DEFAULT_MAX_SERIES, DEFAULT_PORT
from .runloop import run_intervals, sigterm_as_interrupt

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 80}


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


def interval_arguments(default_interval: float) -> Callable:
    def decorate(func: Callable) -> Callable:
        func = click.argument("count", type=click.IntRange(min=1), required=False)(func)
        func = click.argument("interval", type=click.FloatRange(min=0.01),
                              default=default_interval, required=False)(func)
        return func
    return decorate


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


def print_ebpf(source_name: str, flags) -> None:
    from .loader import bpf_source  # no bcc needed: it only reads package data
    click.echo(f"// cflags: {' '.join(flags)}")
    click.echo(bpf_source(source_name))


def announce(program, verbose: bool) -> None:
    """The bcc-style banner on stderr, and with -v the probe choice."""
    if verbose:
        for attempt in program.attempts:
            status = "attached" if attempt.error is None else f"failed: {attempt.error}"
            click.echo(f"probe {attempt.mode}: {attempt.label}: {status}", err=True)
        click.echo(f"hooks: {', '.join(h.describe() for h in program.hooks)}", err=True)
    note = f" ({program.candidate.note})" if program.candidate.note else ""
    click.echo(f"Tracing {program.candidate.label}{note}... Hit Ctrl-C to end.", err=True)


def report_intervals(tool, delta: Callable, show: Callable, interval: float,
                     count, verbose: bool, cumulative: bool = False) -> None:
    """The loop every tool shares: snapshot now, then at each interval show
    the difference from the previous snapshot (or from the first one, when
    cumulative), including the partial interval Ctrl-C or SIGTERM cuts."""
    start = previous = tool.snapshot()

    def tick():
        nonlocal previous
        current = tool.snapshot()
        show(delta(current, start if cumulative else previous))
        previous = current

    run_intervals(interval, count, tick, on_start=lambda: announce(tool.program, verbose))


def emit(text_or_obj) -> None:
    if isinstance(text_or_obj, dict):
        click.echo(json.dumps(text_or_obj, sort_keys=False))
    else:
        click.echo(text_or_obj)
    sys.stdout.flush()


# -------------------------------------------------------------------- execve

EXECVE_EXAMPLES = """\b
Examples:
  execve-counter              # top 10 executed files every 5 seconds
  execve-counter 1 10         # every second, ten times
  execve-counter --by comm    # who calls exec (the caller's name)
  execve-counter --by uid -T  # per user, with a time on each interval
  execve-counter --failed     # also count execs that failed (ENOENT, EACCES)
  execve-counter -p 1234      # execs made by process 1234 only
  execve-counter --json 1 5   # one JSON object per interval
  execve-counter --cumulative # totals since start instead of per interval
"""


@click.command("execve-counter", context_settings=CONTEXT, epilog=EXECVE_EXAMPLES)
@interval_arguments(5.0)
@click.option("-b", "--by", type=click.Choice(["filename", "comm", "uid", "cgroup"]),
              default="filename", show_default=True, help="What to count execs by.")
@click.option("-p", "--pid", type=click.IntRange(min=1), help="Only execs by this process.")
@click.option("--uid", type=click.IntRange(min=0), help="Only execs by this user id.")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True,
              help="Rows to show; the rest are summed on one line.")
@click.option("--failed", is_flag=True, help="Also count execs that returned an error.")
@click.option("--cumulative", is_flag=True, help="Show totals since start, not per interval.")
@click.option("--max-keys", type=click.IntRange(min=1), default=10240, show_default=True,
              help="Bound of the kernel map; calls beyond it are counted as not keyed.")
@click.option("--probe", type=click.Choice(["auto", "tracepoint"]), default="auto",
              show_default=True, help="Force a probe mode.")
@common_output_options
@fails_cleanly
def execve_counter(interval, count, by, pid, uid, top, failed, cumulative, max_keys,
                   probe, timestamp, as_json, verbose, ebpf):
    """Count execve() and execveat() calls, by file name, caller, user or cgroup.

    Every INTERVAL seconds (default 5), COUNT times or until Ctrl-C, print the
    most frequent keys with their count and rate per second, then the total.
    """
    from .tools import execve

    if ebpf:
        print_ebpf(execve.ExecveCounter.source,
                   execve.cflags(by, pid, uid, max_keys, failed) + ["-DPROBE_TRACEPOINT"])
        return
    with sigterm_as_interrupt(), execve.ExecveCounter(
            by=by, pid=pid, uid=uid, max_keys=max_keys, count_failed=failed, mode=probe) as tool:
        probe_info = tool.program.probe_info()

        def show(shown):
            if as_json:
                emit(render.execve_json(shown, top, shown.elapsed, probe_info, render.iso_time()))
            else:
                emit(render.execve_table(shown, top, shown.elapsed,
                                         render.clock_time() if timestamp else None) + "\n")

        report_intervals(tool, execve.delta, show, interval, count, verbose, cumulative)


# ------------------------------------------------------------------ vfsread

VFSREAD_EXAMPLES = """\b
Examples:
  vfsread-latency             # histogram in microseconds every 5 s
  vfsread-latency 1 5         # every second, five times
  vfsread-latency -m          # in milliseconds (-n for nanoseconds)
  vfsread-latency -p 1234     # reads by process 1234 only
  vfsread-latency -c postgres # reads by processes named postgres
  vfsread-latency -P --top 5  # one histogram per process, 5 busiest
  vfsread-latency --min-latency 1000   # ignore reads under 1000 us
  vfsread-latency --json 1 3  # one JSON object per interval
  vfsread-latency --probe tracepoint   # force the per-syscall tracepoints
"""


@click.command("vfsread-latency", context_settings=CONTEXT, epilog=VFSREAD_EXAMPLES)
@interval_arguments(5.0)
@click.option("-u", "--usecs", "unit", flag_value="usecs", default=True,
              help="Show microseconds (default).")
@click.option("-m", "--msecs", "unit", flag_value="msecs", help="Show milliseconds.")
@click.option("-n", "--nsecs", "unit", flag_value="nsecs", help="Show nanoseconds.")
@click.option("-p", "--pid", type=click.IntRange(min=1), help="Only reads by this process.")
@click.option("-c", "--comm", help="Only reads by processes with this name (filtered in kernel).")
@click.option("-P", "--per-pid", "per_process", flag_value="pid",
              help="One histogram per process (pid).")
@click.option("--per-comm", "per_process", flag_value="comm",
              help="One histogram per process name.")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True,
              help="Processes shown with -P/--per-comm, busiest first.")
@click.option("--min-latency", type=click.IntRange(min=0), default=0,
              help="Ignore reads faster than this, in the display unit.")
@click.option("--probe",
              type=click.Choice(["auto", "kprobe", "fentry", "raw_tracepoint", "tracepoint"]),
              default="auto", show_default=True,
              help="Force a probe mode: kprobe/fentry time vfs_read itself; "
                   "raw_tracepoint and tracepoint time the read syscalls.")
@common_output_options
@fails_cleanly
def vfsread_latency(interval, count, unit, pid, comm, per_process, top, min_latency, probe,
                    timestamp, as_json, verbose, ebpf):
    """Histogram of read latency: vfs_read via kprobe or fentry, else the
    read syscalls (read, pread64, readv, preadv, preadv2) via the raw
    syscall tracepoints or the per-syscall tracepoints.

    Every INTERVAL seconds (default 5), COUNT times or until Ctrl-C, print a
    log2 histogram and a summary: count, exact average, and p50/p90/p99
    estimated from the histogram's slots.
    """
    from .hist import UNITS
    from .tools import vfsread

    unit_ns = UNITS[unit]
    min_ns = min_latency * unit_ns or None
    if comm is not None and (not comm or len(comm.encode()) > 15):
        raise click.BadParameter("a process name is 1 to 15 bytes", param_hint="-c/--comm")
    if ebpf:
        print_ebpf(vfsread.VfsReadLatency.source,
                   vfsread.cflags(unit_ns, pid, comm, min_ns, per_process, pid_max=32768))
        return
    with sigterm_as_interrupt(), vfsread.VfsReadLatency(
            unit=unit, pid=pid, comm=comm, min_latency_ns=min_ns, per_process=per_process,
            mode=probe) as tool:
        probe_info = tool.program.probe_info()
        label = tool.program.candidate.label

        def show(shown):
            if as_json:
                emit(render.latency_json(shown, probe_info, shown.elapsed, top, render.iso_time()))
            else:
                emit(render.latency_text(shown, label, shown.elapsed, top,
                                         render.clock_time() if timestamp else None) + "\n")

        report_intervals(tool, vfsread.delta, show, interval, count, verbose)


# ---------------------------------------------------------------- readahead

READAHEAD_EXAMPLES = """\b
Examples:
  readahead-stats             # readahead per kind, device, file every 5 s
  readahead-stats 1 3         # every second, three times
  readahead-stats -d vda      # one block device (name, /dev path or 254:0)
  readahead-stats -p 1234     # readahead done by process 1234
  readahead-stats --trace     # one line per readahead event
  readahead-stats --json 1 5  # one JSON object per interval
  readahead-stats --no-efficiency  # skip the per-page hooks
"""


def parse_device(text: str) -> int:
    """A device given as 'vda', '/dev/vda' or 'major:minor', as a kernel dev_t."""
    import os
    import stat
    from .tools.readahead import kernel_dev
    if ":" in text:
        major, _, minor = text.partition(":")
        if major.isdigit() and minor.isdigit():
            return kernel_dev(int(major), int(minor))
        raise click.BadParameter(f"{text!r} is not major:minor", param_hint="-d/--device")
    path = text if text.startswith("/") else f"/dev/{text}"
    try:
        st = os.stat(path)
    except OSError:
        raise click.BadParameter(f"no device {path}", param_hint="-d/--device") from None
    if not stat.S_ISBLK(st.st_mode):
        raise click.BadParameter(f"{path} is not a block device", param_hint="-d/--device")
    return kernel_dev(os.major(st.st_rdev), os.minor(st.st_rdev))


@click.command("readahead-stats", context_settings=CONTEXT, epilog=READAHEAD_EXAMPLES)
@interval_arguments(5.0)
@click.option("-d", "--device", help="Only this block device (vda, /dev/vda or 254:0).")
@click.option("-p", "--pid", type=click.IntRange(min=1), help="Only readahead by this process.")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True,
              help="Files shown, most pages first.")
@click.option("--trace", is_flag=True, help="Print each readahead event instead of totals.")
@click.option("--efficiency/--no-efficiency", default=True, show_default=True,
              help="Follow each page read ahead to its first use or its eviction "
                   "(costs a map lookup per buffered read and page fault).")
@click.option("--probe", type=click.Choice(["auto", "tracepoint", "fentry", "kprobe"]),
              default="auto", show_default=True, help="Force a probe mode.")
@common_output_options
@fails_cleanly
def readahead_stats(interval, count, device, pid, top, trace, efficiency, probe, timestamp,
                    as_json, verbose, ebpf):
    """Show page cache readahead: sync and async requests, the windows the
    kernel submitted and their pages, per device and per file, with a log2
    histogram of window sizes, and its efficiency: of the pages read ahead,
    how many were used, how many left the cache unused.

    Uses the readahead tracepoints (Linux 6.18+) where they exist, else
    fentry, else kprobes on the readahead functions of this kernel. Files are named by a
    path where some process has them open, else as major:minor:inode.
    Efficiency needs the filemap tracepoints (mm_filemap_get_pages and
    others), else fexit on filemap_read, filemap_fault and filemap_map_pages;
    where the kernel has neither, the output says what is missing.
    """
    from .tools import readahead

    dev = parse_device(device) if device else None
    if ebpf:
        import os
        print_ebpf(readahead.Readahead.source,
                   readahead.cflags(os.uname().release, dev, pid, trace) + ["-DPROBE_TRACEPOINT"]
                   + (["-DEFFICIENCY"] if efficiency and not trace else []))
        return
    names = readahead.FileNames()
    with sigterm_as_interrupt(), readahead.Readahead(dev=dev, pid=pid, trace=trace, mode=probe,
                                                     efficiency=efficiency and not trace) as tool:
        probe_info = tool.program.probe_info()
        label = tool.program.candidate.label
        if trace:
            run_trace(tool, interval, count, as_json, readahead.device_name)
            return

        def show(shown):
            if as_json:
                emit(render.readahead_json(shown, probe_info, shown.elapsed, top,
                                           readahead.device_name, names, render.iso_time(),
                                           tool.efficiency_problem))
            else:
                emit(render.readahead_text(shown, label, shown.elapsed, top,
                                           readahead.device_name, names,
                                           render.clock_time() if timestamp else None,
                                           tool.efficiency_problem) + "\n")

        report_intervals(tool, readahead.delta, show, interval, count, verbose)


def run_trace(tool, interval, count, as_json, device_name):
    """--trace: events as they come, for interval*count seconds or until Ctrl-C."""
    import time
    lost = [0]

    def on_event(event):
        if as_json:
            emit(event)
        else:
            emit(render.readahead_event_line(event, device_name))

    def on_lost(n):
        lost[0] += n

    tool.open_trace(on_event, on_lost)
    deadline = time.monotonic() + interval * count if count else None
    try:   # from the banner on, Ctrl-C ends the trace cleanly
        announce(tool.program, False)
        if not as_json:
            emit(render.READAHEAD_EVENT_HEADER)
        while deadline is None or time.monotonic() < deadline:
            tool.poll(100)
        tool.poll(0)
    except KeyboardInterrupt:
        pass
    if lost[0]:
        click.echo(f"{lost[0]} events lost: the perf buffer was full", err=True)


# ------------------------------------------------------------------ exporter


EXPORTER_EXAMPLES = """\b
Examples:
  bpf-exporter                              # all collectors on :19435
  bpf-exporter --listen 127.0.0.1:9999      # loopback only, another port
  bpf-exporter --collectors execve,vfs_read # leave readahead out
  bpf-exporter --execve-by comm             # exec counts by caller name
  bpf-exporter --strict                     # exit if any collector fails
  bpf-exporter --probe vfs_read=kprobe      # force vfs_read's probe mode
  curl -s localhost:19435/metrics | grep ^vfs_read
"""


def _parsed_by(parser_name: str, keep_text: bool = False) -> Callable:
    """A click callback running pytools.server's `parser_name` on the value:
    its ValueError becomes a usage error. keep_text: check only, pass the
    text on."""
    def callback(ctx, param, value):
        from . import server
        try:
            parsed = getattr(server, parser_name)(value)
        except ValueError as e:
            raise click.BadParameter(str(e)) from None
        return value if keep_text else parsed
    return callback


@click.command("bpf-exporter", context_settings=CONTEXT, epilog=EXPORTER_EXAMPLES)
@click.option("--listen", default=f":{DEFAULT_PORT}", show_default=True,
              callback=_parsed_by("parse_listen", keep_text=True),
              metavar="ADDR:PORT",
              help="ADDR:PORT to serve on (:PORT for all addresses, [::1]:PORT for IPv6).")
@click.option("--collectors", default=",".join(COLLECTORS), show_default=True,
              callback=_parsed_by("parse_collectors"), help="Comma-separated collectors to load.")
@click.option("--execve-by", type=click.Choice(["filename", "comm", "uid", "cgroup"]),
              default="comm", show_default=True, help="Label of execve_total.")
@click.option("--max-series", type=click.IntRange(min=1), default=DEFAULT_MAX_SERIES,
              show_default=True,
              help="Label values per metric; the rest are summed into 'other'.")
@click.option("--probe", "probes", multiple=True, callback=_parsed_by("parse_probe_modes"),
              metavar="COLLECTOR=MODE",
              help="Force a collector's probe mode (auto, tracepoint, raw_tracepoint, "
                   "kprobe, fentry); "
                   "repeatable.")
@click.option("--strict", is_flag=True, help="Exit if any collector cannot attach.")
@click.option("-v", "--verbose", is_flag=True, help="Log each collector's probe choice.")
@fails_cleanly
def bpf_exporter(listen, collectors, execve_by, max_series, probes, strict, verbose):
    """Serve the tools' BPF maps as Prometheus metrics on /metrics.

    Programs are loaded once; maps are read at each scrape and never
    cleared, so counters only grow (a restart shows as a reset). Also
    serves / (a page linking to /metrics) and /healthz. SIGTERM or Ctrl-C
    detaches every program and exits 0.
    """
    import logging

    from .server import serve

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="bpf-exporter: %(levelname)s: %(message)s")
    serve(listen, collectors, execve_by, max_series, strict,
          announce=lambda line: click.echo(line, err=True), modes=probes)


# ---------------------------------------------------------------------- group

@click.group(context_settings=CONTEXT)
def main():
    """bpf-pytools: eBPF tracing tools on BCC."""


main.add_command(execve_counter)
main.add_command(vfsread_latency)
main.add_command(readahead_stats)
main.add_command(bpf_exporter)


@main.command("doctor", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor(as_json):
    """Check privileges, bcc, tracefs, headers and every tool's probes.

    Exits 0 only when every tool can run on this machine; each failing row
    says how to fix it.
    """
    from . import doctor as checks_module

    checks = checks_module.run()
    if as_json:
        emit({"ok": checks_module.passed(checks),
              "checks": [c.__dict__ for c in checks]})
    else:
        click.echo(checks_module.render(checks))
    sys.exit(0 if checks_module.passed(checks) else 1)
