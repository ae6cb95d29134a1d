"""biolatency: the probe plan, the compile flags and the constants shared with bpf/biolatency.c."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from ... import cdefs
from ...hist import slot_flags
from ...probes import Candidate, Hook
from ...structs import Enumerator, Field
from ...kernel import kernel_version_code


OPS = ("read", "write", "flush", "discard", "other")   # the op codes, in this order
OP_SYNC = 8                                            # or'ed into the op: REQ_SYNC
UNTIMED = ("unmatched", "flush", "map_full")           # biolatency_untimed's indices
# What bpf/biolatency.c takes from here (pytools/cdefs.py): passed as -D flags.
SHARED = {**cdefs.enum("OP", OPS), "OP_SYNC": OP_SYNC, **cdefs.enum("UNTIMED", UNTIMED),
          "UNTIMED_COUNT": len(UNTIMED)}
DEFAULT_MAX_KEYS = 1024



@dataclass(frozen=True)
class BioLatencyOptions:
    """The command's options (the exporter's: exporter_open), built once."""
    unit: str = "usecs"
    by: Optional[str] = None       # --by as given; by_device and by_op say what it means
    by_device: bool = False        # -D, or disk in --by
    by_op: bool = False            # -F, or op in --by
    top: int = 10
    histograms: bool = False
    queued: bool = False
    device: Optional[int] = None   # -d: only this disk (a kernel dev)


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


def plan_of(options: Optional[BioLatencyOptions] = None) -> List[Candidate]:
    return plan((options or BioLatencyOptions()).queued)


def cflags_of(options: BioLatencyOptions) -> List[str]:
    return cflags(options.unit, options.by_device, options.by_op, options.queued,
                  options.device)
