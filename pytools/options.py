"""Command-line options every tool shares, declared once: the
`[interval [count]]` positionals and the filters whose checks are the same
for every tool. Pure click; no tool is named here."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import click

from .names import TASK_COMM_LEN, block_device_exists, dev_text, parse_device
from .workloads import find_cgroup2
from .events import DEFAULT_PAGES, PAGES_LIMIT

# Intervals: finite, positive, at most a day (a longer one is a typo, and
# deadlines past that overflow the sleep a run loop can take).
MIN_INTERVAL = 0.01
MAX_INTERVAL = 86400.0
# The kernel's PID_MAX_LIMIT (include/linux/threads.h): no pid is larger.
PID_MAX_LIMIT = 1 << 22


def warn(ctx: click.Context, message: str) -> None:
    click.echo(f"{ctx.command_path}: warning: {message}", err=True)


# Units a duration may carry; a bare number is in the option's own unit.
DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                  "h": 3600.0}


def parse_duration(text: str, bare_unit: float = 1.0) -> float:
    """Seconds in `text`: 1.5, 250ms, 3us, 2m (a bare number is in units of
    `bare_unit` seconds); ValueError when it is not a duration."""
    text = str(text).strip()
    for suffix in sorted(DURATION_UNITS, key=len, reverse=True):
        if text.endswith(suffix) and text[:-len(suffix)].strip():
            number, scale = text[:-len(suffix)].strip(), DURATION_UNITS[suffix]
            break
    else:
        number, scale = text, bare_unit
    value = float(number)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{text!r} is not a duration")
    return value * scale


class Interval(click.ParamType):
    name = "interval"

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            seconds = value
        else:
            try:
                seconds = parse_duration(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a duration (seconds, or 500ms, 2m)", param, ctx)
        if not math.isfinite(seconds) or not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
            self.fail(f"{value!r}: an interval is {MIN_INTERVAL:g} to {MAX_INTERVAL:g} "
                      f"seconds (one day)", param, ctx)
        return seconds


class Duration(click.ParamType):
    """A duration option, in nanoseconds: with a unit (1ms, 250us, 2s) or a
    bare number in the unit `bare_unit` names (the tool's display unit)."""
    name = "duration"

    def __init__(self, bare_unit_of: Callable = lambda ctx: 1e-6):
        self.bare_unit_of = bare_unit_of

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            seconds = parse_duration(value, self.bare_unit_of(ctx))
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a duration (1ms, 250us, 2s, or a number in the "
                      "display unit)", param, ctx)
        if seconds > MAX_INTERVAL:
            self.fail(f"{value!r}: at most {MAX_INTERVAL:g} seconds (one day)", param, ctx)
        return round(seconds * 1e9)


def display_unit(ctx) -> float:
    """Seconds per unit of the command's -u/-m/-n (a bare number's unit)."""
    unit = (ctx.params.get("unit") if ctx is not None else None) or "usecs"
    return {"nsecs": 1e-9, "usecs": 1e-6, "msecs": 1e-3}[unit]


def histograms_option() -> Callable:
    return click.option("--histograms", is_flag=True,
                        help="A histogram per group, where more than a few groups are "
                             "shown one line each (count, avg, p50, p99, max).")


def interval_arguments(default_interval: float) -> Callable:
    def decorate(func: Callable) -> Callable:
        func = click.argument("count", type=click.IntRange(min=1), required=False)(func)
        func = click.argument("interval", type=Interval(), default=default_interval,
                              required=False)(func)
        return func
    return decorate


def _pid_exists(ctx, param, pid: Optional[int]) -> Optional[int]:
    if pid is not None and not os.path.exists(f"/proc/{pid}"):
        warn(ctx, f"no process {pid} exists now; counting its events if it starts")
    return pid


def pid_option(help: str) -> Callable:
    return click.option("-p", "--pid", type=click.IntRange(1, PID_MAX_LIMIT),
                        callback=_pid_exists, help=help)


def _device(ctx, param, text: Optional[str]) -> Optional[int]:
    if text is None:
        return None
    try:
        dev = parse_device(text)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    if not block_device_exists(dev):
        warn(ctx, f"no block device {dev_text(dev)} exists now; counting it if it appears")
    return dev


def device_option(help: str) -> Callable:
    """-d/--device, given as vda, /dev/vda or major:minor; the value reaching
    the tool is the kernel's dev_t."""
    return click.option("-d", "--device", callback=_device, metavar="DISK", help=help)


@dataclass(frozen=True)
class CgroupFilter:
    """--cgroup: a cgroup v2 directory; its subtree is counted."""
    path: str          # relative to the cgroup2 mount, "/..."
    cgroup_id: int     # its directory's inode number: the kernel's cgroup id
    level: int         # its depth below the root (the root is 0)

    def cflags(self) -> list:
        return [f"-DFILTER_CGROUP_ID={self.cgroup_id}ULL", f"-DFILTER_CGROUP_LEVEL={self.level}"]


def resolve_cgroup(text: str, mount: Optional[str]) -> CgroupFilter:
    """A cgroup given as a path in the cgroup2 mount or relative to its
    root (/system.slice/cron.service); ValueError says what is wrong."""
    if mount is None:
        raise ValueError("needs cgroup v2, and this machine has no cgroup2 mount")
    if os.path.isabs(text) and text != "/" and os.path.isdir(text) and not \
            os.path.realpath(text).startswith(os.path.realpath(mount).rstrip("/") + "/"):
        raise ValueError(f"{text!r} is not a cgroup v2 directory (the cgroup2 mount is {mount})")
    full = os.path.realpath(text if text.startswith(mount.rstrip("/") + "/") or text == mount
                            else os.path.join(mount, text.lstrip("/")))
    root = os.path.realpath(mount)
    if not (full == root or full.startswith(root + "/")):
        raise ValueError(f"{text!r} is outside the cgroup2 mount {mount}")
    if not os.path.isdir(full):
        raise ValueError(f"{text!r}: no such cgroup (looked for {full})")
    if not os.path.exists(os.path.join(full, "cgroup.controllers")):
        raise ValueError(f"{text!r}: {full} is not a cgroup v2 directory")
    relative = full[len(root):] or "/"
    level = len([p for p in relative.split("/") if p])
    return CgroupFilter(relative, os.stat(full).st_ino, level)


def _cgroup(ctx, param, text: Optional[str]) -> Optional[CgroupFilter]:
    if text is None:
        return None
    try:
        return resolve_cgroup(text, find_cgroup2())
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def cgroup_option() -> Callable:
    return click.option("--cgroup", callback=_cgroup, metavar="PATH",
                        help="Only this cgroup v2 subtree (a path in the cgroup2 mount or "
                             "from its root), filtered in the kernel.")


def _comm(ctx, param, comm: Optional[str]) -> Optional[str]:
    """-c: 1 to 15 bytes, as the kernel keeps it: a longer name is cut to
    the 15 bytes the kernel compares, with a warning."""
    if comm is None:
        return None
    data = comm.encode()
    if not data:
        raise click.BadParameter("a process name is 1 to 15 bytes")
    if len(data) >= TASK_COMM_LEN:
        data = data[:TASK_COMM_LEN - 1]
        while True:     # do not cut a UTF-8 character in two
            try:
                comm = data.decode()
                break
            except UnicodeDecodeError:
                data = data[:-1]
        warn(ctx, f"the kernel keeps 15 bytes of a process name: matching {comm!r}")
    return comm


def comm_option(what: str) -> Callable:
    """-c/--comm, filtered in the kernel: `what` starts the help line."""
    return click.option("-c", "--comm", callback=_comm,
                        help=f"{what} (filtered in kernel; the kernel keeps 15 bytes of a "
                             "name, and a longer one is cut to those, with a warning).")


def max_keys_option(limit: int, default: int, beyond: str) -> Callable:
    """--max-keys: the bound of a tool's kernel map; `beyond` says what
    becomes of what does not fit."""
    return click.option("--max-keys", type=click.IntRange(1, limit), default=default,
                        show_default=True, help=f"Bound of the kernel map; {beyond}.")


def buffer_pages_option() -> Callable:
    """--buffer-pages (hidden): the event buffer's size, made small by the
    tests that make it lose events."""
    return click.option("--buffer-pages", type=click.IntRange(1, PAGES_LIMIT),
                        default=DEFAULT_PAGES, hidden=True,
                        help="Pages of the event buffer (a power of two): small to test "
                             "losses.")


def pod_labels_option(collector: str, metric: str) -> Callable:
    """The exporter's --<collector>-by none|pod: whether a latency
    collector's histogram carries the namespace and pod labels."""
    flag = collector.replace("_", "-")
    return click.option(f"--{flag}-by", f"{collector}_by", type=click.Choice(["none", "pod"]),
                        default="none", show_default=True,
                        help=f"Labels of {metric} (pod: namespace, pod).")


def top_option(help: str, default: int = 10) -> Callable:
    return click.option("--top", type=click.IntRange(min=1), default=default,
                        show_default=True, help=help)


def unit_options(func: Callable) -> Callable:
    """-u/-m/-n: the unit latencies are shown in."""
    for decorator in reversed([
        # eager: a duration option's bare number is in this unit, wherever it is
        click.option("-u", "--usecs", "unit", flag_value="usecs", default=True, is_eager=True,
                     help="Show microseconds (default)."),
        click.option("-m", "--msecs", "unit", flag_value="msecs", is_eager=True,
                     help="Show milliseconds."),
        click.option("-n", "--nsecs", "unit", flag_value="nsecs", is_eager=True,
                     help="Show nanoseconds."),
    ]):
        func = decorator(func)
    return func


# ------------------------------------------------------------ one vocabulary
# Another spelling of an option: a shortcut (-P for --by pid) or an old
# spelling kept for one release, hidden, with a one-line warning. Each is
# its own click parameter ("alias_<n>"); resolve_aliases() folds it into
# the option it stands for.
_ALIASES: dict = {}


def alias_option(*decls: str, to: str, use: Optional[str] = None, **kwargs) -> Callable:
    """`decls` set option `to`; use=None: a documented shortcut, else a
    deprecated spelling whose warning says to write `use` instead."""
    dest = f"alias_{len(_ALIASES)}"
    _ALIASES[dest] = (to, "/".join(decls), use)
    kwargs.setdefault("default", None)
    return click.option(*decls, dest, hidden=use is not None, **kwargs)


def deprecation(spelling: str, use: str) -> str:
    return f"{spelling} is deprecated and goes in the next release: use {use}"


def resolve_aliases(opts: dict, given: Callable[[str], bool] = lambda name: False,
                    warn_line: Callable[[str], None] = lambda line: None) -> dict:
    """`opts` with each alias's value moved to the option it stands for.
    given(name): whether that option was on the command line (then an
    alias saying otherwise is a usage error)."""
    out = {k: v for k, v in opts.items() if k not in _ALIASES}
    set_by: Dict[str, Tuple[str, object]] = {}     # option -> (the alias that set it, value)
    for key, value in opts.items():
        if key not in _ALIASES or value is None:
            continue
        to, spelling, use = _ALIASES[key]
        if use:
            warn_line(deprecation(spelling, use))
        if (given(to) and out.get(to) != value) or \
                (to in set_by and set_by[to][1] != value):
            other = set_by[to][0] if to in set_by else f"--{to.replace('_', '-')}"
            raise click.UsageError(f"{other} and {spelling} disagree: give one")
        set_by[to] = (spelling, value)
        out[to] = value
    return out


def rewrite_legacy_values(args: list, legacy: dict) -> Tuple[list, List[str]]:
    """Options that used to take an optional value (`-P pod`) and are flags
    now: `-P pod` becomes `--by pod`, with a deprecation line; `-P` before
    anything else stays the flag (so `-P 1 3` keeps its interval)."""
    out: list = []
    lines: List[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return out + args[i:], lines
        if arg in legacy and i + 1 < len(args) and args[i + 1] in legacy[arg]:
            out += ["--by", args[i + 1]]
            lines.append(deprecation(f"{arg} {args[i + 1]}", f"--by {args[i + 1]}"))
            i += 2
            continue
        out.append(arg)
        i += 1
    return out, lines
