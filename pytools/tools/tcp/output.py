"""tcpretrans' snapshot and what is made of it: the table by pod (or
address, state), the JSON, and the exporter's tcp_* families."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Optional, Tuple

from ... import render
from ...deltas import diff
from ...series import OTHER, fold
from ...workloads import GROUPINGS, describe, labels

KINDS = ("retrans", "syn", "rst_sent", "rst_received")
# What a key holds besides the owner's cgroup id: (family, address bytes,
# port, state, pid, comm); zeros where --by does not key by it.
Key = Tuple[int, int, bytes, int, int, int, str]  # (cgroup, family, addr, port, state, pid, comm)
# The kernel's TCP states (include/net/tcp_states.h, stable since 2.6).
TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1",
              5: "FIN_WAIT2", 6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK",
              10: "LISTEN", 11: "CLOSING", 12: "NEW_SYN_RECV"}
WORKLOAD_KINDS = ("pod", "container")
BY_KINDS = ("pod", "container", "remote", "local", "state", "cgroup", "pid")
UNATTRIBUTED = "[no socket owner]"
NO_PROCESS = "[process not known]"     # a socket the owner map does not hold
GROUP_HEADERS = {"pod": "NAMESPACE/POD", "container": "NAMESPACE/POD/CONTAINER",
                 "remote": "REMOTE", "local": "LOCAL", "state": "STATE", "cgroup": "CGROUP ID",
                 "pid": "PROCESS"}


@dataclass(frozen=True)
class Counts:
    retrans: int = 0          # retransmitted segments but SYNs and SYN-ACKs
    syn: int = 0              # retransmitted SYNs and SYN-ACKs (segments too)
    rst_sent: int = 0
    rst_received: int = 0

    @property
    def segments(self) -> int:
        """Every retransmitted segment: the kernel's RetransSegs unit."""
        return self.retrans + self.syn

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(*(a + b for a, b in zip(self.values(), other.values(), strict=True)))

    def __sub__(self, other: "Counts") -> "Counts":
        return Counts(*(a - b for a, b in zip(self.values(), other.values(), strict=True)))

    def __bool__(self) -> bool:
        return any(self.values())

    def values(self) -> Tuple[int, ...]:
        return (self.retrans, self.syn, self.rst_sent, self.rst_received)


@dataclass(frozen=True)
class OwnerMap:
    """The kernel's socket-to-process map (--by pid, -p), when read."""
    sockets: int = 0              # sockets it holds now
    capacity: int = 0             # its bound (--max-sockets)
    overflow: int = 0             # inserts refused, the map full (a socket tried at each read)


@dataclass(frozen=True)
class TcpSnapshot:
    """Counts since attach (or, after `delta`, over an interval)."""
    counts: Dict[Key, Counts]
    totals: Counts = Counts()     # every event, keyed or not
    map_full: int = 0             # events not kept per key: the map was full
    taken_at: float = 0.0
    elapsed: float = 0.0
    missed: int = 0               # events the kernel ran no program for (recursion)
    owners: Optional[OwnerMap] = None     # with the owner map only


def delta(cur: TcpSnapshot, prev: TcpSnapshot) -> TcpSnapshot:
    return replace(cur, counts=diff(cur.counts, prev.counts), totals=cur.totals - prev.totals,
                   map_full=cur.map_full - prev.map_full, missed=cur.missed - prev.missed,
                   elapsed=cur.taken_at - prev.taken_at,
                   owners=cur.owners and prev.owners and replace(
                       cur.owners, overflow=cur.owners.overflow - prev.owners.overflow))


def address(family: int, raw: bytes, port: int) -> str:
    """1.2.3.4:80, [::1]:80; "-" where the key holds no address."""
    if family == socket.AF_INET:
        return f"{ipaddress.IPv4Address(bytes(raw[:4]))}:{port}"
    if family == socket.AF_INET6:
        return f"[{ipaddress.IPv6Address(bytes(raw[:16]))}]:{port}"
    return "-"


def state_name(state: int) -> str:
    return TCP_STATES.get(state, str(state))


def only_cgroups(snap: TcpSnapshot, allowed: Callable[[int], bool]) -> TcpSnapshot:
    """--cgroup: the keys whose owner is in the subtree; the totals then
    those of the keys (the machine's are of every socket)."""
    counts = {k: v for k, v in snap.counts.items() if allowed(k[0])}
    return replace(snap, counts=counts, totals=sum(counts.values(), Counts()))


def groups(snap: TcpSnapshot, by: str, workloads=None) -> List[Tuple[str, dict, Counts]]:
    """(key, labels, counts) per group, most retransmits first; the
    unattributed (cgroup 0: a reset for no socket) as their own group."""
    merged: Dict[Tuple, Counts] = {}
    unattributed = Counts()
    no_process = Counts()
    label: Tuple
    for (cgroup, family, addr, port, state, pid, comm), c in snap.counts.items():
        if by == "pid":
            if cgroup == 0 and pid == 0:
                unattributed = unattributed + c
                continue
            if pid == 0:
                no_process = no_process + c
                continue
            label = (pid, comm)
        elif by in WORKLOAD_KINDS or by == "cgroup":
            if cgroup == 0:
                unattributed = unattributed + c
                continue
            if by == "cgroup":
                label = (cgroup,)
            else:
                label = labels(workloads.of(cgroup), by)
        elif by == "state":
            label = (state_name(state),)
        else:
            label = (address(family, addr, port),)
        merged[label] = merged[label] + c if label in merged else c
    out = []
    for label, c in merged.items():
        if by in WORKLOAD_KINDS:
            out.append((describe(label, by), dict(zip(GROUPINGS[by], label, strict=True)), c))
        elif by == "pid":
            out.append((render.process_label(label[1], label[0]),
                        {"pid": label[0], "comm": label[1]}, c))
        else:
            out.append((str(label[0]), {by: label[0]}, c))
    out.sort(key=lambda g: (-g[2].segments, -sum(g[2].values()), g[0]))
    if no_process:
        out.append((NO_PROCESS, {"unattributed": "process"}, no_process))
    if unattributed:
        out.append((UNATTRIBUTED, {"unattributed": True}, unattributed))
    return out


def rate_text(n: int, seconds: float, rated: bool) -> str:
    return f"{render.rate(n, seconds):.1f}" if rated else "-"


def tcp_text(snap: TcpSnapshot, by: str, top: int, probe_label: str, workloads=None,
             timestamp: Optional[str] = None, rated: bool = True) -> str:
    seconds = snap.elapsed
    t = snap.totals
    head = render.title(f"{probe_label}, {seconds:.1f}s: {t.segments} segments retransmitted "
                        f"({t.syn} SYN), resets {t.rst_sent} sent, {t.rst_received} "
                        "received", timestamp)
    rows = [[key, c.segments, rate_text(c.segments, seconds, rated), c.syn, c.rst_sent,
             c.rst_received] for key, _, c in groups(snap, by, workloads)]
    lines = [head]
    if rows:
        lines.append(render.fitted_table(rows[:top], [GROUP_HEADERS[by], "RETRANS", "/s",
                                                      "SYN", "RST_SENT", "RST_RECV"]))
        if len(rows) > top:
            lines.append(f"[{len(rows) - top} more]")
    if snap.map_full:
        lines.append(f"[{snap.map_full} events not kept per key: map full; in the totals]")
    if snap.missed:
        lines.append(f"[{snap.missed} events missed: the kernel ran no program for them, "
                     "another BPF program was running on that CPU]")
    if snap.owners is not None:
        lines.append(owners_text(snap.owners))
    return "\n".join(lines)


def owners_text(o: OwnerMap) -> str:
    text = f"[socket owners known: {o.sockets} sockets of {o.capacity}"
    if o.overflow:
        text += f"; {o.overflow} not kept, the map full: their events [process not known]"
    return text + "]"


def counts_json(c: Counts) -> dict:
    return {"retransmits": c.segments, "syn_retransmits": c.syn, "resets_sent": c.rst_sent,
            "resets_received": c.rst_received}


def tcp_json(snap: TcpSnapshot, by: str, top: int, probe: dict, when: str,
             workloads=None) -> dict:
    found = groups(snap, by, workloads)
    rest = found[top:]
    other = Counts()
    for _, _, c in rest:
        other = other + c
    return {"time": when, "interval_s": round(snap.elapsed, 3), "probe": probe, "by": by,
            "totals": counts_json(snap.totals), "map_full": snap.map_full,
            "missed": snap.missed,
            **({"owners": {"sockets": snap.owners.sockets, "capacity": snap.owners.capacity,
                           "overflow": snap.owners.overflow}} if snap.owners else {}),
            "groups": [{"key": key, **labels, **counts_json(c)} for key, labels, c in found[:top]],
            "other": {"keys": len(rest), **counts_json(other)}}


# ------------------------------------------------------------------ exporter

def tcp_families(snapshot: Optional[TcpSnapshot], collector) -> list:
    """tcp_retransmits_total{namespace,pod,container} (segments, SYNs
    included), tcp_syn_retransmits_total{namespace,pod},
    tcp_resets_total{namespace,pod,direction}: by the socket's owner.
    Pods beyond the cap and sockets with no owner are in ~other; events
    the kernel could not key (its map full) in tcp_unkeyed_events_total."""
    # prometheus_client is the exporter's alone: the commands start without it.
    from ...families import LabelledCounterFamily, counters
    retrans = LabelledCounterFamily(
        "tcp_retransmits", "TCP segments retransmitted (the kernel's RetransSegs unit, SYNs "
        "included), by the pod that owns the socket.", ["namespace", "pod", "container"],
        collector.render_cache("tcp_retransmits_total"))
    syn = LabelledCounterFamily(
        "tcp_syn_retransmits", "TCP SYN and SYN-ACK retransmits, by the pod that owns the "
        "socket (a listener's for SYN-ACKs).", ["namespace", "pod"],
        collector.render_cache("tcp_syn_retransmits_total"))
    resets = LabelledCounterFamily(
        "tcp_resets", "TCP resets sent and received, by the pod that owns the socket.",
        ["namespace", "pod", "direction"], collector.render_cache("tcp_resets_total"))
    unkeyed = counters((("tcp_unkeyed_events", "TCP retransmits and resets counted in no "
                         "pod's series: the kernel's per-key map was full.",
                         lambda s: s.map_full),
                        ("tcp_missed_events", "TCP retransmits and resets the kernel ran no "
                         "program for (another BPF program was running on that CPU).",
                         lambda s: s.missed)), snapshot)
    if snapshot is None:
        return [retrans, syn, resets] + unkeyed
    series = collector.cgroup_series("container")
    per_cgroup: Dict[int, Counts] = {}
    loose = Counts()       # no owner, or beyond the cap
    for (cgroup, *_), c in snapshot.counts.items():
        if cgroup:
            per_cgroup[cgroup] = per_cgroup.get(cgroup, Counts()) + c
        else:
            loose = loose + c
    grouped = series.sweep(series.group(per_cgroup), collector.cap,
                           weight=lambda c: sum(c.values()))
    cells, folded = fold(collector.cap, ((label, (), c) for label, (c, _) in grouped.items()),
                         weight=lambda c: sum(c.values()))
    folded_cell = cells.pop((OTHER, OTHER, OTHER), None)
    for extra in (folded_cell, collector.cap.retired):
        if extra is not None:
            loose = loose + extra
    by_pod: Dict[Tuple[str, str], Counts] = {}
    for (namespace, pod, container), c in sorted(cells.items()):
        retrans.add([namespace, pod, container], c.segments)
        by_pod[(namespace, pod)] = by_pod.get((namespace, pod), Counts()) + c
    if loose:
        retrans.add([OTHER, OTHER, OTHER], loose.segments)
        by_pod[(OTHER, OTHER)] = by_pod.get((OTHER, OTHER), Counts()) + loose
    for (namespace, pod), c in sorted(by_pod.items()):
        syn.add([namespace, pod], c.syn)
        resets.add([namespace, pod, "sent"], c.rst_sent)
        resets.add([namespace, pod, "received"], c.rst_received)
    collector.stats.record_folded("tcp_retransmits_total", folded)
    return [retrans, syn, resets] + unkeyed
