"""vfsread-latency: a log2 histogram of how long reads take."""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import click

from .. import cdefs, render, syscalls
from ..deltas import diff
from ..hist import NATIVE, NS_PER_SECOND, SLOTS, UNITS, Log2Hist, slot_flags
from ..names import c_string, comm_words
from ..options import (Duration, alias_option, comm_option, display_unit, histograms_option,
                       pid_option, top_option, unit_options)
from ..probes import Candidate, Hook
from .read_kinds import (KIND_FIELDS, KIND_SHARED, KINDS, counted, grouping, kind_feature,
                         kind_of, wants_kind)
from ..kernel import read_pid_max, start_slots
from ..tool import Tool, View
from .base import Reader

READ_SYSCALLS = ("read", "pread64", "readv", "preadv", "preadv2")
PER_PROCESS_KEYS = ("pid", "comm")        # what -P and -C key by (PER_PROCESS)
# What bpf/vfs_read.c takes from here (pytools/cdefs.py): passed as -D flags;
# and NR_<syscall> where the machine's numbers are known (pytools/syscalls.py).
SHARED = {**cdefs.enum("PER", PER_PROCESS_KEYS, first=1), **KIND_SHARED}
DEFAULT_MAX_PROCS = 1024
WORKLOAD_KINDS = ("pod", "container")       # keyed by cgroup id, named in user space
PER_CHOICES = PER_PROCESS_KEYS + WORKLOAD_KINDS + ("kind",)
DEFAULT_PID_MAX = 32768          # the kernel's default /proc/sys/kernel/pid_max
# Latencies the exporter exposes: counted in microseconds; slot k's upper
# bound is 2^k us - 1 ns. A fixed set up to slot 27 (~134 s): slower reads
# are counted in +Inf only.
EXPORTER_UNIT = NATIVE     # slots on native histogram edges (hist.NATIVE)
EXPORTER_LAST_SLOT = 27


# Why the plan is in this order (shown by -v and pytools doctor): what each
# mode costs the whole machine, not only each traced read.
ORDER_REASON = (
    "cheapest for the whole machine first: fentry/fexit on vfs_read (a direct "
    "call), then kprobe/kretprobe (a trap per call, more on return), then the "
    "read syscalls' own tracepoints (only reads run a program; the syscall "
    "tracepoint flag sends every syscall down the slower path, as it does for any "
    "syscall tracer). The raw syscall tracepoints run a program on every syscall of "
    "the machine (+138 ns on each non-read, measured): never automatic, "
    "--probe raw_tracepoint for read-heavy machines.")


def plan(machine: Optional[str] = None) -> List[Candidate]:
    """By cost to the whole machine (ORDER_REASON): fentry, kprobes, the
    per-syscall tracepoints; the raw syscall tracepoints only when forced
    (they need this machine's syscall numbers). The tracepoint modes time
    the syscall, not vfs_read itself."""
    raw = []
    if syscalls.numbers(machine):
        raw = [Candidate("raw_tracepoint", "read syscalls via raw tracepoints",
                         "PROBE_RAW_TRACEPOINT",
                         (Hook("raw_tracepoint", "raw_syscalls:sys_enter"),
                          Hook("raw_tracepoint", "raw_syscalls:sys_exit")),
                         note="times read, pread64, readv, preadv, preadv2 syscalls; runs "
                              "on every syscall of the machine", auto=False)]
    return [
        Candidate("fentry", "vfs_read via fentry", "PROBE_FENTRY",
                  (Hook("fentry", "vfs_read"), Hook("fexit", "vfs_read"))),
        Candidate("kprobe", "vfs_read via kprobe", "PROBE_KPROBE",
                  (Hook("kprobe", "vfs_read", "vfs_read_entry"),
                   Hook("kretprobe", "vfs_read", "vfs_read_return"))),
        Candidate("tracepoint", "read syscalls via tracepoints", "PROBE_TRACEPOINT",
                  tuple(Hook("tracepoint", f"syscalls:sys_{edge}_{name}")
                        for name in READ_SYSCALLS for edge in ("enter", "exit")),
                  note="times read, pread64, readv, preadv, preadv2 syscalls"),
        *raw,
    ]


def cflags(unit: str = "usecs", pid: Optional[int] = None, comm: Optional[str] = None,
           min_latency_ns: Optional[int] = None, per: Optional[str] = None,
           max_procs: int = DEFAULT_MAX_PROCS, pid_max: int = DEFAULT_PID_MAX,
           floor: str = "", machine: Optional[str] = None,
           kind: Optional[str] = None) -> List[str]:
    """floor, for the benchmark only: "empty" (hooks with empty bodies) or
    "clock" (bodies that only read the clock at a read's entry and exit).
    kind: only reads on that kind of file (KINDS); they take effect with
    the kind feature (kind_feature) compiled in."""
    flags = slot_flags(unit) + cdefs.flags(SHARED) + [f"-DSTART_SLOTS={start_slots(pid_max)}"]
    numbers = syscalls.numbers(machine)
    flags += [f"-DNR_{name}={numbers[name]}" for name in READ_SYSCALLS if name in numbers]
    if pid is not None:
        flags.append(f"-DFILTER_PID={pid}")
    if comm is not None:
        low, high = comm_words(comm.encode())
        flags += [f"-DFILTER_COMM_LO={low:#x}ULL", f"-DFILTER_COMM_HI={high:#x}ULL"]
    if min_latency_ns:
        flags.append(f"-DMIN_LATENCY_NS={min_latency_ns}ULL")
    if kind in KINDS:
        flags.append(f"-DKIND_FILTER={SHARED['KIND_' + kind.upper()]}")
    if per is not None:
        if per not in PER_CHOICES:
            raise ValueError(f"per is one of {', '.join(PER_CHOICES)}")
        if per == "kind":
            flags.append("-DPER_KIND")
        elif per in WORKLOAD_KINDS:
            flags += ["-DPER_CGROUP", f"-DMAX_PROCS={max_procs}"]
        else:
            flags += [f"-DPER_PROCESS={SHARED['PER_' + per.upper()]}",
                      f"-DMAX_PROCS={max_procs}"]
    if floor:
        if floor not in ("empty", "clock"):
            raise ValueError("floor is 'empty' or 'clock'")
        flags.append("-DFLOOR" if floor == "empty" else "-DFLOOR_CLOCK")
    return flags


ProcKey = Tuple[int, str]   # (tgid or 0, comm)


@dataclass(frozen=True)
class LatencySnapshot:
    hist: Log2Hist
    start_clashes: int = 0
    per_process: Optional[Dict[ProcKey, Log2Hist]] = None
    taken_at: float = 0.0
    elapsed: float = 0.0
    per_cgroup: Optional[Dict[int, Log2Hist]] = None    # by cgroup id (-P pod|container)
    per_kind: Optional[Dict[str, Log2Hist]] = None      # by kind of file (--by kind)


def delta(cur: LatencySnapshot, prev: LatencySnapshot) -> LatencySnapshot:
    procs = None if cur.per_process is None else diff(cur.per_process, prev.per_process or {})
    cgroups = None if cur.per_cgroup is None else diff(cur.per_cgroup, prev.per_cgroup or {})
    kinds = None if cur.per_kind is None else diff(cur.per_kind, prev.per_kind or {})
    return LatencySnapshot(cur.hist - prev.hist, cur.start_clashes - prev.start_clashes,
                           procs, cur.taken_at, cur.taken_at - prev.taken_at, cgroups, kinds)


def proc_hists(slot_counts: Dict[Tuple[int, str, int], int], sums: Dict[ProcKey, int],
               unit_ns: int, unit_name: str) -> Dict[ProcKey, Log2Hist]:
    """Per-process histograms from the flat (tgid, comm, slot) -> count map."""
    slots: Dict[ProcKey, List[int]] = {}
    for (tgid, comm, slot), count in slot_counts.items():
        slots.setdefault((tgid, comm), [0] * SLOTS)[slot] += count
    return {key: Log2Hist(tuple(s), unit_ns, sums.get(key, 0), unit_name)
            for key, s in slots.items()}


def cgroup_hist(value, unit_ns: int, unit_name: str) -> Log2Hist:
    """One cgroup's histogram from its map value (slots, then sum_ns), read
    as one buffer: a scrape at node scale reads hundreds of them."""
    words = struct.unpack(f"{SLOTS + 1}Q", bytes(value))
    return Log2Hist(words[:SLOTS], unit_ns, words[SLOTS], unit_name)


class VfsReadReader(Reader):
    """Loads bpf/vfs_read.c and reads its histograms into LatencySnapshots."""

    def __init__(self, unit: str = "usecs", pid: Optional[int] = None,
                 comm: Optional[str] = None, min_latency_ns: Optional[int] = None,
                 per: Optional[str] = None, max_procs: int = DEFAULT_MAX_PROCS,
                 mode: str = "auto", floor: str = "", kind: Optional[str] = "all"):
        """kind: "all" (every read, no struct read), one of KINDS (only
        those; an error where the kind cannot be told), or None: regular
        files where the kind can be told, else every read, said so."""
        from ..loader import load
        self.unit_name = unit
        self.unit_ns = UNITS.get(unit, 1)
        self.per = per
        opts = {"unit": unit, "pid": pid, "comm": comm, "min_latency_ns": min_latency_ns,
                "per": per, "max_procs": max_procs, "floor": floor, "kind": kind}
        self.program = load(TOOL.name, TOOL.plan(opts), TOOL.cflags(opts), mode,
                            TOOL.features(opts), command=TOOL.command)
        missing = self.program.missing_features.get("kind")
        if missing and (kind is not None or per == "kind"):
            self.program.close()
            from ..errors import ToolError
            raise ToolError(f"cannot tell the kind of file a read is on: {missing}",
                            "use --kind all, or give the node its kernel's headers or BTF")
        self.kind = None if missing else kind_of(opts)
        self.counted = counted(kind_of(opts), missing)
        self.workloads = None
        if per in WORKLOAD_KINDS:
            from ..workloads import Workloads, pod_log_root
            self.workloads = Workloads(log_root=pod_log_root())

    def forget_cgroups(self, ids) -> None:
        """Delete these cgroup ids' histograms (gone pods) from the kernel."""
        from ..maps import delete_keys
        delete_keys(self.program.table("vfs_read_latency_cgroup_hist"), ids, lambda k: k.value)

    def snapshot(self) -> LatencySnapshot:
        from ..maps import items, scalar
        table = self.program.table("vfs_read_latency_hist")
        per_cpu = table[table.Key(0)]
        slots = [sum(h.slots[k] for h in per_cpu) for k in range(SLOTS)]
        total_ns = sum(h.sum_ns for h in per_cpu)
        clashes = sum(h.clashes for h in per_cpu)
        procs = cgroups = kinds = None
        if self.per == "kind":
            table = self.program.table("vfs_read_kind_hist")
            kinds = {}
            for i, name in enumerate(KINDS):
                cpus = table[table.Key(i)]
                hist = Log2Hist(tuple(sum(h.slots[k] for h in cpus) for k in range(SLOTS)),
                                self.unit_ns, sum(h.sum_ns for h in cpus), self.unit_name)
                if hist.count:
                    kinds[name] = hist
        elif self.per in WORKLOAD_KINDS:
            cgroups = {scalar(k): cgroup_hist(v, self.unit_ns, self.unit_name)
                       for k, v in items(self.program.table("vfs_read_latency_cgroup_hist"))}
        elif self.per:
            counts = {(k.tgid, c_string(k.comm), k.slot): v
                      for k, v in items(self.program.table("vfs_read_latency_proc_hist"))}
            sums = {(k.tgid, c_string(k.comm)): v
                    for k, v in items(self.program.table("vfs_read_latency_proc_sum"))}
            procs = proc_hists(counts, sums, self.unit_ns, self.unit_name)
        return LatencySnapshot(Log2Hist(tuple(slots), self.unit_ns, total_ns, self.unit_name),
                               clashes, procs, time.monotonic(), per_cgroup=cgroups,
                               per_kind=kinds)


# ----------------------------------------------------------------- rendering

def proc_label(key: ProcKey) -> str:
    tgid, comm = key
    return render.process_label(comm, tgid)


GROUP_HEADERS = {"pid": "PROCESS", "comm": "COMM", "pod": "NAMESPACE/POD",
                 "container": "NAMESPACE/POD/CONTAINER", "kind": "KIND"}
GROUP_NOUNS = {"pid": "processes", "comm": "names", "pod": "pods", "container": "containers",
               "kind": "kinds"}


def latency_groups(snap: LatencySnapshot, workloads=None, by: Optional[str] = None
                   ) -> List[Tuple[str, dict, Log2Hist]]:
    """(key, labels, hist) of each group, busiest first: processes as
    `dd [10642]` (pid, comm), names (comm), or workloads (their labels)."""
    if snap.per_cgroup is not None:
        from ..workloads import GROUPINGS, describe, group_by_workload
        grouped = group_by_workload(snap.per_cgroup, workloads, by)
        return [(describe(key, by), dict(zip(GROUPINGS[by], key)), h) for key, h in
                sorted(grouped.items(), key=lambda kv: (-kv[1].count, kv[0]))]
    if snap.per_process is not None:
        ordered = sorted(snap.per_process.items(), key=lambda kv: (-kv[1].count, kv[0]))
        return [(proc_label(key), {"pid": key[0], "comm": key[1]} if key[0] else
                 {"comm": key[1]}, h) for key, h in ordered]
    if snap.per_kind is not None:      # in KINDS' order, not by count
        return [(k, {"kind": k}, h) for k, h in _kinds(snap)]
    return []


def _kinds(snap: LatencySnapshot) -> List[Tuple[str, Log2Hist]]:
    """Per kind of file, in KINDS' order."""
    return [(k, snap.per_kind[k]) for k in KINDS if k in (snap.per_kind or {})]


def latency_text(snap: LatencySnapshot, probe_label: str, seconds: float, top: int,
                 timestamp: Optional[str] = None, workloads=None, by: Optional[str] = None,
                 histograms: bool = False) -> str:
    parts = [render.title(f"{probe_label}, {seconds:.1f}s", timestamp),
             render.hist_text(snap.hist)]
    if snap.start_clashes:
        parts.append(f"({snap.start_clashes} reads not timed: thread id slot clash)")
    if by:
        parts += render.grouped_text(latency_groups(snap, workloads, by), top,
                                     GROUP_HEADERS[by], snap.hist.unit_name, histograms,
                                     GROUP_NOUNS[by])
    return "\n".join(parts)


def latency_json(snap: LatencySnapshot, probe: dict, seconds: float, top: int,
                 when: str, workloads=None, by: Optional[str] = None) -> dict:
    out = {"time": when, "interval_s": round(seconds, 3), "probe": probe,
           "hist": render.hist_json(snap.hist), "start_clashes": snap.start_clashes,
           "by": by}
    if by:
        out["groups"], out["other"] = render.groups_json(latency_groups(snap, workloads, by),
                                                         top)
    return out


# ------------------------------------------------------------------ exporter

VFS_READ_COUNTERS = (   # unlabelled counters: (name, help, value of a snapshot)
    ("vfs_read_latency_lost", "Reads not timed because another thread shared their "
     "start slot (bounded start array).", lambda s: s.start_clashes),
)


def vfs_read_families(snapshot: Optional[LatencySnapshot], collector) -> list:
    """vfs_read_latency_seconds, unlabelled, or by (namespace, pod) with
    --vfs-read-by pod: pods beyond the cap in ~other, and reads of cgroups
    the kernel's per-cgroup map had no room for counted apart."""
    from ..families import counters, histogram_family, labelled_histogram_family
    from ..series import pod_histograms
    name = "vfs_read_latency_seconds"
    doc = ("Time from vfs_read entry to return (or read syscall entry to exit, in "
           "tracepoint mode); le bounds are powers of two of seconds.")
    if collector.opts.get("by") != "pod":
        families = [histogram_family(name, doc, snapshot.hist if snapshot is not None
                                     else None, NS_PER_SECOND, EXPORTER_LAST_SLOT)]
    else:
        items = pod_histograms(snapshot.per_cgroup or {}, collector.cgroup_series("pod"),
                               collector.cap) if snapshot is not None else []
        families = [labelled_histogram_family(name, doc, ["namespace", "pod"], items,
                                              NS_PER_SECOND, EXPORTER_LAST_SLOT,
                                              collector.render_cache(name))]
        families += counters(VFS_READ_BY_POD_COUNTERS, snapshot)
    return families + counters(VFS_READ_COUNTERS, snapshot)


VFS_READ_BY_POD_COUNTERS = (
    ("vfs_read_latency_unlabelled", "Reads timed but not in a pod's series: their "
     "cgroup found the per-cgroup map full (--vfs-read-by pod).",
     lambda s: max(0, s.hist.count - sum(h.count for h in (s.per_cgroup or {}).values()))),
)


# ---------------------------------------------------------------------- spec

class VfsReadTool(Tool):
    name = "vfs_read"
    command = "vfsread-latency"
    summary = "log2 histogram of read latency: vfs_read, or the read syscalls"
    description = """Histogram of read latency: vfs_read via kprobe or fentry, else the
    read syscalls (read, pread64, readv, preadv, preadv2) via the raw
    syscall tracepoints or the per-syscall tracepoints.

    Every INTERVAL seconds (default 5), COUNT times or until Ctrl-C, print a
    log2 histogram and a summary: count, exact average, and p50/p90/p99
    estimated from the histogram's slots.
    """
    examples = """\b
Examples:
  vfsread-latency             # histogram in microseconds every 5 s
  vfsread-latency 1 5         # every second, five times
  vfsread-latency -m          # in milliseconds (-n for nanoseconds)
  vfsread-latency -p 1234     # reads by process 1234 only
  vfsread-latency -c postgres # reads by processes named postgres
  vfsread-latency -P --top 5  # per process (--by pid), the 5 busiest
  vfsread-latency --by pod    # per Kubernetes pod, one line each
  vfsread-latency --by pod --histograms  # a histogram per pod
  vfsread-latency --min-latency 1ms    # ignore reads under 1 ms
  vfsread-latency --json 1 3  # one JSON object per interval
  vfsread-latency --probe tracepoint   # force the per-syscall tracepoints
  vfsread-latency --kind all  # reads on pipes, sockets, ttys too
  vfsread-latency --by kind   # one histogram per kind of file
"""
    options = (
        unit_options,
        pid_option("Only reads by this process."),
        comm_option("Only reads by processes with this name"),
        click.option("--by", type=click.Choice(PER_CHOICES),
                     help="One histogram per process (pid), process name (comm), pod, "
                          "container or kind of file (kind: every kind)."),
        alias_option("-P", to="by", flag_value="pid", help="Same as --by pid."),
        alias_option("--per", to="by", use="--by", type=click.Choice(PER_CHOICES)),
        alias_option("--per-pid", to="by", use="--by pid", flag_value="pid"),
        alias_option("--per-comm", to="by", use="--by comm", flag_value="comm"),
        top_option("Groups shown with --by, busiest first."),
        histograms_option(),
        click.option("--min-latency", type=Duration(display_unit), default=0,
                     metavar="DURATION",
                     help="Ignore reads faster than this: 1ms, 250us, or a number in the "
                          "display unit."),
        click.option("--kind", type=click.Choice(KINDS + ("all",)), default=None,
                     help="Only reads on this kind of file: file (regular files), pipe "
                          "(pipes, FIFOs), socket, tty (ttys, other character devices), "
                          "other; or all. Default: regular files, where the kind can be "
                          "told (else all, said in the banner): waits on pipes, sockets "
                          "and ttys are idle time, not slow reads."),
    )
    # `-P pod` (the old -P took a value): still read, with a warning.
    legacy_values = {"-P": PER_CHOICES}

    exporter_options = (
        click.option("--vfs-read-by", "vfs_read_by", type=click.Choice(["none", "pod"]),
                     default="none", show_default=True,
                     help="Labels of vfs_read_latency_seconds (pod: namespace, pod)."),
    )

    order_reason = ORDER_REASON

    def plan(self, opts=None):
        return plan()

    @staticmethod
    def _min_ns(opts) -> Optional[int]:
        """--min-latency in ns (the option's value), or the reader's
        min_latency_ns."""
        if "min_latency_ns" in opts:
            return opts["min_latency_ns"]
        return opts.get("min_latency", 0) or None

    _by = staticmethod(grouping)

    def cflags(self, opts):
        return cflags(opts["unit"], opts.get("pid"), opts.get("comm"), self._min_ns(opts),
                      self._by(opts), opts.get("max_procs", DEFAULT_MAX_PROCS),
                      read_pid_max(), opts.get("floor", ""), kind=kind_of(opts))

    # Where the kind of file is read (bpf/vfs_read.c's `// btf:` line), by
    # the kind feature rather than a candidate.
    feature_fields = KIND_FIELDS

    def features(self, opts):
        return [kind_feature()] if wants_kind(opts) else []

    def open(self, opts, mode="auto"):
        if self._by(opts) == "kind" and opts.get("kind") not in (None, "all"):
            raise click.UsageError("--by kind shows every kind: use it with --kind all")
        return VfsReadReader(opts["unit"], opts["pid"], opts["comm"], self._min_ns(opts),
                              self._by(opts), mode=mode, kind=opts.get("kind"))

    def delta(self, cur, prev):
        return delta(cur, prev)

    def text(self, shown, view: View) -> str:
        return latency_text(shown, view.label, shown.elapsed, view.opts["top"], view.clock,
                            getattr(view.reader, "workloads", None), view.opts["by"],
                            view.opts.get("histograms", False))

    def json(self, shown, view: View) -> dict:
        out = latency_json(shown, view.probe, shown.elapsed, view.opts["top"], view.when,
                           getattr(view.reader, "workloads", None), view.opts["by"])
        out["kind"] = getattr(view.reader, "kind", None) or "all"    # what is counted
        return out

    def exporter_open(self, opts, mode="auto"):
        per = "pod" if opts.get("by") == "pod" else None
        return VfsReadReader(unit=EXPORTER_UNIT, per=per, mode=mode)

    def families(self, snapshot, collector):
        return vfs_read_families(snapshot, collector)


TOOL = VfsReadTool()
