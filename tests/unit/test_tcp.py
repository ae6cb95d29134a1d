"""tcpretrans' pure parts: cflags, plan, delta, groups, text and JSON
against fixed snapshots, its families through a CollectorRegistry."""

import socket
from dataclasses import replace
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from pytools.self_metrics import SelfStats
from pytools.tools.tcp import spec as tcp_spec
from pytools.tools.tcp.spec import TcpOptions
from pytools.tools.tcp.output import (NO_PROCESS, UNATTRIBUTED, Counts, OwnerMap, TcpSnapshot,
                                      address, delta, groups, tcp_json, tcp_text)
from pytools.tools.tcp.trace import decode, event_line

from .sources import FixedSource, tool_collector

V4 = socket.inet_aton("10.0.0.7") + bytes(12)
V6 = socket.inet_pton(socket.AF_INET6, "fd00::1")


def snap(counts, at=10.0):
    totals = sum(counts.values(), Counts())
    return TcpSnapshot(counts, totals, 0, at)


def cflags_of(**fields):
    return tcp_spec.cflags(TcpOptions(**fields))


def test_cflags():
    flags = cflags_of(by="remote", trace=True, max_keys=64, buffer_pages=8)
    assert "-DKEY_ADDR=1" in flags and "-DTRACE" in flags and "-DEVENTS_PAGES=8" in flags
    assert "-DMAX_KEYS=64" in flags and "-DKINDS=4" in flags
    assert "-DKEY_STATE" in cflags_of(by="state")
    assert not any(f.startswith("-DKEY_") for f in cflags_of(by="pod"))
    with pytest.raises(ValueError):
        cflags_of(by="process")


def test_plan_reads_socket_through_btf_fields():
    (candidate,) = tcp_spec.plan()
    assert candidate.reads_structs
    assert {f.name for f in candidate.fields} >= {"SK_CGROUP", "SKB_CB", "TCB_SEGS"}
    assert {h.kind for h in candidate.hooks} == {"raw_tracepoint"}
    assert len(candidate.hooks) == 4


def test_cgroup_filter_from_shared_flags():
    assert tcp_spec.cgroup_filter(["-DX=1", "-DFILTER_CGROUP_ID=1234ULL"]) == 1234
    assert tcp_spec.cgroup_filter([]) is None
    assert tcp_spec.in_subtree("/a/b", "/a") and tcp_spec.in_subtree("/a", "/a")
    assert not tcp_spec.in_subtree("/ab", "/a") and not tcp_spec.in_subtree(None, "/a")


def test_delta_and_segments():
    prev = snap({(5, 0, bytes(16), 0, 0, 0, ""): Counts(2, 1, 0, 0)}, 10.0)
    cur = snap({(5, 0, bytes(16), 0, 0, 0, ""): Counts(7, 1, 1, 0)}, 12.0)
    d = delta(cur, prev)
    assert d.counts == {(5, 0, bytes(16), 0, 0, 0, ""): Counts(5, 0, 1, 0)}
    assert d.totals.segments == 5 and d.elapsed == 2.0


def test_groups_by_address_and_state_and_unattributed():
    s = snap({(5, socket.AF_INET, V4, 443, 1, 0, ""): Counts(4, 0, 0, 0),
              (6, socket.AF_INET6, V6, 80, 2, 0, ""): Counts(0, 2, 0, 0),
              (0, 0, bytes(16), 0, 7, 0, ""): Counts(0, 0, 3, 0)})
    by_remote = groups(s, "remote")
    assert [g[0] for g in by_remote[:2]] == ["10.0.0.7:443", "[fd00::1]:80"]
    by_state = {g[0]: g[2] for g in groups(s, "state")}
    assert by_state["ESTABLISHED"].segments == 4 and by_state["SYN_SENT"].syn == 2
    by_cgroup = groups(s, "cgroup")
    assert by_cgroup[-1][0] == UNATTRIBUTED and by_cgroup[-1][2].rst_sent == 3
    assert address(0, bytes(16), 0) == "-"


def test_text_and_json():
    s = TcpSnapshot({(5, 0, bytes(16), 0, 0, 0, ""): Counts(4, 1, 0, 2)}, Counts(4, 1, 0, 2), 0,
                    12.0, 2.0)
    text = tcp_text(s, "cgroup", 10, "TCP tracepoints")
    assert "5 segments retransmitted (1 SYN)" in text
    assert "2.5" in text             # 5 segments in 2 s
    out = tcp_json(s, "cgroup", 10, {}, "t")
    assert out["groups"] == [{"key": "5", "cgroup": 5, "retransmits": 5, "syn_retransmits": 1,
                              "resets_sent": 0, "resets_received": 2}]
    assert out["totals"]["retransmits"] == 5 and out["other"]["keys"] == 0


def test_trace_line():
    event = SimpleNamespace(ts=0, cgroup=0, family=socket.AF_INET, kind=0, saddr=V4,
                            daddr=V4, sport=1, dport=2, state=1, segs=3, pid=0, comm=b"")
    e = decode(event, 0.0, lambda c: {})
    assert e["unattributed"] and e["segments"] == 3 and e["kind"] == "R"
    assert "pid" not in e
    owned = decode(SimpleNamespace(**{**vars(event), "pid": 42, "comm": b"curl\0\0"}), 0.0,
                   lambda c: {})
    assert owned["pid"] == 42 and owned["comm"] == "curl"
    assert "10.0.0.7:1" in event_line(e) and "ESTABLISHED" in event_line(e)


def test_families():
    s = snap({(1, 0, bytes(16), 0, 0, 0, ""): Counts(3, 1, 1, 2),
              (0, 0, bytes(16), 0, 0, 0, ""): Counts(0, 0, 4, 0)})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(tool_collector("tcp", FixedSource(s), SelfStats(), "k", 10))
    text = generate_latest(registry).decode()
    assert 'tcp_resets_total{direction="sent",namespace="~other",pod="~other"} 4.0' in text
    assert "tcp_retransmits_total{" in text and "tcp_unkeyed_events_total 0.0" in text


def test_owner_map_only_for_pids():
    """The per-socket owner map and its hooks (one on the read path) are a
    plan flag: --by pid and -p only, never the exporter's by pod."""
    pod, = tcp_spec.plan(TcpOptions(by="pod").owners)
    at_accept, at_read = tcp_spec.plan(TcpOptions(by="pid").owners)
    assert tcp_spec.plan(TcpOptions(by="remote", pid=42).owners) == [at_accept, at_read]
    assert len(pod.hooks) == 4 and pod.mode == "raw_tracepoint"
    # where kprobes are, an accepted socket's owner at accept: nothing on reads
    assert at_accept.mode == "kprobe" and tcp_spec.ACCEPT_KRETPROBE in at_accept.hooks
    assert tcp_spec.FIRST_READ not in at_accept.hooks
    # else at its first read, every hook a tracepoint
    assert {h.kind for h in at_read.hooks} == {"raw_tracepoint"}
    owner_hooks = {h.target for h in at_read.hooks} - {h.target for h in pod.hooks}
    assert owner_hooks == set(tcp_spec.OWNER_HOOKS) | {tcp_spec.FIRST_READ.target}
    assert not any(f.startswith(("-DOWNER_PID", "-DMAX_SOCKETS")) for f in cflags_of(by="pod"))
    flags = cflags_of(by="pid", max_sockets=16)
    assert {"-DOWNER_PID", "-DKEY_PID", "-DMAX_SOCKETS=16"} <= set(flags)
    assert not any(f.startswith("-DFILTER_OWNER_PID") for f in flags)
    flags = cflags_of(by="remote", pid=42)
    assert "-DFILTER_OWNER_PID=42" in flags and "-DOWNER_PID" in flags
    assert "-DKEY_PID" not in flags and "-DKEY_ADDR=1" in flags
    with pytest.raises(ValueError):
        cflags_of(by="pid", max_sockets=0)


def test_groups_by_pid_apart_the_unknown():
    s = snap({(5, 0, bytes(16), 0, 0, 1234, "curl"): Counts(4, 0, 0, 0),
              (5, 0, bytes(16), 0, 0, 99, "nginx"): Counts(9, 0, 1, 0),
              (5, 0, bytes(16), 0, 0, 0, ""): Counts(2, 0, 0, 0),       # process not known
              (0, 0, bytes(16), 0, 0, 0, ""): Counts(0, 0, 3, 0)})      # no socket
    found = groups(s, "pid")
    assert [g[0] for g in found] == ["nginx [99]", "curl [1234]", NO_PROCESS, UNATTRIBUTED]
    assert found[1][1] == {"pid": 1234, "comm": "curl"}
    assert found[2][1] == {"unattributed": "process"} and found[2][2].segments == 2
    # by pod, the pids of one pod merge
    assert groups(s, "cgroup")[0][2] == Counts(15, 0, 1, 0)


def test_owner_map_text_json_and_delta():
    s = replace(snap({(5, 0, bytes(16), 0, 0, 7, "x"): Counts(1, 0, 0, 0)}, 12.0),
                owners=OwnerMap(3, 16, 5))
    prev = replace(snap({}, 10.0), owners=OwnerMap(9, 16, 2))
    d = delta(s, prev)
    assert d.owners == OwnerMap(3, 16, 3)     # sockets now; overflow over the interval
    text = tcp_text(d, "pid", 10, "TCP")
    assert "x [7]" in text and "3 sockets of 16" in text and "3 not kept" in text
    out = tcp_json(d, "pid", 10, {}, "t")
    assert out["owners"] == {"sockets": 3, "capacity": 16, "overflow": 3}
    assert out["groups"][0]["key"] == "x [7]" and out["groups"][0]["pid"] == 7
    assert "owners" not in tcp_json(snap({}), "pod", 10, {}, "t")
