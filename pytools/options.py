"""Command-line options every tool shares, declared once: the
`[interval [count]]` positionals and the filters whose checks are the same
for every tool. Pure click; no tool is named here."""

from __future__ import annotations

import math
import os
from typing import Callable, Optional

import click

from .names import block_device_exists, dev_text, parse_device

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
