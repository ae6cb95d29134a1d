"""tcpretrans: TCP retransmitted segments, SYN retransmits and resets by
the pod that owns the socket (not the task on the CPU), counted in the
kernel's own unit; --trace prints each one."""

from __future__ import annotations

import ctypes
import errno
import os
import time
from dataclasses import dataclass
from typing import List, Optional

import click

from ... import cdefs, events, tracing
from ...kernel import find_tracefs
from ...maps import items
from ...names import c_string
from ...options import buffer_pages_option, max_keys_option, pid_option
from ...probes import Candidate, Hook
from ...structs import Field
from ...tool import Names, Tool, View
from ...workloads import Workloads, pod_log_root
from ..base import CgroupKeyed, load
from .output import (BY_KINDS, KINDS, Counts, OwnerMap, TcpSnapshot, delta, only_cgroups,
                     tcp_families, tcp_json, tcp_text)
from .trace import HEADER, tracer

SHARED = {**cdefs.enum("KIND", KINDS), "KINDS": len(KINDS),
          **cdefs.enum("SIDE", ("remote", "local"), first=1),
          "STATE_SYN_SENT": 2, "STATE_SYN_RECV": 3,      # include/net/tcp_states.h
          "STATE_CLOSE": 7, "STATE_LISTEN": 10,
          "OWNER_OVERFLOW": len(KINDS) + 1,             # tcp_totals' slot after map_full
          **{f"{name}_": getattr(errno, name) for name in
             ("EBUSY", "EAGAIN", "ENOMEM", "EHOSTUNREACH")}}
DEFAULT_MAX_KEYS = 10240
MAX_KEYS_LIMIT = 1 << 20
DEFAULT_MAX_SOCKETS = 65536
MAX_SOCKETS_LIMIT = 1 << 22
HOOKS = ("tcp_retransmit_skb", "tcp_retransmit_synack", "tcp_send_reset", "tcp_receive_reset")
# The per-socket owner map's hooks (OWNER_PID): only for --by pid and -p;
# an accepted socket's owner at accept (kretprobe) where kprobes are, else
# at its first read (a raw tracepoint on every read).
OWNER_HOOKS = ("sock:inet_sock_set_state", "tcp:tcp_destroy_sock")
ACCEPT_KRETPROBE = Hook("kretprobe", "inet_csk_accept", "owner_accept")
FIRST_READ = Hook("raw_tracepoint", "tcp:tcp_rcv_space_adjust")

# What the program reads of a socket and an skb (bpf/tcp.c's
# `// btf:` line), placed from the kernel's BTF where the headers are not
# its own. sk_cgrp_data.cgroup: 5.15+ (a `val` word before, not read).
FIELDS = (
    Field("SK_CGROUP", "sock->sk_cgrp_data.cgroup->kn->id"),
    Field("SK_FAMILY", "sock->__sk_common.skc_family"),
    Field("SK_STATE", "sock->__sk_common.skc_state"),
    Field("SK_DADDR", "sock->__sk_common.skc_daddr"),
    Field("SK_SADDR", "sock->__sk_common.skc_rcv_saddr"),
    Field("SK_DPORT", "sock->__sk_common.skc_dport"),
    Field("SK_NUM", "sock->__sk_common.skc_num"),
    Field("SK_V6_DADDR", "sock->__sk_common.skc_v6_daddr"),
    Field("SK_V6_SADDR", "sock->__sk_common.skc_v6_rcv_saddr"),
    Field("SKB_CB", "sk_buff->cb"),
    Field("TCB_SEGS", "tcp_skb_cb->tcp_gso_segs"),
)

ATTRIBUTION = (
    "Each count is the socket owner's: the cgroup the socket was made in "
    "(an accepted socket: its listener's), read from the socket itself, never the "
    "task on the CPU, which for a retransmit from a timer or softirq is whoever ran "
    "there. A reset sent for no socket has no owner: shown apart, never dropped.")
PID_NOTE = (
    "With --by pid or -p the process too, from a map of sockets filled where their "
    "owner runs: connect(), listen(), and accept() where the kernel has kprobes, "
    "else an accepted socket's first read; a socket opened before the tool started "
    "(or, without kprobes, accepted and never read from) has no known process and is "
    "shown apart as [process not known].")


@dataclass(frozen=True)
class TcpOptions:
    """The command's options (the exporter's: exporter_open), built once."""
    by: str = "pod"
    pid: Optional[int] = None
    top: int = 10
    trace: bool = False
    max_keys: int = DEFAULT_MAX_KEYS
    max_sockets: int = DEFAULT_MAX_SOCKETS
    buffer_pages: int = events.DEFAULT_PAGES

    @property
    def owners(self) -> bool:
        """Whether the per-socket owner map (and its hooks, one on the read
        path) is loaded: for --by pid and -p only."""
        return self.by == "pid" or self.pid is not None


def plan(owners: bool = False) -> List[Candidate]:
    hooks = tuple(Hook("raw_tracepoint", f"tcp:{h}") for h in HOOKS)
    if not owners:
        return [Candidate("raw_tracepoint", "TCP raw tracepoints", "PROBE_RAW_TRACEPOINT",
                          hooks, reads_structs=True, fields=FIELDS)]
    hooks += tuple(Hook("raw_tracepoint", h) for h in OWNER_HOOKS)
    return [Candidate("kprobe", "TCP raw tracepoints, accepts via kretprobe",
                      "PROBE_ACCEPT_KRETPROBE", hooks + (ACCEPT_KRETPROBE,),
                      reads_structs=True, fields=FIELDS,
                      note="an accepted socket's process learnt at accept(): nothing on reads"),
            Candidate("raw_tracepoint", "TCP raw tracepoints", "PROBE_RAW_TRACEPOINT",
                      hooks + (FIRST_READ,), reads_structs=True, fields=FIELDS,
                      note="an accepted socket's process learnt at its first read")]


def retransmit_has_err(tracefs: Optional[str]) -> bool:
    """Whether tcp_retransmit_skb's record has `err` (6.9+: it then fires
    for failed retransmits too, some never counted by the kernel)."""
    try:
        with open(os.path.join(tracefs or "/sys/kernel/tracing", "events", "tcp",
                               "tcp_retransmit_skb", "format")) as f:
            return " err;" in f.read()
    except OSError:
        return False


def cflags(options: TcpOptions, with_err: bool = False) -> List[str]:
    """`with_err`: tcp_retransmit_skb's record has `err` (retransmit_has_err)."""
    by = options.by
    if by not in BY_KINDS:
        raise ValueError(f"unknown grouping {by!r}; choose from {', '.join(BY_KINDS)}")
    if options.max_keys < 1:
        raise ValueError("max_keys must be at least 1")
    flags = cdefs.flags(SHARED) + events.page_flags(options.buffer_pages) + [
        f"-DMAX_KEYS={options.max_keys}"]
    if by in ("remote", "local"):
        flags.append(f"-DKEY_ADDR={SHARED['SIDE_' + by.upper()]}")
    if by == "state":
        flags.append("-DKEY_STATE")
    if options.owners:
        if options.max_sockets < 1:
            raise ValueError("max_sockets must be at least 1")
        flags += ["-DOWNER_PID", f"-DMAX_SOCKETS={options.max_sockets}"]
    if by == "pid":
        flags.append("-DKEY_PID")
    if options.pid is not None:
        flags.append(f"-DFILTER_OWNER_PID={options.pid}")
    if options.trace:
        flags.append("-DTRACE")
    if with_err:
        flags.append("-DRETRANSMIT_ERR")
    return flags


class TcpEvent(ctypes.Structure):
    """bpf/tcp.c's struct tcp_event."""
    _fields_ = [("ts", ctypes.c_uint64), ("cgroup", ctypes.c_uint64),
                ("saddr", ctypes.c_uint8 * 16), ("daddr", ctypes.c_uint8 * 16),
                ("sport", ctypes.c_uint16), ("dport", ctypes.c_uint16),
                ("family", ctypes.c_uint16), ("state", ctypes.c_uint8),
                ("kind", ctypes.c_uint8), ("segs", ctypes.c_uint32),
                ("pid", ctypes.c_uint32), ("comm", ctypes.c_char * 16)]


def cgroup_filter(flags) -> Optional[int]:
    """The --cgroup filter's id among the flags every tool gets (options.py
    CgroupFilter): the kernel's filter asks about the current task, which is
    not the socket's owner here, so the subtree is told in user space."""
    for flag in flags:
        if flag.startswith("-DFILTER_CGROUP_ID="):
            return int(flag.split("=", 1)[1].rstrip("ULul"))
    return None


def in_subtree(path: Optional[str], top: Optional[str]) -> bool:
    if path is None or top is None:
        return False
    return top == "/" or path == top or path.startswith(top.rstrip("/") + "/")


def recursion_misses(program) -> int:
    """Runs of the program the kernel skipped (`recursion_misses` in each
    function's fdinfo, 5.12+): a tracepoint fired while another BPF program
    ran on that CPU (a retransmit in a softirq that interrupted one)."""
    total = 0
    for function in list(program.bpf.funcs.values()):
        fd = getattr(function, "fd", None)
        if fd is None or fd < 0:
            continue
        try:
            with open(f"/proc/self/fdinfo/{fd}") as f:
                for line in f:
                    if line.startswith("recursion_misses:"):
                        total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total


class TcpRetransReader(CgroupKeyed):
    """Loads bpf/tcp.c and reads its maps into TcpSnapshots."""
    count_map = "tcp_counts"
    cgroup_field = "cgroup"

    def __init__(self, options: Optional[TcpOptions] = None, mode: str = "auto", **fields):
        """`fields`: the options' fields, where no `options` are given."""
        # the loader only where a program is loaded: --help starts without it.
        from ...loader import _shared_cflags
        options = options or TcpOptions(**fields)
        self.pages, self.owners = options.buffer_pages, options.owners
        self.max_sockets = options.max_sockets
        self.cgroup = cgroup_filter(_shared_cflags.get())
        self.program = load(TOOL, options, mode)
        self.names = Names(workloads=Workloads(log_root=pod_log_root()))

    @staticmethod
    def event_type():
        return TcpEvent

    def snapshot(self) -> TcpSnapshot:
        counts = {}
        for raw, value in items(self.program.table("tcp_counts")):
            key = (int(raw.cgroup), int(raw.family), bytes(raw.addr), int(raw.port),
                   int(raw.state), int(raw.pid), c_string(raw.comm))
            counts[key] = Counts(*(int(value.n[i]) for i in range(len(KINDS))))
        table = self.program.table("tcp_totals")
        sums = [sum(int(v) for v in table[table.Key(i)])
                for i in range(SHARED["OWNER_OVERFLOW"] + 1)]
        owners = None
        if self.owners:    # its size: one key walk (the map is at most MAX_SOCKETS)
            owners = OwnerMap(sum(1 for _ in self.program.table("tcp_owners").keys()),
                              self.max_sockets, sums[SHARED["OWNER_OVERFLOW"]])
        snap = TcpSnapshot(counts, Counts(*sums[:len(KINDS)]), sums[len(KINDS)],
                           time.monotonic(), missed=recursion_misses(self.program),
                           owners=owners)
        if self.cgroup is not None:
            snap = only_cgroups(snap, self.allowed)
        return snap

    def allowed(self, cgroup_id: int) -> bool:
        """Whether a socket owner is in the --cgroup subtree (always, without)."""
        if self.cgroup is None:
            return True
        paths = self.names.workloads.cgroups
        return in_subtree(paths.path(cgroup_id), paths.path(self.cgroup))



class TcpRetransTool(Tool):
    name = "tcp"
    order = 80
    command = "tcpretrans"
    summary = "TCP retransmits and resets by the pod that owns the socket; --trace each"
    description = f"""TCP retransmitted segments, SYN retransmits and resets sent and
    received, by Kubernetes pod (or container, process, remote or local
    address, TCP state): who is losing packets. {ATTRIBUTION} {PID_NOTE} Retransmits are
    segments, the unit of the kernel's RetransSegs (/proc/net/snmp), SYN
    and SYN-ACK retransmits included (also shown apart); an skb that
    carries several segments (GSO) counts them all.

    Every INTERVAL seconds (default 5), COUNT times or until Ctrl-C, print
    the totals and the groups, most retransmits first. With --trace, one
    line per retransmit or reset as it happens (kinds: R retransmit, S SYN
    or SYN-ACK retransmit, RST> reset sent, RST< reset received); events the
    buffer could not take are counted and shown as "[N events lost]".
    """
    examples = """\b
Examples:
  tcpretrans                   # retransmits and resets by pod, every 5 s
  tcpretrans --by remote 1 10  # by remote address:port, every second
  tcpretrans --by state        # in which TCP state they happen
  tcpretrans --by pid          # by the process owning the socket
  tcpretrans -p 1234           # only sockets process 1234 owns
  tcpretrans --trace           # one line per retransmit or reset
  tcpretrans --cgroup /kubepods.slice --json   # one subtree, JSON
"""
    options = (
        click.option("--by", type=click.Choice(BY_KINDS), default="pod", show_default=True,
                     help="Group by the socket owner's pod, container, cgroup or "
                          "process (pid), the remote or local address:port, or the TCP "
                          "state."),
        pid_option("Only sockets this process owns (learnt at its connect, listen, "
                   "accept or first read after the tool started)."),
        click.option("--top", type=click.IntRange(min=1), default=10, show_default=True,
                     help="Groups to show, most retransmits first."),
        click.option("--trace", is_flag=True, help="Print each retransmit and reset."),
        max_keys_option(MAX_KEYS_LIMIT, DEFAULT_MAX_KEYS,
                        "events beyond it are in the totals only"),
        click.option("--max-sockets", type=click.IntRange(1, MAX_SOCKETS_LIMIT),
                     default=DEFAULT_MAX_SOCKETS, show_default=True,
                     help="Bound of the kernel's socket-to-process map (--by pid, -p); "
                          "sockets beyond it are counted and shown as [process not known]."),
        buffer_pages_option(),
    )
    exporter_options = ()
    order_reason = ""

    Options = TcpOptions
    delta = staticmethod(delta)
    families = staticmethod(tcp_families)

    @staticmethod
    def plan(options=None):
        return plan((options or TcpOptions()).owners)

    @staticmethod
    def cflags(options):
        return cflags(options, retransmit_has_err(find_tracefs()))

    @staticmethod
    def features(options):
        return events.stream_features(options.trace)

    def options_of(self, params):
        events.checked_pages(params.get("buffer_pages", events.DEFAULT_PAGES))
        return super().options_of(params)

    def open(self, options, mode="auto"):
        return TcpRetransReader(options, mode)

    def run(self, reader, session):
        if not session.opts.trace:
            return session.intervals(reader)
        tracing.run_trace(tracer(reader, session.emit, session.as_json, reader.pod_of,
                                 reader.pages),
                          reader.program, session, HEADER, tracing.session_deadline(session))

    def text(self, shown, view: View) -> str:
        return tcp_text(shown, view.opts.by, view.opts.top, view.label,
                        view.names.workloads, view.clock, view.rated(shown.elapsed))

    def json(self, shown, view: View) -> dict:
        return tcp_json(shown, view.opts.by, view.opts.top, view.probe, view.when,
                        view.names.workloads)

    def exporter_open(self, opts, mode="auto"):
        # By pod: no per-socket owner map, so nothing on the read path.
        return TcpRetransReader(TcpOptions(by="container"), mode)


TOOL = TcpRetransTool()
