"""biolatency: log2 histograms of block I/O latency, per disk and operation."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import click

from .. import cdefs, render
from ..deltas import diff
from ..hist import NATIVE, NS_PER_SECOND, SLOTS, UNITS, Log2Hist, slot_flags
from ..names import DeviceNames, dev_text
from ..options import device_option, histograms_option, top_option, unit_options
from ..probes import Candidate, Hook
from ..structs import Enumerator, Field
from ..kernel import kernel_version_code
from ..tool import Tool, View
from .base import Reader

OPS = ("read", "write", "flush", "discard", "other")   # the op codes, in this order
OP_SYNC = 8                                            # or'ed into the op: REQ_SYNC
UNTIMED = ("unmatched", "flush", "map_full")           # biolatency_untimed's indices
# What bpf/biolatency.c takes from here (pytools/cdefs.py): passed as -D flags.
SHARED = {**cdefs.enum("OP", OPS), "OP_SYNC": OP_SYNC, **cdefs.enum("UNTIMED", UNTIMED),
          "UNTIMED_COUNT": len(UNTIMED)}
DEFAULT_MAX_KEYS = 1024
# The exporter counts in microseconds, buckets up to slot 27 (~134 s), as
# vfs_read_latency_seconds does.
EXPORTER_UNIT = NATIVE     # slots on native histogram edges (hist.NATIVE)
EXPORTER_LAST_SLOT = 27

HistKey = Tuple[Optional[int], Optional[str]]    # (kernel dev or None, op or None)


def op_name(op: int) -> str:
    """The name of an op value from the kernel: 'read', 'sync-write'..."""
    base = OPS[op & 7] if (op & 7) < len(OPS) else "other"
    return f"sync-{base}" if op & OP_SYNC else base


ORDER_REASON = (
    "the raw block tracepoints first: no perf event in between, and the request "
    "itself to match issue and completion by; the ordinary block tracepoints "
    "otherwise. Both run only on block I/O.")


# What the raw tracepoints read of a request (bpf/biolatency.c's `// btf:`
# lines), from the kernel's BTF where the headers are not its own: its disk
# (request_queue.disk: 5.15+) and flags, the op codes, REQ_OP_BITS (the
# first flag bit, __REQ_FAILFAST_DEV) and the sync flag's bit.
FIELDS = (
    Field("RQ_MAJOR", "request->q->disk->major"),
    Field("RQ_MINOR", "request->q->disk->first_minor"),
    Field("RQ_FLAGS", "request->cmd_flags"),
    Enumerator("RQ_OP_READ", "REQ_OP_READ"),
    Enumerator("RQ_OP_WRITE", "REQ_OP_WRITE"),
    Enumerator("RQ_OP_FLUSH", "REQ_OP_FLUSH"),
    Enumerator("RQ_OP_DISCARD", "REQ_OP_DISCARD"),
    Enumerator("RQ_OP_BITS", "__REQ_FAILFAST_DEV"),
    Enumerator("RQ_SYNC_BIT", "__REQ_SYNC"),
)


def plan(queued: bool = False) -> List[Candidate]:
    """The raw block tracepoints first: they hand over the request itself
    (timed by its address, flushes included) and format no trace record;
    they read struct request, so they need this kernel's own headers or
    its BTF, and probe reads. Else the block tracepoints, matching a request by device
    and sector. Why no kprobe or fentry: see bpf/biolatency.c."""
    events = (["block_rq_insert"] if queued else []) + ["block_rq_issue", "block_rq_complete"]
    return [
        Candidate("raw_tracepoint", "block requests via raw tracepoints",
                  "PROBE_RAW_TRACEPOINT",
                  tuple(Hook("raw_tracepoint", f"block:{e}") for e in events),
                  reads_structs=True, fields=FIELDS),
        Candidate("tracepoint", "block I/O via tracepoints", "PROBE_TRACEPOINT",
                  tuple(Hook("tracepoint", f"block:{e}") for e in events),
                  note="requests matched by device and sector; flushes not timed"),
    ]


def cflags(unit: str = "usecs", by_device: bool = False, by_op: bool = False,
           queued: bool = False, dev: Optional[int] = None,
           max_keys: int = DEFAULT_MAX_KEYS) -> List[str]:
    flags = slot_flags(unit) + cdefs.flags(SHARED) + [
        f"-DMAX_KEYS={max_keys}", f"-DKERNEL_VERSION_CODE={kernel_version_code():#x}"]
    if by_device:
        flags.append("-DBY_DEVICE")
    if by_op:
        flags.append("-DBY_OP")
    if queued:
        flags.append("-DQUEUED")
    if dev is not None:
        flags.append(f"-DFILTER_DEV={dev}")
    return flags


@dataclass(frozen=True)
class BioSnapshot:
    hists: Dict[HistKey, Log2Hist]
    unmatched: int = 0        # completions whose start was not seen
    untimed: int = 0          # data-less requests (flushes), not timed
    map_full: int = 0         # completions not counted: the histogram map was full
    taken_at: float = 0.0
    elapsed: float = 0.0

    def total(self) -> Optional[Log2Hist]:
        hists = list(self.hists.values())
        if not hists:
            return None
        total = hists[0]
        for h in hists[1:]:
            total = total + h
        return total


def delta(cur: BioSnapshot, prev: BioSnapshot) -> BioSnapshot:
    return BioSnapshot(diff(cur.hists, prev.hists), cur.unmatched - prev.unmatched,
                       cur.untimed - prev.untimed,
                       cur.map_full - prev.map_full, cur.taken_at,
                       cur.taken_at - prev.taken_at)


class BioLatencyReader(Reader):
    """Loads bpf/biolatency.c and reads its histograms into BioSnapshots."""

    def __init__(self, unit: str = "usecs", by_device: bool = False, by_op: bool = False,
                 queued: bool = False, dev: Optional[int] = None, mode: str = "auto"):
        from ..loader import load
        self.unit_name, self.unit_ns = unit, UNITS.get(unit, 1)
        self.by_device, self.by_op = by_device, by_op
        opts = {"unit": unit, "by_device": by_device, "by_op": by_op, "queued": queued,
                "device": dev}
        self.program = load(TOOL.name, TOOL.plan(opts), TOOL.cflags(opts), mode,
                            command=TOOL.command)
        self.devices = DeviceNames()

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


# ----------------------------------------------------------------- rendering

def _ordered(snap: BioSnapshot) -> List[Tuple[HistKey, Log2Hist]]:
    return sorted(snap.hists.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1] or ""))


def key_label(key: HistKey, device_name) -> str:
    """`vda read`, `vda` or `read`: the disk, then the operation."""
    dev, op = key
    return " ".join(([device_name(dev)] if dev is not None else []) +
                    ([op] if op is not None else []))


BY_CHOICES = ("disk", "op", "disk,op")


def grouping(opts) -> Tuple[bool, bool]:
    """(by disk, by op) from --by or -D/-F."""
    by = opts.get("by") or ""
    return (bool(opts.get("by_device")) or "disk" in by.split(","),
            bool(opts.get("by_op")) or "op" in by.split(","))


def bio_groups(snap: BioSnapshot, device_name) -> List[Tuple[str, dict, Log2Hist]]:
    return [(key_label((dev, op), device_name),
             {"dev": dev_text(dev) if dev is not None else None,
              "device": device_name(dev) if dev is not None else None, "op": op}, hist)
            for (dev, op), hist in _ordered(snap)]


def _total(snap: BioSnapshot, unit_name: str) -> Log2Hist:
    total = Log2Hist((0,) * SLOTS, UNITS[unit_name], 0, unit_name)
    for hist in snap.hists.values():
        total = total + hist
    return total


def counted_line(snap: BioSnapshot) -> Optional[str]:
    notes = []
    if snap.unmatched:
        notes.append(f"{snap.unmatched} completions unmatched (in flight at start)")
    if snap.untimed:
        notes.append(f"{snap.untimed} flushes not timed (no sector)")
    if snap.map_full:
        notes.append(f"{snap.map_full} not counted (map full)")
    if not notes:
        return None
    return "\n".join(render.wrap_parts([f"[{n};" for n in notes[:-1]] + [notes[-1] + "]"]
                                       if len(notes) > 1 else [f"[{notes[0]}]"], sep=" "))


def biolatency_text(snap: BioSnapshot, probe_label: str, seconds: float, unit_name: str,
                    device_name, timestamp: Optional[str] = None, top: int = 10 ** 6,
                    histograms: bool = False) -> str:
    parts = [render.title(f"{probe_label}, {seconds:.1f}s", timestamp)]
    groups = [g for g in bio_groups(snap, device_name) if g[0]]
    if not groups:
        parts.append(render.hist_text(_total(snap, unit_name)))
    else:
        header = {(True, True): "DISK OP", (True, False): "DISK", (False, True): "OP"}[
            (groups[0][1]["device"] is not None, groups[0][1]["op"] is not None)]
        lines = render.grouped_text(groups, top, header, unit_name, histograms, "groups")
        parts += lines[1:]              # no blank line under the title
    line = counted_line(snap)
    if line:
        parts.append(line)
    return "\n".join(parts)


def biolatency_json(snap: BioSnapshot, probe: dict, seconds: float, device_name,
                    when: str, unit_name: str = "usecs", by: Optional[str] = None,
                    top: int = 10 ** 6) -> dict:
    out = {"time": when, "interval_s": round(seconds, 3), "probe": probe,
           "hist": render.hist_json(_total(snap, unit_name)), "by": by}
    if by:
        out["groups"], out["other"] = render.groups_json(bio_groups(snap, device_name), top)
    out.update({"unmatched": snap.unmatched, "untimed_flushes": snap.untimed,
                "map_full": snap.map_full})
    return out


# ------------------------------------------------------------------ exporter

BIO_COUNTERS = (   # unlabelled counters: (name, help, value of a snapshot)
    ("block_io_unmatched", "Completions not timed: their issue was not seen (in flight "
     "at start), or the histogram map was full.", lambda s: s.unmatched + s.map_full),
    ("block_io_untimed_flushes", "Data-less requests (flushes) not timed: no sector.",
     lambda s: s.untimed),
)


def biolatency_families(snapshot: Optional[BioSnapshot], collector) -> list:
    """block_io_latency_seconds{device, op}; devices beyond the cap summed
    into device="~other" (per op)."""
    from ..families import counters, labelled_histogram_family
    from ..series import fold, label_value
    cells: Dict[Tuple[str, str], Log2Hist] = {}
    if snapshot is not None:
        cells, folded = fold(collector.cap, (
            ((label_value(collector.device(dev)),), (op,), hist)
            for (dev, op), hist in snapshot.hists.items()), weight=lambda h: h.count)
        collector.stats.record_folded("block_io_latency_seconds", folded)
    hist = labelled_histogram_family(
        "block_io_latency_seconds", "Block I/O latency from issue to completion (from "
        "insertion with -Q); le bounds are powers of two of seconds.", ["device", "op"],
        sorted(cells.items()), NS_PER_SECOND, EXPORTER_LAST_SLOT)
    return [hist] + counters(BIO_COUNTERS, snapshot)


# ---------------------------------------------------------------------- spec

class BioLatencyTool(Tool):
    name = "biolatency"
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

    def plan(self, opts=None):
        return plan((opts or {}).get("queued", False))

    def cflags(self, opts):
        return cflags(opts["unit"], *grouping(opts), opts.get("queued", False),
                      opts.get("device"))

    def open(self, opts, mode="auto"):
        return BioLatencyReader(opts["unit"], *grouping(opts),
                                opts["queued"], opts["device"], mode)

    def delta(self, cur, prev):
        return delta(cur, prev)

    def text(self, shown, view: View) -> str:
        return biolatency_text(shown, view.label, shown.elapsed, view.reader.unit_name,
                               view.reader.devices, view.clock, view.opts.get("top", 10),
                               view.opts.get("histograms", False))

    def json(self, shown, view: View) -> dict:
        by_disk, by_op = grouping(view.opts)
        by = ",".join(["disk"] * by_disk + ["op"] * by_op) or None
        return biolatency_json(shown, view.probe, shown.elapsed, view.reader.devices,
                               view.when, view.reader.unit_name, by, view.opts.get("top", 10))

    def exporter_open(self, opts, mode="auto"):
        return BioLatencyReader(EXPORTER_UNIT, by_device=True, by_op=True, mode=mode)

    def families(self, snapshot, collector):
        return biolatency_families(snapshot, collector)


TOOL = BioLatencyTool()
