"""biolatency: the tool's spec (pytools.tool.Tool) and the reader that loads bpf/biolatency.c."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Optional

import click

from ...hist import SLOTS, UNITS, Log2Hist
from ...keyed_hists import EXPORTER_UNIT
from ...names import DeviceNames
from ...options import device_option, histograms_option, top_option, unit_options
from ...tool import Names, Tool, View
from ..base import Reader, load
from .metrics import biolatency_families
from .output import BY_CHOICES, biolatency_json, biolatency_text, grouping
from .plan import ORDER_REASON, UNTIMED, BioLatencyOptions, cflags_of, op_name, plan_of
from .snapshot import BioSnapshot, delta


class BioLatencyReader(Reader):
    """Loads bpf/biolatency.c and reads its histograms into BioSnapshots."""

    def __init__(self, options: Optional[BioLatencyOptions] = None, mode: str = "auto",
                 **fields):
        """`fields`: the options' fields, where no `options` are given."""
        options = options or BioLatencyOptions(**fields)
        self.unit_name, self.unit_ns = options.unit, UNITS.get(options.unit, 1)
        self.by_device, self.by_op = options.by_device, options.by_op
        self.program = load(TOOL, options, mode)
        self.names = Names(devices=DeviceNames())

    def snapshot(self) -> BioSnapshot:
        hists = {}
        for k, per_cpu in self.program.table("biolatency_hist").items():
            slots = tuple(sum(h.slots[i] for h in per_cpu) for i in range(SLOTS))
            if self.by_device or self.by_op:        # else a one-entry array
                key = (k.dev if self.by_device else None,
                       op_name(k.op) if self.by_op else None)
            else:
                key = (None, None)
            if any(slots):
                hists[key] = Log2Hist(slots, self.unit_ns, sum(h.sum_ns for h in per_cpu),
                                      self.unit_name)
        untimed = self.program.table("biolatency_untimed")
        counts = {name: sum(untimed[untimed.Key(i)]) for i, name in enumerate(UNTIMED)}
        return BioSnapshot(hists, counts["unmatched"], counts["flush"], counts["map_full"],
                           time.monotonic())


class BioLatencyTool(Tool):
    name = "biolatency"
    order = 40
    command = "biolatency"
    summary = "log2 histograms of block I/O latency, per disk and operation"
    description = """Histogram of block I/O latency: from a request's issue to the
    driver (or its queueing, with -Q) to its completion, per disk (-D) and
    per operation (-F: read, write, flush, discard, sync-...).

    Every INTERVAL seconds (default 5), COUNT times or until Ctrl-C, print a
    log2 histogram and a summary: count, exact average, p50/p90/p99 estimated
    from the slots. Completions whose start was not seen and flushes (no
    sector to match) are counted, not guessed. Block I/O completes outside
    the task that issued it, so there is no per-process or per-pod
    attribution here: use vfsread-latency for that.
    """
    examples = """\b
Examples:
  biolatency                  # histogram in microseconds every 5 s
  biolatency 1 10             # every second, ten times
  biolatency -m               # in milliseconds
  biolatency --by disk        # per disk (also -D)
  biolatency --by op          # per operation: read, sync-write... (also -F)
  biolatency --by disk,op     # per disk and operation (also -D -F)
  biolatency -Q               # include the time queued in the scheduler
  biolatency -d nvme0n1       # one disk (name, /dev path or 259:0)
  biolatency --json 1 3       # one JSON object per interval
"""
    options = (
        unit_options,
        click.option("--by", type=click.Choice(BY_CHOICES),
                     help="Per disk, per operation (read, write, flush, discard, sync-...) "
                          "or both."),
        click.option("-D", "--disks", "by_device", is_flag=True, help="Same as --by disk."),
        click.option("-F", "--flags", "by_op", is_flag=True, help="Same as --by op."),
        top_option("Groups shown with --by, in disk order."),
        histograms_option(),
        click.option("-Q", "--queued", is_flag=True,
                     help="Include the time requests wait in the I/O scheduler."),
        device_option("Only this disk (nvme0n1, /dev/vda or 254:0)."),
    )

    order_reason = ORDER_REASON
    Options = BioLatencyOptions
    plan = staticmethod(plan_of)
    cflags = staticmethod(cflags_of)
    delta = staticmethod(delta)
    families = staticmethod(biolatency_families)

    def options_of(self, params):
        by_device, by_op = grouping(params)
        return replace(super().options_of(params), by_device=by_device, by_op=by_op)

    def open(self, options, mode="auto"):
        return BioLatencyReader(options, mode)

    def text(self, shown, view: View) -> str:
        return biolatency_text(shown, view.label, shown.elapsed, view.opts.unit,
                               view.names.devices, view.clock, view.opts.top,
                               view.opts.histograms)

    def json(self, shown, view: View) -> dict:
        by = ",".join(["disk"] * view.opts.by_device + ["op"] * view.opts.by_op) or None
        return biolatency_json(shown, view.probe, shown.elapsed, view.names.devices,
                               view.when, view.opts.unit, by, view.opts.top)

    def exporter_open(self, opts, mode="auto"):
        return BioLatencyReader(BioLatencyOptions(EXPORTER_UNIT, by_device=True, by_op=True),
                                mode)


TOOL = BioLatencyTool()
