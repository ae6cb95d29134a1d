"""oomkill: each process the kernel's OOM killer kills, in which pod, with
what memory, whether a cgroup's limit or the machine ran out, and which
task's allocation set it off; counted per pod."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional

import click

from ... import cdefs, events
from ...escape import escape
from ...kernel import tracepoint_fields
from ...maps import items
from ...options import buffer_pages_option
from ...probes import Candidate, Hook
from ...structs import Enumerator, Field
from ...tool import Names, Tool, View
from ...tracing import session_deadline
from ...workloads import Workloads, pod_log_root
from ..base import CgroupKeyed, load
from .output import CONSTRAINTS, Cell, OomSnapshot, counts_json, counts_table, delta, oom_families
from .trace import run_trace

KEY_KINDS = ("comm", "pid", "cgroup", "pod", "container")
SHARED = {**cdefs.enum("CONSTRAINT", CONSTRAINTS),
          # A page counter this close to its limit is the limit that ran
          # out: a charge fails when usage + its pages > max, and a charge is
          # at most a PMD-sized folio (512 pages of 4 KiB).
          "MEMCG_MARGIN_PAGES": 512,
          "MEMCG_LEVELS": 8,            # memory cgroups walked up from the victim's
          "CGROUP_LEVELS": 16}          # cgroup v2 levels walked up for --cgroup
DEFAULT_MAX_KEYS = 10240


@dataclass(frozen=True)
class OomKillOptions:
    """The command's options (the exporter's: exporter_open), built once."""
    by: str = "pod"
    buffer_pages: int = events.DEFAULT_PAGES
    trace: bool = True           # False (the exporter): counts only, no events
    cgroup_keys: bool = False    # True (the exporter): counts by cgroup only
    max_keys: int = DEFAULT_MAX_KEYS
    ringbuf: bool = True         # False (tests): the perf buffer, as before 5.8
TRACEFS = "/sys/kernel/tracing"
MARK_VICTIM = "oom:mark_victim"
# mark_victim's fields by kernel (6.8+ has them all; 6.1: pid only): the
# macro that compiles in the reading of each group, where all are there.
FORMAT_FIELDS = {"MV_COMM": ("comm",),
                 "MV_RSS": ("total_vm", "anon_rss", "file_rss", "shmem_rss", "pgtables"),
                 "MV_ADJ": ("oom_score_adj",), "MV_UID": ("uid",)}
FIELDS = (
    Field("TASK_PID", "task_struct->pid"),
    Field("TASK_TGID", "task_struct->tgid"),
    Field("TASK_COMM", "task_struct->comm"),
    Field("TASK_CGROUP", "task_struct->cgroups->dfl_cgrp"),
    Field("TASK_SUBSYS", "task_struct->cgroups->subsys"),
    Field("TASK_OOM_ADJ", "task_struct->signal->oom_score_adj"),
    Field("CGROUP_SELF", "cgroup->self"),
    Field("CGROUP_PARENT", "cgroup->self.parent"),
    Field("CGROUP_ID", "cgroup->kn->id"),
    Enumerator("MEMORY_CGRP_ID", "memory_cgrp_id"),
    Field("MEMCG_CSS", "mem_cgroup->css"),
    Field("MEMCG_MEMORY", "mem_cgroup->memory"),
    Field("PC_USAGE", "page_counter->usage"),
    Field("PC_MAX", "page_counter->max"),
    Field("PC_PARENT", "page_counter->parent"),
)
ORDER_REASON = (
    "the raw signal_generate tracepoint first: the OOM killer's SIGKILL hands over the "
    "victim's task, so its own cgroup (pod) and memory cgroup limit are read; mark_victim "
    "alone runs in the triggering task and names the victim by pid only")


def plan() -> List[Candidate]:
    victim = Hook("tracepoint", MARK_VICTIM)
    return [
        Candidate("raw_tracepoint", "OOM kills via mark_victim and the kernel's SIGKILL",
                  "PROBE_RAW_TRACEPOINT",
                  (victim, Hook("raw_tracepoint", "signal:signal_generate")),
                  reads_structs=True, fields=FIELDS),
        Candidate("tracepoint", "OOM kills via mark_victim", "PROBE_TRACEPOINT", (victim,),
                  note="the victim's cgroup and the constraint are not known: kills are "
                       "counted as not attributed"),
    ]


def format_flags(fields: Optional[Iterable[str]]) -> List[str]:
    """-DMV_<GROUP> for each group of mark_victim fields this kernel's
    format has (None: the format could not be read, none)."""
    have = set(fields or ())
    return [f"-D{macro}" for macro, names in FORMAT_FIELDS.items() if have.issuperset(names)]


def mark_victim_fields(tracefs: str = TRACEFS) -> Optional[frozenset]:
    return tracepoint_fields(tracefs, MARK_VICTIM)


def cflags(trace: bool = True, cgroup_keys: bool = False, max_keys: int = DEFAULT_MAX_KEYS,
           pages: int = events.DEFAULT_PAGES, fields: Optional[Iterable[str]] = None) -> List[str]:
    if max_keys < 1:
        raise ValueError("max_keys must be at least 1")
    flags = cdefs.flags(SHARED) + events.page_flags(pages) + [f"-DMAX_KEYS={max_keys}"]
    flags += format_flags(fields)
    if trace:
        flags.append("-DTRACE")
    if cgroup_keys:
        flags.append("-DCGROUP_KEYS")
    return flags


class OomKillReader(CgroupKeyed):
    """Loads bpf/oomkill.c and reads its count map into OomSnapshots."""
    count_map = "oomkill_total"

    def __init__(self, options: Optional[OomKillOptions] = None, mode: str = "auto",
                 **fields):
        """`fields`: the options' fields, where no `options` are given."""
        options = options or OomKillOptions(**fields)
        self.pages = options.buffer_pages
        self.program = load(TOOL, options, mode)
        self.names = Names(workloads=Workloads(log_root=pod_log_root()))

    def snapshot(self) -> OomSnapshot:
        counts: Dict[Cell, int] = {}
        for raw, value in items(self.program.table("oomkill_total")):
            constraint = CONSTRAINTS[raw.constraint] if raw.constraint < len(CONSTRAINTS) \
                else str(raw.constraint)
            cell = (int(raw.cgroup_id), int(raw.tgid),
                    escape(bytes(raw.comm).split(b"\0", 1)[0]), constraint, bool(raw.attributed))
            counts[cell] = counts.get(cell, 0) + int(value)
        return OomSnapshot(counts, int(self.program.table("oomkill_overflow")[0].value),
                           time.monotonic())


class OomKillTool(Tool):
    name = "oomkill"
    order = 70
    command = "oomkill"
    summary = "each OOM kill: victim, its pod, memory, cgroup limit or machine, and trigger"
    description = """Print each process the kernel's OOM killer kills, as it happens:
    the victim's pid and command, its namespace/pod/container, its memory at
    the kill (anon, file and shmem RSS, where the kernel's mark_victim
    tracepoint carries them: 6.8+), its oom_score_adj, whether a memory
    cgroup's limit ran out (memcg, with the limit) or the whole machine
    (global), and the task whose allocation triggered the kill. When it
    ends (Ctrl-C, or INTERVAL x COUNT seconds), the kills counted per pod
    (--by).

    Tracepoints only (no kprobe on oom_kill_process): the victim's task,
    and so its cgroup, is read from the SIGKILL the OOM killer sends it
    (the raw signal_generate tracepoint). A kill whose victim could not be
    read so is shown and counted as [not attributed], never dropped.
    --cgroup keeps the kills whose victim is in that subtree. Events the
    buffer could not take are counted in the kernel and shown as
    "[N events lost]".
    """
    examples = """\b
Examples:
  oomkill                      # each OOM kill; kills per pod at Ctrl-C
  oomkill --json               # one JSON object per kill, then the counts
  oomkill --by pid             # counts per process at the end
  oomkill --cgroup /kubepods.slice 60 1   # kills in pods, for a minute
"""
    default_interval = 1.0
    order_reason = ORDER_REASON
    options = (
        click.option("--by", type=click.Choice(KEY_KINDS), default="pod",
                     show_default=True, help="What the counts at the end are by."),
        buffer_pages_option(),
    )
    exporter_options = ()

    Options = OomKillOptions
    delta = staticmethod(delta)
    families = staticmethod(oom_families)

    @staticmethod
    def plan(options=None):
        return plan()

    @staticmethod
    def cflags(options):
        return cflags(options.trace, options.cgroup_keys, options.max_keys,
                      options.buffer_pages, mark_victim_fields())

    @staticmethod
    def features(options):
        return events.stream_features(options.trace, options.ringbuf)

    def options_of(self, params):
        events.checked_pages(params.get("buffer_pages", events.DEFAULT_PAGES))
        return super().options_of(params)

    def open(self, options, mode="auto"):
        return OomKillReader(options, mode)

    def cumulative(self, options):
        return True

    def run(self, reader, session):
        run_trace(reader, session, session_deadline(session))

    def text(self, shown, view: View) -> str:
        return counts_table(shown, view.opts.by, view.names.workloads)

    def json(self, shown, view: View) -> dict:
        return {"time": view.when, **counts_json(shown, view.opts.by, view.names.workloads),
                "probe": view.probe}

    def exporter_open(self, opts, mode="auto"):
        # Counts by cgroup only, no events: the map is bounded by pods.
        return OomKillReader(OomKillOptions(trace=False, cgroup_keys=True), mode)

TOOL = OomKillTool()
