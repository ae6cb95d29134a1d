"""readahead: requests, windows and pages read ahead, per device and file."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, fields
from typing import Callable, Dict, List, Optional, Tuple

from ..hist import SLOTS, Log2Hist
from .base import LoadedTool
from ..probes import Candidate, Facts, Hook, hook_problem

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


@dataclass(frozen=True)
class EfficiencyPlan:
    defines: Tuple[str, ...] = ()
    hooks: Tuple[Hook, ...] = ()
    problem: Optional[str] = None      # set: efficiency cannot be measured, and why


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
                    fexit_problem: Callable[[str], Optional[str]]) -> EfficiencyPlan:
    """How readahead efficiency can be measured here: the page tracepoints,
    with the use tracepoints or else fexit on the use functions.
    fields_of(name): a tracepoint's field names, None if absent;
    fexit_problem(function): why fexit cannot hook it, or None."""
    lacks = _missing(PAGE_TRACEPOINTS, fields_of)
    page_hooks = tuple(Hook("tracepoint", name) for name in PAGE_TRACEPOINTS)
    if not lacks:
        no_tracepoints = _missing(USE_TRACEPOINTS, fields_of)
        if not no_tracepoints:
            return EfficiencyPlan(("-DEFFICIENCY", "-DUSE_TRACEPOINTS"), page_hooks +
                                  tuple(Hook("tracepoint", name) for name in USE_TRACEPOINTS))
        no_fexit = [f"fexit {fn}: {p}" for fn in USE_FUNCTIONS for p in [fexit_problem(fn)] if p]
        if not no_fexit:
            return EfficiencyPlan(("-DEFFICIENCY", "-DUSE_FEXIT"), page_hooks +
                                  tuple(Hook("fexit", fn) for fn in USE_FUNCTIONS))
        lacks = no_tracepoints + no_fexit[:1]
    return EfficiencyPlan(problem="readahead efficiency (pages read ahead but never used) is "
                                  "not measured: this kernel lacks " + "; ".join(lacks))

KINDS = ("sync", "async", "forced")
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


def plan() -> List[Candidate]:
    """The 6.18 tracepoints first (stable, static), else fentry, else kprobes,
    each on whichever readahead functions this kernel has (they were renamed
    across 5.10-5.18)."""
    return [
        Candidate("tracepoint", "readahead via tracepoints", "PROBE_TRACEPOINT",
                  tuple(Hook("tracepoint", f"readahead:{n}") for n in TRACEPOINTS)),
        Candidate("fentry", "readahead via fentry", "PROBE_FENTRY",
                  tuple(Hook("fentry", fn, define=f"HOOK_{fn}") for fn in FENTRY_FUNCTIONS),
                  any_of=True),
        Candidate("kprobe", "readahead via kprobes", "PROBE_KPROBE",
                  tuple(Hook("kprobe", fn, handler, f"HOOK_{fn}")
                        for fn, handler in KPROBE_FUNCTIONS), any_of=True),
    ]


def kernel_version_code(release: str) -> int:
    """0xMMmmpp from a release string like '6.1.0-13-amd64'."""
    parts = (release.split("-", 1)[0].split(".") + ["0", "0"])[:3]
    nums = [int("".join(ch for ch in p if ch.isdigit()) or 0) for p in parts]
    return nums[0] << 16 | min(nums[1], 255) << 8 | min(nums[2], 255)


def kernel_dev(major: int, minor: int) -> int:
    """The kernel's internal dev_t (what tracepoints report): major << 20 | minor."""
    return major << 20 | minor


def split_kernel_dev(dev: int) -> Tuple[int, int]:
    return dev >> 20, dev & 0xFFFFF


def cflags(release: str, dev: Optional[int] = None, pid: Optional[int] = None,
           trace: bool = False, max_files: int = 10240, files: bool = True) -> List[str]:
    flags = [f"-DKERNEL_VERSION_CODE={kernel_version_code(release):#x}",
             f"-DMAX_FILES={max_files}"]
    if not files:
        flags.append("-DNO_FILES")
    if dev is not None:
        flags.append(f"-DFILTER_DEV={dev}")
    if pid is not None:
        flags.append(f"-DFILTER_PID={pid}")
    if trace:
        flags.append("-DTRACE")
    return flags


class Tally:
    """Field-wise + and - for frozen dataclasses of counters; true when any
    counter is not zero."""

    def _values(self) -> List[int]:
        return [getattr(self, f.name) for f in fields(self)]

    def __add__(self, o):
        return type(self)(*(a + b for a, b in zip(self._values(), o._values())))

    def __sub__(self, o):
        return type(self)(*(a - b for a, b in zip(self._values(), o._values())))

    def __bool__(self) -> bool:
        return any(self._values())


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
FileKey = Tuple[int, int]    # (kernel dev, inode)


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


def _diff(cur: dict, prev: dict, zero: Tally = Counts()) -> dict:
    """cur - prev per key, keys whose difference is zero left out."""
    out = {}
    for key, value in cur.items():
        d = value - prev.get(key, zero)
        if d:
            out[key] = d
    return out


def delta(cur: ReadaheadSnapshot, prev: ReadaheadSnapshot) -> ReadaheadSnapshot:
    usage = (None if cur.usage is None or prev.usage is None
             else _diff(cur.usage, prev.usage, Usage()))
    return ReadaheadSnapshot(_diff(cur.devices, prev.devices), _diff(cur.files, prev.files),
                             cur.window_hist - prev.window_hist, cur.overflow - prev.overflow,
                             cur.taken_at, cur.taken_at - prev.taken_at, usage,
                             cur.unused_now)


# ----------------------------------------------------------- names for numbers

def parse_uevent_devname(text: str) -> Optional[str]:
    for line in text.splitlines():
        if line.startswith("DEVNAME="):
            return line.split("=", 1)[1]
    return None


def device_name(dev: int, sys_root: str = "/sys/dev/block") -> str:
    """'vda' for a block device, else 'major:minor' (tmpfs, overlay, NFS...)."""
    major, minor = split_kernel_dev(dev)
    try:
        with open(f"{sys_root}/{major}:{minor}/uevent") as f:
            name = parse_uevent_devname(f.read())
    except OSError:
        name = None
    return name or f"{major}:{minor}"


def find_open_path(dev: int, ino: int, proc: str = "/proc") -> Optional[str]:
    """A path to the file (dev, ino) if some process has it open: a cheap
    look through /proc/*/fd, never a walk of the filesystem."""
    major, minor = split_kernel_dev(dev)
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        fd_dir = f"{proc}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(f"{fd_dir}/{fd}")
                if st.st_ino == ino and os.major(st.st_dev) == major and os.minor(st.st_dev) == minor:
                    return os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
    return None


class FileNames:
    """Cached names for (dev, ino): a path where one was found, else dev:inode."""

    def __init__(self, finder: Callable[[int, int], Optional[str]] = find_open_path):
        self.finder = finder
        self.cache: Dict[FileKey, str] = {}

    def __call__(self, key: FileKey) -> str:
        if key not in self.cache:
            dev, ino = key
            major, minor = split_kernel_dev(dev)
            self.cache[key] = self.finder(dev, ino) or f"{major}:{minor}:{ino}"
        return self.cache[key]


# ---------------------------------------------------------------- the reader

class Readahead(LoadedTool):
    source = "readahead.c"

    def __init__(self, dev: Optional[int] = None, pid: Optional[int] = None,
                 trace: bool = False, mode: str = "auto", files: bool = True,
                 efficiency: bool = False):
        from .. import system
        from ..loader import load, prepare
        self.trace = trace
        flags = cflags(os.uname().release, dev, pid, trace, files=files)
        if efficiency:
            env = prepare()
            eff = efficiency_plan(lambda name: system.tracepoint_fields(env.tracefs, name),
                                  fexit_problem(env.facts))
        else:
            eff = EfficiencyPlan(problem="readahead efficiency was not asked for")
        self.efficiency_problem = eff.problem
        self.program = load(self.source, plan(), flags + list(eff.defines), mode, eff.hooks)

    def snapshot(self) -> ReadaheadSnapshot:
        devices = {(k.dev, KINDS[k.kind]): Counts(v.requests, v.req_pages, v.windows, v.pages)
                   for k, v in self.program.table("readahead_devices").items()}
        files = {(k.dev, k.ino): Counts(v.requests, v.req_pages, v.windows, v.pages)
                 for k, v in self.program.table("readahead_files").items()}
        slots = [0] * SLOTS
        for k, per_cpu in self.program.table("readahead_window_pages_hist").items():
            slots[k.value] = sum(per_cpu)
        overflow = self.program.table("readahead_overflow")
        usage = None
        if self.efficiency_problem is None:
            usage = {k.value: Usage(v.added, v.used, v.dropped, v.untracked)
                     for k, v in self.program.table("readahead_usage").items()}
        return ReadaheadSnapshot(devices, files, Log2Hist(tuple(slots), 1, 0, "pages"),
                                 int(overflow[0].value), time.monotonic(), 0.0, usage,
                                 {d: u.unused_now for d, u in (usage or {}).items()})

    def open_trace(self, callback: Callable[[dict], None], lost: Callable[[int], None]):
        """Call callback(event dict) per event; lost(n) when the buffer dropped n."""
        table = self.program.table("readahead_events")

        def on_event(cpu, data, size):
            e = table.event(data)
            callback({"ts_ns": e.ts, "pid": e.pid,
                      "comm": bytes(e.comm).split(b"\0", 1)[0].decode(errors="replace"),
                      "event": ("request" if e.hook < 2 else "window"),
                      "kind": KINDS[e.kind], "dev": e.dev, "ino": e.ino, "index": e.index,
                      "size": e.size, "async_size": e.async_size})

        table.open_perf_buffer(on_event, page_cnt=64, lost_cb=lost)

    def poll(self, timeout_ms: int) -> None:
        self.program.bpf.perf_buffer_poll(timeout=timeout_ms)
