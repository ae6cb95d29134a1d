"""Command-line options every tool shares, declared once: the
`[interval [count]]` positionals and the filters whose checks are the same
for every tool. Pure click; no tool is named here."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Optional

import click

from .names import TASK_COMM_LEN, block_device_exists, dev_text, parse_device

# Intervals: finite, positive, at most a day (a longer one is a typo, and
# deadlines past that overflow the sleep a run loop can take).
MIN_INTERVAL = 0.01
MAX_INTERVAL = 86400.0
# The kernel's PID_MAX_LIMIT (include/linux/threads.h): no pid is larger.
PID_MAX_LIMIT = 1 << 22


def warn(ctx: click.Context, message: str) -> None:
    click.echo(f"{ctx.command_path}: warning: {message}", err=True)


class Interval(click.ParamType):
    name = "interval"

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            seconds = value
        else:
            try:
                seconds = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
            self.fail(f"{value!r}: an interval is {MIN_INTERVAL:g} to {MAX_INTERVAL:g} "
                      f"seconds (one day)", param, ctx)
        return seconds


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
    from .workloads import find_cgroup2
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


def top_option(help: str, default: int = 10) -> Callable:
    return click.option("--top", type=click.IntRange(min=1), default=default,
                        show_default=True, help=help)


def unit_options(func: Callable) -> Callable:
    """-u/-m/-n: the unit latencies are shown in."""
    for decorator in reversed([
        click.option("-u", "--usecs", "unit", flag_value="usecs", default=True,
                     help="Show microseconds (default)."),
        click.option("-m", "--msecs", "unit", flag_value="msecs", help="Show milliseconds."),
        click.option("-n", "--nsecs", "unit", flag_value="nsecs", help="Show nanoseconds."),
    ]):
        func = decorator(func)
    return func
