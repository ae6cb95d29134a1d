"""readahead-stats: requests, windows and pages read ahead, per device and
file, and what became of the pages (efficiency)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import click

from .. import cdefs, render
from ..deltas import Tally, diff
from ..hist import SLOTS, Log2Hist
from ..names import DeviceNames, FileKey, FileNames, c_string, dev_text
from ..options import device_option, pid_option, top_option
from ..probes import Candidate, Facts, Feature, Hook, hook_problem
from ..system import kernel_version_code
from ..tool import Tool, View
from .base import LoadedTool

# Readahead efficiency (bpf/readahead.c, EFFICIENCY): pages enter and leave
# the cache through these tracepoints (6.1 and 6.18 have them), with the
# fields it reads...
PAGE_TRACEPOINTS = {
    "filemap:mm_filemap_add_to_page_cache": ("s_dev", "i_ino", "index", "order"),
    "filemap:mm_filemap_delete_from_page_cache": ("s_dev", "i_ino", "index", "order"),
}
# ...and are used through these (6.18 has them, 6.1 does not)...
USE_TRACEPOINTS = {
    "filemap:mm_filemap_get_pages": ("s_dev", "i_ino", "index", "last_index"),
    "filemap:mm_filemap_map_pages": ("s_dev", "i_ino", "index", "last_index"),
    "filemap:mm_filemap_fault": ("s_dev", "i_ino", "index"),
}
# ...or, where those are missing, through the exit of these functions (fexit).
USE_FUNCTIONS = ("filemap_read", "filemap_map_pages", "filemap_fault")
EFFICIENCY_MEANING = ("used: reached by read(2), splice or sendfile, or mapped by a page "
                      "fault (fault-around included); dropped: left the page cache before "
                      "any use; unused now: read ahead while the tool ran, neither yet")


EFFICIENCY = "efficiency"


def _missing(tracepoints: Dict[str, Tuple[str, ...]],
             fields_of: Callable[[str], Optional[frozenset]]) -> List[str]:
    missing = []
    for name, needed in tracepoints.items():
        fields = fields_of(name)
        if fields is None:
            missing.append(f"tracepoint {name}")
        elif not set(needed) <= fields:
            missing.append(f"tracepoint {name} fields {','.join(sorted(set(needed) - fields))}")
    return missing


def fexit_problem(facts: Facts) -> Callable[[str], Optional[str]]:
    return lambda function: hook_problem(Hook("fexit", function), facts)


def efficiency_plan(fields_of: Callable[[str], Optional[frozenset]],
                    fexit_problem: Callable[[str], Optional[str]]) -> Feature:
    """How readahead efficiency can be measured here: the page tracepoints,
    with the use tracepoints or else fexit on the use functions.
    fields_of(name): a tracepoint's field names, None if absent;
    fexit_problem(function): why fexit cannot hook it, or None."""
    lacks = _missing(PAGE_TRACEPOINTS, fields_of)
    page_hooks = tuple(Hook("tracepoint", name) for name in PAGE_TRACEPOINTS)
    if not lacks:
        no_tracepoints = _missing(USE_TRACEPOINTS, fields_of)
        if not no_tracepoints:
            return Feature(EFFICIENCY, ("-DEFFICIENCY", "-DUSE_TRACEPOINTS"), page_hooks +
                                  tuple(Hook("tracepoint", name) for name in USE_TRACEPOINTS))
        no_fexit = [f"fexit {fn}: {p}" for fn in USE_FUNCTIONS for p in [fexit_problem(fn)] if p]
        if not no_fexit:
            return Feature(EFFICIENCY, ("-DEFFICIENCY", "-DUSE_FEXIT"), page_hooks +
                                  tuple(Hook("fexit", fn) for fn in USE_FUNCTIONS))
        lacks = no_tracepoints + no_fexit[:1]
    return Feature(EFFICIENCY, problem="readahead efficiency (pages read ahead but never used) "
                                       "is not measured: this kernel lacks " + "; ".join(lacks))


def kernel_efficiency_feature() -> Feature:
    """efficiency_plan asked of this kernel (needs the loader's prepare())."""
    from .. import system
    from ..loader import prepare
    env = prepare()
    return efficiency_plan(lambda name: system.tracepoint_fields(env.tracefs, name),
                           fexit_problem(env.facts))

KINDS = ("sync", "async", "forced")            # readahead kinds, in this order
EVENTS = ("sync_request", "async_request", "window")   # what a traced event is
EVENT_WINDOW = EVENTS.index("window")
# What bpf/readahead.c takes from here (pytools/cdefs.py): passed as -D flags.
SHARED = {**cdefs.enum("KIND", KINDS), **cdefs.enum("EVENT", EVENTS), "HIST_SLOTS": SLOTS}
TRACEPOINTS = ("page_cache_sync_ra", "page_cache_async_ra", "page_cache_ra_order",
               "page_cache_ra_unbounded")
# (function, BPF handler): the kernels each exists in are in bpf/readahead.c.
KPROBE_FUNCTIONS = (
    ("page_cache_sync_ra", "kp_sync_ra"),
    ("page_cache_async_ra", "kp_async_ra"),
    ("page_cache_sync_readahead", "kp_sync_readahead"),
    ("page_cache_async_readahead", "kp_async_readahead"),
    ("page_cache_ra_unbounded", "kp_ra_unbounded"),
    ("page_cache_ra_order", "kp_ra_order"),
    ("__do_page_cache_readahead", "kp_do_readahead"),
)


# fentry hooks the 5.10+ names only: a kernel with fentry (5.5+) but without
# them (5.5-5.9) falls through to kprobes.
FENTRY_FUNCTIONS = ("page_cache_sync_ra", "page_cache_async_ra", "page_cache_ra_unbounded",
                    "page_cache_ra_order")


ORDER_REASON = (
    "cheapest for the whole machine first: fentry on the readahead functions (a "
    "direct call), then the readahead tracepoints (6.18+: static, a perf event "
    "each), then kprobes (a trap each). All of them run only on readahead, never "
    "on other work.")


def plan() -> List[Candidate]:
    """By cost (ORDER_REASON): fentry, the 6.18 tracepoints, kprobes, each
    on whichever readahead functions this kernel has (they were renamed
    across 5.10-5.18)."""
    return [
        Candidate("fentry", "readahead via fentry", "PROBE_FENTRY",
                  tuple(Hook("fentry", fn, define=f"HOOK_{fn}") for fn in FENTRY_FUNCTIONS),
                  any_of=True),
        Candidate("tracepoint", "readahead via tracepoints", "PROBE_TRACEPOINT",
                  tuple(Hook("tracepoint", f"readahead:{n}") for n in TRACEPOINTS)),
        Candidate("kprobe", "readahead via kprobes", "PROBE_KPROBE",
                  tuple(Hook("kprobe", fn, handler, f"HOOK_{fn}")
                        for fn, handler in KPROBE_FUNCTIONS), any_of=True),
    ]


def cflags(release: str, dev: Optional[int] = None, pid: Optional[int] = None,
           trace: bool = False, max_files: int = 10240, files: bool = True,
           by_cgroup: bool = False) -> List[str]:
    flags = cdefs.flags(SHARED) + [f"-DKERNEL_VERSION_CODE={kernel_version_code(release):#x}",
                                   f"-DMAX_FILES={max_files}"]
    if by_cgroup:
        flags.append("-DBY_CGROUP")
    if not files:
        flags.append("-DNO_FILES")
    if dev is not None:
        flags.append(f"-DFILTER_DEV={dev}")
    if pid is not None:
        flags.append(f"-DFILTER_PID={pid}")
    if trace:
        flags.append("-DTRACE")
    return flags


@dataclass(frozen=True)
class Counts(Tally):
    requests: int = 0
    req_pages: int = 0
    windows: int = 0
    pages: int = 0


@dataclass(frozen=True)
class Usage(Tally):
    """What became of the pages read ahead (bpf/readahead.c, EFFICIENCY)."""
    added: int = 0       # pages read ahead and tracked
    used: int = 0        # of those, reached by a read or a page fault
    dropped: int = 0     # of those, left the cache unused
    untracked: int = 0   # read ahead, not tracked (map full)

    @property
    def unused_now(self) -> int:
        """Of a cumulative Usage: pages read ahead and still waiting for a use."""
        return max(0, self.added - self.used - self.dropped)


DevKind = Tuple[int, str]    # (kernel dev, kind)


@dataclass(frozen=True)
class ReadaheadSnapshot:
    devices: Dict[DevKind, Counts]
    files: Dict[FileKey, Counts]
    window_hist: Log2Hist
    overflow: int = 0
    taken_at: float = 0.0
    elapsed: float = 0.0
    # None: efficiency not measured. Per device: in a delta, the interval's
    # counts; unused_now holds each device's pages pending at its end.
    usage: Optional[Dict[int, Usage]] = None
    unused_now: Dict[int, int] = field(default_factory=dict)
    cgroups: Optional[Dict[Tuple[int, str], Counts]] = None   # (cgroup id, kind), --by pod

    def by_cgroup(self) -> Dict[int, Counts]:
        out: Dict[int, Counts] = {}
        for (cgroup_id, _), c in (self.cgroups or {}).items():
            out[cgroup_id] = out.get(cgroup_id, Counts()) + c
        return out

    def total_usage(self) -> Optional[Usage]:
        if self.usage is None:
            return None
        total = Usage()
        for u in self.usage.values():
            total = total + u
        return total

    def by_kind(self) -> Dict[str, Counts]:
        out = {k: Counts() for k in KINDS}
        for (_, kind), c in self.devices.items():
            out[kind] = out[kind] + c
        return out

    def by_device(self) -> Dict[int, Counts]:
        out: Dict[int, Counts] = {}
        for (dev, _), c in self.devices.items():
            out[dev] = out.get(dev, Counts()) + c
        return out


def delta(cur: ReadaheadSnapshot, prev: ReadaheadSnapshot) -> ReadaheadSnapshot:
    usage = (None if cur.usage is None or prev.usage is None
             else diff(cur.usage, prev.usage))
    cgroups = None if cur.cgroups is None else diff(cur.cgroups, prev.cgroups or {})
    return ReadaheadSnapshot(diff(cur.devices, prev.devices), diff(cur.files, prev.files),
                             cur.window_hist - prev.window_hist, cur.overflow - prev.overflow,
                             cur.taken_at, cur.taken_at - prev.taken_at, usage,
                             cur.unused_now, cgroups)


# ---------------------------------------------------------------- the reader

class Readahead(LoadedTool):
    """Loads bpf/readahead.c and reads its maps into ReadaheadSnapshots."""

    def __init__(self, dev: Optional[int] = None, pid: Optional[int] = None,
                 trace: bool = False, mode: str = "auto", files: bool = True,
                 efficiency: bool = False, by: Optional[str] = None):
        from ..loader import load
        self.by = by
        opts = {"device": dev, "pid": pid, "trace": trace, "files": files, "by": by,
                "efficiency": efficiency}
        self.program = load(TOOL.name, TOOL.plan(opts), TOOL.cflags(opts), mode,
                            TOOL.features(opts))
        self.devices = DeviceNames()     # names for what the snapshots hold
        self.files = FileNames()
        self.workloads = None
        if by is not None:
            from ..workloads import Workloads, pod_log_root
            self.workloads = Workloads(log_root=pod_log_root())
        if efficiency:
            problem = self.program.missing_features.get(EFFICIENCY)
            if problem and not problem.startswith("readahead efficiency"):
                problem = f"readahead efficiency is not measured: {problem}"
        else:
            problem = "readahead efficiency was not asked for"
        self.efficiency_problem: Optional[str] = problem

    def snapshot(self) -> ReadaheadSnapshot:
        from ..maps import items
        devices = {(k.dev, KINDS[k.kind]): Counts(v.requests, v.req_pages, v.windows, v.pages)
                   for k, v in items(self.program.table("readahead_devices"))}
        files = {(k.dev, k.ino): Counts(v.requests, v.req_pages, v.windows, v.pages)
                 for k, v in items(self.program.table("readahead_files"))}
        slots = [0] * SLOTS
        for k, per_cpu in self.program.table("readahead_window_pages_hist").items():
            slots[k.value] = sum(per_cpu)
        sums = self.program.table("readahead_window_pages_sum")
        pages = sum(sums[sums.Key(0)])
        overflow = self.program.table("readahead_overflow")
        usage = None
        if self.efficiency_problem is None:
            usage = {k.value: Usage(v.added, v.used, v.dropped, v.untracked)
                     for k, v in self.program.table("readahead_usage").items()}
        cgroups = None
        if self.by is not None:
            cgroups = {(k.cgroup_id, KINDS[k.kind]): Counts(v.requests, v.req_pages, v.windows,
                                                            v.pages)
                       for k, v in items(self.program.table("readahead_cgroups"))}
        return ReadaheadSnapshot(devices, files, Log2Hist(tuple(slots), 1, pages, "pages"),
                                 int(overflow[0].value), time.monotonic(), 0.0, usage,
                                 {d: u.unused_now for d, u in (usage or {}).items()}, cgroups)

    def forget_cgroups(self, ids) -> None:
        """Delete these cgroup ids' counts (gone pods) from the kernel."""
        from ..maps import delete_keys
        delete_keys(self.program.table("readahead_cgroups"), ids, lambda k: k.cgroup_id)

    def open_trace(self, callback: Callable[[dict], None], lost: Callable[[int], None]):
        """Call callback(event dict) per event; lost(n) when the buffer dropped n."""
        table = self.program.table("readahead_events")

        def on_event(cpu, data, size):
            e = table.event(data)
            callback({"ts_ns": e.ts, "pid": e.pid, "comm": c_string(e.comm),
                      "event": "window" if e.hook == EVENT_WINDOW else "request",
                      "kind": KINDS[e.kind], "dev": e.dev, "ino": e.ino, "index": e.index,
                      "size": e.size, "async_size": e.async_size})

        table.open_perf_buffer(on_event, page_cnt=64, lost_cb=lost)

    def poll(self, timeout_ms: int) -> None:
        self.program.bpf.perf_buffer_poll(timeout=timeout_ms)


# ----------------------------------------------------------------- rendering

def efficiency_line(snap: ReadaheadSnapshot, problem: Optional[str]) -> str:
    """One line: what became of the pages read ahead, or why it is unknown."""
    total = snap.total_usage()
    if total is None:
        return f"efficiency: not measured: {problem}"
    unused_now = sum(snap.unused_now.values())
    line = (f"efficiency: {total.added} pages read ahead; used {total.used}, "
            f"dropped unused {total.dropped}; unused now {unused_now}")
    if total.untracked:
        line += f" [{total.untracked} not followed: map full]"
    return line


def _usage_json(u: Usage, unused_now: int) -> dict:
    return {"read_ahead_pages": u.added, "used_pages": u.used,
            "dropped_unused_pages": u.dropped, "unused_now_pages": unused_now,
            "untracked_pages": u.untracked}


def efficiency_json(snap: ReadaheadSnapshot, problem: Optional[str],
                    device_name: Callable[[int], str]) -> Optional[dict]:
    total = snap.total_usage()
    if total is None:
        return None
    devices = sorted(set(snap.usage) | set(snap.unused_now))
    return {**_usage_json(total, sum(snap.unused_now.values())),
            "devices": [{"dev": dev_text(d), "name": device_name(d),
                         **_usage_json(snap.usage.get(d, Usage()), snap.unused_now.get(d, 0))}
                        for d in devices]}


COUNT_HEADERS = ["REQUESTS", "REQ PAGES", "WINDOWS", "PAGES"]


def _counts_row(name: str, c: Counts) -> list:
    return [name, c.requests, c.req_pages, c.windows, c.pages]


def _busiest_workloads(snap: ReadaheadSnapshot, workloads, by: str):
    from ..workloads import group_by_workload
    grouped = group_by_workload(snap.by_cgroup(), workloads, by)
    return sorted(grouped.items(), key=lambda kv: (-kv[1].pages, kv[0]))


def _busiest_files(snap: ReadaheadSnapshot) -> List[Tuple[FileKey, Counts]]:
    return sorted(snap.files.items(), key=lambda kv: (-kv[1].pages, kv[0]))


def readahead_text(snap: ReadaheadSnapshot, probe_label: str, seconds: float, top: int,
                   device_name: Callable[[int], str], file_name: Callable[[FileKey], str],
                   timestamp: Optional[str] = None,
                   efficiency_problem: Optional[str] = None, workloads=None,
                   by: Optional[str] = None,
                   unresolved: Optional[Dict[FileKey, str]] = None) -> str:
    kinds = [_counts_row(k, c) for k, c in snap.by_kind().items()]
    devices = [_counts_row(device_name(d), c)
               for d, c in sorted(snap.by_device().items(), key=lambda kv: -kv[1].pages)]
    files = _busiest_files(snap)
    file_rows = [_counts_row(file_name(k), c) for k, c in files[:top]]
    parts = [render.title(f"{probe_label}, {seconds:.1f}s", timestamp),
             render.table(kinds, ["KIND"] + COUNT_HEADERS)]
    if devices:
        parts += ["", render.table(devices, ["DEVICE"] + COUNT_HEADERS)]
    if snap.cgroups is not None:
        from ..workloads import describe
        rows = [_counts_row(describe(key, by), c) for key, c in _busiest_workloads(
            snap, workloads, by)[:top]]
        if rows:
            parts += ["", render.fitted_table(rows, [by.upper()] + COUNT_HEADERS)]
    if file_rows:
        parts += ["", render.fitted_table(file_rows, ["FILE"] + COUNT_HEADERS)]
        if len(files) > top:
            parts.append(f"[{len(files) - top} more files]")
        for key, _ in files[:top]:
            if unresolved and key in unresolved:
                parts.append(f"{dev_text(key[0])}:{key[1]}: no path: {unresolved[key]}")
    if snap.overflow:
        parts.append(f"[{snap.overflow} events not keyed: map full]")
    parts += ["", efficiency_line(snap, efficiency_problem)]
    parts += ["", render.hist_text(snap.window_hist, "window pages")]
    return "\n".join(parts)


def readahead_json(snap: ReadaheadSnapshot, probe: dict, seconds: float, top: int,
                   device_name: Callable[[int], str], file_name: Callable[[FileKey], str],
                   when: str, efficiency_problem: Optional[str] = None, workloads=None,
                   by: Optional[str] = None) -> dict:
    def counts(c: Counts) -> dict:
        return {"requests": c.requests, "req_pages": c.req_pages,
                "windows": c.windows, "pages": c.pages}

    files = _busiest_files(snap)
    out = {
        "time": when, "interval_s": round(seconds, 3), "probe": probe,
        "kinds": {k: counts(c) for k, c in snap.by_kind().items()},
        "devices": [{"dev": dev_text(d), "name": device_name(d), **counts(c)}
                    for d, c in sorted(snap.by_device().items())],
        "files": [{"dev": dev_text(k[0]), "ino": k[1], "name": file_name(k),
                   **({"no_path": file_name.unresolved[k]}
                      if k in getattr(file_name, "unresolved", {}) else {}), **counts(c)}
                  for k, c in files[:top]],
        "other_files": max(0, len(files) - top),
        "overflow": snap.overflow,
        "window_pages_hist": render.hist_json(snap.window_hist),
        "efficiency": efficiency_json(snap, efficiency_problem, device_name),
        "efficiency_note": (EFFICIENCY_MEANING if snap.usage is not None
                            else efficiency_problem),
    }
    if snap.cgroups is not None:
        from ..workloads import GROUPINGS
        ordered = _busiest_workloads(snap, workloads, by)
        out["workloads"] = [{**dict(zip(GROUPINGS[by], key)), **counts(c)}
                            for key, c in ordered[:top]]
        out["other_workloads"] = max(0, len(ordered) - top)
    return out


def readahead_event_line(e: dict, device_name: Callable[[int], str]) -> str:
    return (f"{e['ts_ns'] / 1e9:14.6f} {e['pid']:>7} {e['comm']:<16.16} {e['event']:<7} "
            f"{e['kind']:<6} {device_name(e['dev']):<6} {e['ino']:>10} {e['index']:>8} "
            f"{e['size']:>5} {e['async_size']:>5}")


READAHEAD_EVENT_HEADER = (f"{'TIME(s)':>14} {'PID':>7} {'COMM':<16} {'EVENT':<7} {'KIND':<6} "
                          f"{'DEV':<6} {'INODE':>10} {'INDEX':>8} {'SIZE':>5} {'ASYNC':>5}")


def run_trace(reader: Readahead, session, device_name: Callable[[int], str]) -> None:
    """--trace: events as they come, for interval*count seconds or until Ctrl-C."""
    lost = [0]

    def on_event(event):
        session.emit(event if session.as_json else readahead_event_line(event, device_name))

    def on_lost(n):
        lost[0] += n

    reader.open_trace(on_event, on_lost)
    deadline = (time.monotonic() + session.interval * session.count
                if session.count else None)
    try:   # from the banner on, Ctrl-C ends the trace cleanly
        session.announce(reader.program)
        if not session.as_json:
            session.emit(READAHEAD_EVENT_HEADER)
        while deadline is None or time.monotonic() < deadline:
            reader.poll(100)
        reader.poll(0)
    except KeyboardInterrupt:
        pass
    if lost[0]:
        click.echo(f"{lost[0]} events lost: the perf buffer was full", err=True)


# ------------------------------------------------------------------ exporter

READAHEAD_COUNTERS = (   # (metric, field of Counts, help)
    ("readahead_requests", "requests", "Readahead requests (sync: cache miss; async: "
     "PG_readahead marker hit; forced: fadvise/madvise/readahead(2))."),
    ("readahead_requested_pages", "req_pages", "Pages the readers asked for in those requests."),
    ("readahead_windows", "windows", "Readahead windows submitted for reading."),
    ("readahead_pages", "pages", "Pages in the submitted readahead windows."),
)
# Window sizes in pages: slot k holds [2^(k-1), 2^k - 1]; buckets up to
# 2^16 - 1 pages (256 MiB of 4 KiB pages).
WINDOW_LAST_SLOT = 16


def readahead_families(snapshot: Optional[ReadaheadSnapshot], collector) -> list:
    """readahead_*_total{kind, device}, and the window-size histogram. Devices
    beyond the cap are summed into device="~other" (per kind)."""
    from prometheus_client.core import CounterMetricFamily
    from ..families import counters, histogram_family
    from ..series import fold, label_value
    families = [CounterMetricFamily(name, doc, labels=["kind", "device"])
                for name, _, doc in READAHEAD_COUNTERS]
    hist = histogram_family("readahead_window_pages", "Readahead window sizes, in pages.",
                            snapshot.window_hist if snapshot is not None else None, 1,
                            WINDOW_LAST_SLOT)
    if snapshot is not None:
        cells, folded = fold(collector.cap, (
            ((label_value(collector.device(dev)),), (kind,), counts)
            for (dev, kind), counts in snapshot.devices.items()),
            weight=lambda c: c.pages + c.requests)
        ordered = sorted(((kind, name), counts) for (name, kind), counts in cells.items())
        ordered.sort(key=lambda kv: KINDS.index(kv[0][0]))
        for family, (_, attr, _) in zip(families, READAHEAD_COUNTERS):
            for (kind, name), counts in ordered:
                family.add_metric([kind, name], getattr(counts, attr))
        collector.stats.record_folded("readahead", folded)
    return families + [hist] + counters(READAHEAD_SCALARS, snapshot)


READAHEAD_SCALARS = (   # unlabelled counters: (name, help, value of a snapshot)
    ("readahead_map_full", "Readahead events whose device found the map full.",
     lambda s: s.overflow),
)


USAGE_COUNTERS = (
    ("readahead_tracked_pages", "added", "Pages read ahead and followed to their first use "
     "or eviction (--readahead-efficiency)."),
    ("readahead_used_pages", "used", "Of the pages followed, those reached by a read or "
     "mapped by a page fault."),
    ("readahead_dropped_pages", "dropped", "Of the pages followed, those that left the page "
     "cache unused."),
    ("readahead_untracked_pages", "untracked", "Pages read ahead but not followed: the "
     "pending-page map was full."),
)


def readahead_efficiency_families(snapshot: Optional[ReadaheadSnapshot], collector) -> list:
    """readahead_{tracked,used,dropped,untracked}_pages_total{device}, where
    the kernel lets them be measured (absent otherwise, never zeros)."""
    from prometheus_client.core import CounterMetricFamily
    families = [CounterMetricFamily(name, doc, labels=["device"])
                for name, _, doc in USAGE_COUNTERS]
    if snapshot is not None and snapshot.usage is not None:
        for family, (_, attr, _) in zip(families, USAGE_COUNTERS):
            for dev, usage in sorted(snapshot.usage.items()):
                family.add_metric([collector.device(dev)], getattr(usage, attr))
    return families


def readahead_pod_families(snapshot: Optional[ReadaheadSnapshot], collector) -> list:
    """readahead_pod_pages_total{kind, namespace, pod} (--readahead-by pod):
    pages read ahead for each pod's reads; pods beyond the cap (pod_cap) in
    ~other."""
    from prometheus_client.core import CounterMetricFamily
    from ..series import OTHER, fold
    family = CounterMetricFamily("readahead_pod_pages", "Pages read ahead by kind, for "
                                 "the reads of each pod.", labels=["kind", "namespace", "pod"])
    if snapshot is not None:
        series, cap = collector.cgroup_series("pod"), collector.pod_cap
        totals: Dict[int, int] = {}
        for (cgroup_id, _), c in (snapshot.cgroups or {}).items():
            totals[cgroup_id] = totals.get(cgroup_id, 0) + c.pages
        live = series.sweep(series.group(totals), cap)
        alive_ids = {i for _, ids in live.values() for i in ids}
        cells, _ = fold(cap, ((series.label_of(cgroup_id)[:2], (kind,), c.pages)
                              for (cgroup_id, kind), c in (snapshot.cgroups or {}).items()
                              if cgroup_id in alive_ids), weight=lambda pages: pages)
        rows = {(key[2],) + key[:2]: pages for key, pages in cells.items()}
        if cap.retired:
            key = (KINDS[0], OTHER, OTHER)
            rows[key] = rows.get(key, 0) + cap.retired
        for key, pages in sorted(rows.items()):
            family.add_metric(list(key), pages)
    return [family]


# ---------------------------------------------------------------------- spec

class ReadaheadTool(Tool):
    name = "readahead"
    command = "readahead-stats"
    summary = "page cache readahead: requests, windows, pages per device and file"
    description = """Show page cache readahead: sync and async requests, the windows the
    kernel submitted and their pages, per device, per file and (--by) per
    pod or container, with a log2 histogram of window sizes, and its
    efficiency: of the pages read ahead, how many were used, how many left
    the cache unused.

    Uses the readahead tracepoints (Linux 6.18+) where they exist, else
    fentry, else kprobes on the readahead functions of this kernel. Files are
    named by a path: of a process's open file, else found from the inode by
    a file handle (needs CAP_DAC_READ_SEARCH); else major:minor:inode, and
    -v says why. Efficiency needs the filemap tracepoints
    (mm_filemap_get_pages and others), else fexit on filemap_read,
    filemap_fault and filemap_map_pages; where the kernel has neither, the
    output says what is missing.
    """
    examples = """\b
Examples:
  readahead-stats             # readahead per kind, device, file every 5 s
  readahead-stats 1 3         # every second, three times
  readahead-stats -d vda      # one block device (name, /dev path or 254:0)
  readahead-stats -p 1234     # readahead done by process 1234
  readahead-stats --trace     # one line per readahead event
  readahead-stats --json 1 5  # one JSON object per interval
  readahead-stats --no-efficiency  # skip the per-page hooks
  readahead-stats --by pod    # also pages per Kubernetes pod
"""
    options = (
        device_option("Only this block device (vda, /dev/vda or 254:0)."),
        pid_option("Only readahead by this process."),
        top_option("Files (and pods or containers) shown, most pages first."),
        click.option("-b", "--by", type=click.Choice(["pod", "container"]),
                     help="Also show readahead per Kubernetes pod or container."),
        click.option("--trace", is_flag=True, help="Print each readahead event instead of totals."),
        click.option("--efficiency/--no-efficiency", default=True, show_default=True,
                     help="Follow each page read ahead to its first use or its eviction "
                          "(costs a map lookup per buffered read and page fault: ~110 ns "
                          "per buffered read on a 6.18 VM, scripts/bench-vfsread)."),
    )

    order_reason = ORDER_REASON

    def plan(self, opts=None):
        return plan()

    def cflags(self, opts):
        return cflags(os.uname().release, opts.get("device"), opts.get("pid"),
                      opts.get("trace", False), files=opts.get("files", True),
                      by_cgroup=opts.get("by") is not None)

    def features(self, opts):
        return [kernel_efficiency_feature()] if self._efficiency(opts) else []

    @staticmethod
    def _efficiency(opts) -> bool:
        return bool(opts.get("efficiency")) and not opts.get("trace")

    def open(self, opts, mode="auto"):
        return Readahead(opts["device"], opts["pid"], opts["trace"], mode,
                         efficiency=self._efficiency(opts), by=opts["by"])

    def delta(self, cur, prev):
        return delta(cur, prev)

    def run(self, reader, session):
        if session.opts["trace"]:
            run_trace(reader, session, reader.devices)
        else:
            session.intervals(reader)

    def text(self, shown, view: View) -> str:
        r = view.reader
        return readahead_text(shown, view.label, shown.elapsed, view.opts["top"], r.devices,
                              r.files, view.clock, r.efficiency_problem, r.workloads,
                              view.opts["by"], r.files.unresolved if view.verbose else None)

    def json(self, shown, view: View) -> dict:
        r = view.reader
        return readahead_json(shown, view.probe, shown.elapsed, view.opts["top"], r.devices,
                              r.files, view.when, r.efficiency_problem, r.workloads,
                              view.opts["by"])

    exporter_options = (
        click.option("--readahead-by", "readahead_by", type=click.Choice(["device", "pod"]),
                     default="device", show_default=True,
                     help="device: readahead_*_total by device; pod: also "
                          "readahead_pod_pages_total by namespace and pod."),
        click.option("--readahead-efficiency", "readahead_efficiency", is_flag=True,
                     help="Also follow each page read ahead to its first use or eviction "
                          "(readahead_{tracked,used,dropped,untracked}_pages_total); costs a "
                          "map lookup per buffered read and page fault: ~110 ns per "
                          "buffered read on a 6.18 VM (scripts/bench-vfsread)."),
    )

    def exporter_open(self, opts, mode="auto"):
        return Readahead(files=False, mode=mode,
                         by="pod" if opts.get("by") == "pod" else None,
                         efficiency=bool(opts.get("efficiency")))

    def families(self, snapshot, collector):
        families = readahead_families(snapshot, collector)
        if collector.opts.get("efficiency"):
            families += readahead_efficiency_families(snapshot, collector)
        if collector.opts.get("by") == "pod":
            families += readahead_pod_families(snapshot, collector)
        return families


TOOL = ReadaheadTool()
