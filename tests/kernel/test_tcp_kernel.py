"""tcpretrans against the kernel's own counters: in a private network
namespace on loopback (offloads off), an nftables rule in the input hook
drops a share of the data segments arriving at a server; a client in one
fake pod sends to a server in another. The client pod's retransmits equal
the namespace's RetransSegs delta, the server pod's are zero, and resets
sent equal OutRsts. Needs nft and ip (iproute2); ethtool where present."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from pytools.kernel import kernel_version_code
from pytools.tools.tcp.spec import TcpRetransReader

from .modes import need_mode
from .pods import MOUNT, FakeNode

PORT = 8479
CLIENT = r"""
import socket, struct, sys
host, port, mb, resets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.create_connection((host, port))
block = b"x" * 65536
for _ in range(mb * 16):
    s.sendall(block)
s.shutdown(socket.SHUT_WR)
while s.recv(65536):
    pass
s.close()
for _ in range(resets):            # the server resets each (SO_LINGER 0)
    try:
        # (where the server accepts and resets before this process runs
        # again, as under emulation, connect() itself says so)
        c = socket.create_connection((host, port + 1))
    except ConnectionResetError:
        continue
    try:
        while c.recv(100):
            pass
    except ConnectionResetError:
        pass
    c.close()
for _ in range(resets):            # a closed port: a reset for no socket
    try:
        socket.create_connection((host, port + 2)).close()
    except ConnectionRefusedError:
        pass
"""
SERVER = r"""
import socket, struct, sys
host, port, resets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
l, r = socket.socket(family), socket.socket(family)
for sock, p in ((l, port), (r, port + 1)):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, p))
    sock.listen(16)
print("ready", flush=True)
c, _ = l.accept()
while c.recv(1 << 16):
    pass
c.close()
for _ in range(resets):
    c, _ = r.accept()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
"""


def tcp_counters(netns: str) -> dict:
    """The namespace's Tcp: (/proc/net/snmp) and TcpExt: (/proc/net/netstat)
    counters, the latter prefixed `TcpExt.`."""
    out = subprocess.run(["ip", "netns", "exec", netns, "cat", "/proc/net/snmp",
                          "/proc/net/netstat"], capture_output=True, text=True,
                         check=True).stdout
    found = {}
    for prefix, name in (("Tcp:", ""), ("TcpExt:", "TcpExt.")):
        rows = [line.split()[1:] for line in out.splitlines() if line.startswith(prefix)]
        found.update({name + k: int(v) for k, v in zip(rows[0], rows[1], strict=True)})
    return found


def in_cgroup(path: str):
    """preexec_fn: join the cgroup before `ip netns exec` (which mounts a
    /sys of its own, without the cgroup tree)."""
    def join():
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    return join


@pytest.fixture(params=["offloads off"])
def netns(request):
    for tool in ("nft", "ip"):
        if not shutil.which(tool):
            pytest.fail(f"needs {tool}: scripts/test installs it (nftables, iproute2)")
    name = f"pytools-tcp-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        # A real link's MTU: segments of 1448 bytes, many to an skb with GSO.
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "mtu", "1500",
                        "up"], check=True)
        if request.param == "offloads off":
            if not shutil.which("ethtool"):
                pytest.fail("needs ethtool to turn offloads off: scripts/test installs it")
            subprocess.run(["ip", "netns", "exec", name, "ethtool", "-K", "lo", "tso", "off",
                            "gso", "off"], check=True, capture_output=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def drop_rule(netns: str, percent: int) -> None:
    """Input hook: drop `percent`% of the segments with data arriving at
    the server's port (pure ACKs and handshakes pass: only the client's
    data is lost, so only the client retransmits)."""
    rules = f"""
table inet pytools_loss {{
  chain input {{
    type filter hook input priority 0;
    meta nfproto ipv4 tcp dport {PORT} ip length > 80 numgen random mod 100 < {percent} drop
    meta nfproto ipv6 tcp dport {PORT} ip6 length > 60 numgen random mod 100 < {percent} drop
  }}
}}
"""
    subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=rules, text=True,
                   check=True)


def run_pair(netns: str, node: FakeNode, host: str, mb: int, resets: int) -> None:
    client_pod, server_pod = node.containers["web"], node.containers["db"]
    exe = [sys.executable, "-c"]
    server = subprocess.Popen(["ip", "netns", "exec", netns] + exe + [SERVER, host, str(PORT),
                                                                      str(resets)],
                              stdout=subprocess.PIPE, text=True,
                              preexec_fn=in_cgroup(server_pod.cgroup))
    try:
        assert server.stdout.readline().strip() == "ready"
        subprocess.run(["ip", "netns", "exec", netns] + exe + [CLIENT, host, str(PORT), str(mb),
                                                               str(resets)],
                       check=True, timeout=120, preexec_fn=in_cgroup(client_pod.cgroup))
        server.wait(timeout=30)
    finally:
        server.kill()
        server.wait()


def pod_counts(snap, reader):
    from pytools.tools.tcp.output import groups
    return {labels.get("pod", key): c for key, labels, c in groups(snap, "pod",
                                                                   reader.names.workloads)}


def exported(reader, logs: str) -> float:
    """tcp_retransmits_total of the client pod, as bpf-exporter serves it."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from pytools.exporter import ToolCollector
    from pytools.self_metrics import SelfStats
    from pytools.tools import by_name
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ToolCollector(by_name("tcp"), reader, SelfStats(), "k", 100,
                                    {"pod_logs": logs}))
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if sample.name == "tcp_retransmits_total" and sample.labels == {
                    "namespace": "shop-prod", "pod": "cart-7d9f-x2", "container": "web"}:
                return sample.value
    return 0.0


def measured(reader, netns, node, host, mb, resets):
    """(kernel counter deltas, counts by pod) over one run of the pair."""
    from pytools.tools.tcp.output import delta
    before, start = tcp_counters(netns), reader.snapshot()
    run_pair(netns, node, host, mb, resets)
    time.sleep(0.2)
    after, end = tcp_counters(netns), reader.snapshot()
    shown = delta(end, start)
    return ({k: after[k] - before[k] for k in after}, pod_counts(shown, reader), shown.missed)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_counts_equal_kernel_counters(netns, host, monkeypatch):
    if MOUNT is None:
        pytest.skip("needs cgroup v2")
    node = FakeNode()
    monkeypatch.setenv("PYTOOLS_POD_LOGS", node.logs)
    try:
        drop_rule(netns, 5)
        with TcpRetransReader(by="pod") as reader:
            # Data lost on its way to the server: only the client retransmits.
            kernel, counts, missed = measured(reader, netns, node, host, 8, 0)
            assert kernel["RetransSegs"] > 0, "the drop rule caused no retransmits"
            # Exact, but for runs the kernel skipped (another BPF program
            # was running on that CPU: other tools on a shared machine),
            # which it counts, machine-wide, and the tool shows.
            client = counts["cart-7d9f-x2"].segments
            assert kernel["RetransSegs"] - missed <= client <= kernel["RetransSegs"], \
                (counts, missed)
            assert "db-0" not in counts, counts
            # The exporter's collector on the same maps: the client pod's series.
            assert exported(reader, node.logs) == counts["cart-7d9f-x2"].segments
            # Resets: the server's abortive closes (its pod's), the closed
            # port's (no socket: unattributed); the client received both.
            resets = 3
            kernel, counts, missed = measured(reader, netns, node, host, 0, resets)
        # Resets for no socket are machine-wide (any namespace's refused
        # connection): at least ours; the server's are its pod's. Each
        # exact but for runs the kernel skipped (`missed`, counted).
        assert kernel["OutRsts"] == 2 * resets, (kernel, counts)
        assert resets - missed <= counts["db-0"].rst_sent <= resets, (counts, missed)
        if kernel_version_code() >= 0x060a00:
            assert counts["[no socket owner]"].rst_sent >= resets - missed, (counts, missed)
        else:   # tcp_send_reset fires for a reset with no socket from 6.10 on only
            assert "[no socket owner]" not in counts, counts
        received = counts["cart-7d9f-x2"].rst_received
        assert 2 * resets - missed <= received <= 2 * resets, (counts, missed)
        # whatever else was retransmitted (a SYN-ACK...) is one of the pods'
        segments = counts["cart-7d9f-x2"].segments + counts["db-0"].segments
        assert kernel["RetransSegs"] - missed <= segments <= kernel["RetransSegs"], counts
    finally:
        node.close()


# bpftrace's tcpretrans.bt kprobes tcp_retransmit_skb (no kprobes here):
# the same count on the tracepoint, for this namespace's sockets only,
# as skbs and as the segments they carry.
BPFTRACE = """
BEGIN { printf("attached\\n"); }
tracepoint:tcp:tcp_retransmit_skb
/((struct sock *)args->skaddr)->__sk_common.skc_net.net->ns.inum == NETNS/
{
  $cb = (struct tcp_skb_cb *)((struct sk_buff *)args->skbaddr)->cb;
  @skbs = count();
  @segs = sum((uint64)$cb->tcp_gso_segs);
}
"""


@pytest.mark.parametrize("netns", ["offloads off", "offloads on"], indirect=True)
def test_segments_not_skbs_agree_with_bpftrace(netns, monkeypatch):
    """An skb is not a segment: TCP builds multi-segment skbs (GSO) with
    offloads on and off alike; the counts are segments, as RetransSegs,
    and agree with bpftrace summing tcp_skb_pcount on the tracepoint."""
    if MOUNT is None:
        pytest.skip("needs cgroup v2")
    if not shutil.which("bpftrace"):
        pytest.skip("needs bpftrace (apt-get install bpftrace)")
    node = FakeNode()
    monkeypatch.setenv("PYTOOLS_POD_LOGS", node.logs)
    inum = os.stat(f"/run/netns/{netns}").st_ino
    tracer = subprocess.Popen(["bpftrace", "-e", BPFTRACE.replace("NETNS", str(inum))],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in tracer.stdout:         # BEGIN runs once every probe is attached
            if "attached" in line:
                break
        drop_rule(netns, 5)
        with TcpRetransReader(by="pod") as reader:
            kernel, counts, missed = measured(reader, netns, node, "127.0.0.1", 16, 0)
        tracer.send_signal(signal.SIGINT)
        out = tracer.communicate(timeout=120)[0]
    finally:
        tracer.kill()
        node.close()
    found = dict(re.findall(r"@(\w+): (\d+)", out))
    skbs, segs = int(found.get("skbs", 0)), int(found.get("segs", 0))
    client = counts["cart-7d9f-x2"].segments
    # Segments, not skbs, exactly as the kernel counted them on a 16 MB
    # stream too (a gap once seen here did not come back: docs/design.md);
    # should it, the namespace's *Retrans* counters say where.
    assert 0 < skbs < segs, (skbs, segs)      # several segments to some skbs
    extra = {k: v for k, v in kernel.items() if v and "Retrans" in k}
    assert kernel["RetransSegs"] - missed <= client <= kernel["RetransSegs"], \
        (client, missed, segs, extra)
    # bpftrace's program is on the tracepoint, skipped whenever another
    # BPF program runs on that CPU (ours, on the raw tracepoint, only when
    # itself does): it agrees, or it missed some.
    assert segs <= client + missed, (segs, client, missed)


# ------------------------------------------------------------ --by pid, -p

WAIT_THEN = "import sys; sys.stdin.readline()\n"     # started first: its pid is known
SERVE = r"""
import socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
l = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((host, port))
l.listen(16)
print("ready", flush=True)
for _ in range(n):
    c, _ = l.accept()
    while c.recv(1 << 16):
        pass
    c.close()
"""


def netns_python(netns: str, script: str, args, cgroup: str, **kw) -> subprocess.Popen:
    """python in the namespace, in a fake pod's cgroup (`ip netns exec`
    execs it: the Popen's pid is the python's)."""
    return subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", script] +
                            [str(a) for a in args],
                            preexec_fn=in_cgroup(cgroup) if cgroup else None, **kw)


def test_by_pid_names_the_sending_process_and_p_keeps_it(netns, monkeypatch):
    """Two client processes of one pod send through the lossy path:
    --by pid shows each one's retransmits (sum: RetransSegs), the server's
    process none; -p keeps only one process's. The server resets
    connections it never read from: their process is not known, counted
    apart."""
    if MOUNT is None:
        pytest.skip("needs cgroup v2")
    node = FakeNode()
    monkeypatch.setenv("PYTOOLS_POD_LOGS", node.logs)
    client_pod, server_pod = node.containers["web"].cgroup, node.containers["db"].cgroup
    procs = []
    try:
        drop_rule(netns, 5)
        server = netns_python(netns, SERVE, ["127.0.0.1", PORT, 2], server_pod,
                              stdout=subprocess.PIPE, text=True)
        procs.append(server)
        assert server.stdout.readline().strip() == "ready"
        clients = [netns_python(netns, WAIT_THEN + CLIENT, ["127.0.0.1", PORT, 4, 0],
                                client_pod, stdin=subprocess.PIPE, text=True)
                   for _ in range(2)]
        procs += clients
        first = clients[0].pid
        with TcpRetransReader(by="pid") as by_pid, \
                TcpRetransReader(by="pod", pid=first) as only:
            before = tcp_counters(netns)
            starts = by_pid.snapshot(), only.snapshot()
            for client in clients:            # one after the other: one connection each
                client.communicate("go\n", timeout=120)
                assert client.returncode == 0
            server.wait(timeout=30)
            time.sleep(0.2)
            kernel = tcp_counters(netns)["RetransSegs"] - before["RetransSegs"]
            from pytools.tools.tcp.output import delta, groups
            shown, kept = (delta(r.snapshot(), s)
                           for r, s in zip((by_pid, only), starts, strict=True))
        assert kernel > 0, "the drop rule caused no retransmits"
        found = {labels.get("pid", key): (key, c) for key, labels, c in groups(shown, "pid")}
        segments = {pid: c.segments for pid, (_, c) in found.items()}
        assert set(segments) >= {c.pid for c in clients}, found
        assert all(segments[c.pid] > 0 for c in clients), found
        assert found[first][0] == f"{os.path.basename(sys.executable)[:15]} [{first}]"
        assert segments.get(server.pid, 0) == 0, found
        missed = shown.missed
        assert kernel - missed <= sum(segments.values()) <= kernel, (found, kernel, missed)
        # -p: that process's only, whatever the grouping (here its pod).
        (pod_key, labels, c), = groups(kept, "pod", only.names.workloads)
        assert labels["pod"] == "cart-7d9f-x2" and kept.totals == c
        assert abs(c.segments - segments[first]) <= missed + kept.missed, (c, found)
        assert kept.owners.sockets == 0 and kept.owners.overflow == 0
    finally:
        for p in procs:
            p.kill()
            p.wait()
        node.close()


@pytest.mark.parametrize("mode", ["raw_tracepoint", "kprobe"])
def test_accepted_never_read(netns, monkeypatch, mode):
    """Resets a server sends on connections it accepted and never read
    from. The tracepoint way learns an accepted socket's owner at its
    first read: they are [process not known], never dropped. Where kprobes
    are, the owner is learnt at accept (kretprobe): they are the server's.
    Either way the client that connected receives them as its own."""
    if MOUNT is None:
        pytest.skip("needs cgroup v2")
    need_mode(mode, function="inet_csk_accept", tracepoint="tcp:tcp_rcv_space_adjust")
    node = FakeNode()
    monkeypatch.setenv("PYTOOLS_POD_LOGS", node.logs)
    try:
        with TcpRetransReader(by="pid", mode=mode) as reader:
            resets = 3
            before, start = tcp_counters(netns), reader.snapshot()
            run_pair(netns, node, "127.0.0.1", 0, resets)
            time.sleep(0.2)
            after = tcp_counters(netns)
            from pytools.tools.tcp.output import NO_PROCESS, delta, groups
            shown = delta(reader.snapshot(), start)
        assert after["OutRsts"] - before["OutRsts"] == 2 * resets
        listed = groups(shown, "pid")
        found = {key: c for key, _, c in listed}
        missed = shown.missed
        if mode == "raw_tracepoint":
            assert resets - missed <= found[NO_PROCESS].rst_sent <= resets, found
        else:
            assert NO_PROCESS not in found, found
            sent = sum(c.rst_sent for _, labels, c in listed if "pid" in labels)
            assert resets - missed <= sent <= resets, found
        # the client's connections: known from connect()
        received = sum(c.rst_received for _, labels, c in listed if "pid" in labels)
        assert 2 * resets - missed <= received <= 2 * resets, found
    finally:
        node.close()


SHORT = r"""
import socket, sys, time
host, port, n, hold, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), float(sys.argv[5])
sys.stdin.readline()
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((host, port))
l.listen(1024)
def pair():
    c = socket.create_connection((host, port))
    s, _ = l.accept()
    c.send(b"x")
    s.recv(1)             # the accepted socket's owner: known at its first read
    return c, s
held = [pair() for _ in range(hold)]       # at once: beyond a small map
for c, s in held:
    c.close()
    s.close()
start, done = time.monotonic(), 0
while done < n and time.monotonic() - start < seconds:
    for sock in pair():
        sock.close()
    done += 1
l.close()
print(done, flush=True)
"""


def test_short_connections_leave_the_owner_map_empty(netns):
    """As many short connections as run in ~20 s (up to 100,000): the
    per-socket map is emptied as sockets end; with a small bound, the
    sockets it could not take are counted."""
    from .workload import BURST_SCALE
    cap, hold = 16, 40
    proc = netns_python(netns, SHORT, ["127.0.0.1", PORT, 100_000 // BURST_SCALE, hold, 20],
                        None,
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        with TcpRetransReader(by="pid", pid=proc.pid, max_sockets=cap) as small, \
                TcpRetransReader(by="pid") as machine:
            base = machine.snapshot().owners
            out, _ = proc.communicate("go\n", timeout=120)
            time.sleep(0.5)             # the last sockets end (FIN, TIME_WAIT)
            kept, everyone = small.snapshot().owners, machine.snapshot().owners
    finally:
        proc.kill()
        proc.wait()
    done = int(out.split()[0])
    assert done >= 1000 // BURST_SCALE, out
    # -p: only that process's sockets are kept: none left; its listener
    # and `hold` connections' two ends at once, the map `cap`: the rest
    # counted.
    assert kept.sockets == 0, kept
    assert kept.overflow == 2 * hold + 1 - cap, kept
    # Every process's: what others on the machine opened meanwhile may
    # remain, not the test's `done` connections.
    assert everyone.overflow == base.overflow == 0, everyone
    assert everyone.sockets <= base.sockets + 64, (base, everyone, done)
