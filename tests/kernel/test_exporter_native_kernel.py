"""Native histograms for real: the exporter under the DaemonSet's arguments,
fake pods and two loop disks, scraped at once by two Debian Prometheus
2.42 servers, one classic and one with --enable-feature=native-histograms,
both evaluating the shipped rules. For the same reads, by pod and by disk,
the native series' histogram_count and histogram_sum equal the classic
_count and _sum, and their quantiles agree (the slots are the native
buckets' own edges, so they should agree exactly; within one bucket is
what the issue asks, and what is asserted). The dashboard answers from
either server. Also: the kernel's native slots, bracketed by a second
program's nanosecond slots on the same reads."""

import json
import math
import os
import time

import pytest

from pytools.hist import NATIVE
from pytools.tools.vfs_read.spec import VfsReadReader

from .block import Loop
from .exporter import Exporter
from .memory_cgroup import oom_kill_in
from .modes import scratch_dir
from .pods import (NODE_LABEL, cold_read, daemonset_args, failed_opens,  # noqa: F401 (fixtures)
                   node, run_in, stats_by_sysctl, workload_execs)
from .prometheus import (assert_dashboard_answers, prometheus_query, running_prometheus,
                         wait_for_query)
from .workload import make_executables, syn_retransmits, write_file, zero_reads

FIGURES = "/tmp/pytools-native-figures.json"
PODS = {"web": "cart-7d9f-x2", "batch": "nightly-job-1"}


@pytest.fixture
def disks():
    made = [Loop(), Loop()]
    yield made
    for disk in made:
        disk.close()


def pipe_reads(delays):
    """Reads from a pipe whose writer sleeps `delays` seconds first: slow
    reads, spread over many slots."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            for delay in delays:
                time.sleep(delay)
                os.write(w, b"x")
        finally:
            os._exit(0)
    for _ in delays:
        os.read(r, 1)
    os.waitpid(pid, 0)
    os.close(r)
    os.close(w)


def one(port, query, at):
    result = prometheus_query(port, query, at)
    assert len(result) == 1, (query, result)
    return float(result[0]["value"][1])


@pytest.mark.wall_clock      # two Prometheus servers scraping every second: real CPUs only
def test_native_and_classic_prometheus_agree_on_the_same_reads(node, disks, tmp_path,
                                                                stats_by_sysctl):
    exp = Exporter(*daemonset_args(node))
    (true_copy,) = make_executables(str(tmp_path), ["pytools-native-true"])
    path = write_file(scratch_dir(), 8 << 20)
    scrape = (f"  - job_name: bpf\n    static_configs: [{{targets: ['127.0.0.1:{exp.port}'], "
              f"{NODE_LABEL}}}]\n")
    figures = {"quantile_log2_gap": 0.0, "compared": 0}
    try:
        with running_prometheus(scrape, rules=True) as classic, \
                running_prometheus(scrape, native=True, rules=True) as native:
            exp.assert_serving()
            for port in (classic, native):
                wait_for_query(port, 'up{job="bpf"}', lambda r: r and r[0]["value"][1] == "1")
            oom_kill_in(node.containers["sidecar"].cgroup)      # oomkill
            run_in(node.containers["web"].cgroup, syn_retransmits)     # tcp
            for round_ in range(6):                     # load over several scrapes
                workload_execs(node, true_copy)
                run_in(node.containers["web"].cgroup, zero_reads, 500)
                run_in(node.containers["web"].cgroup, pipe_reads,
                       [0.0005 * 2 ** (i % 6) for i in range(12)])
                run_in(node.containers["batch"].cgroup, cold_read, path)
                run_in(node.containers["web"].cgroup, failed_opens, 50)    # file_opens
                disks[0].direct_reads(40, first_block=100 * round_)
                disks[1].direct_reads(7, first_block=100 * round_)
                time.sleep(1)
            # both have the native and the classic series they should
            wait_for_query(native, 'histogram_count(vfs_read_latency_seconds{pod="%s"}) > 0'
                           % PODS["web"], bool)
            assert not prometheus_query(native, "vfs_read_latency_seconds_count"), \
                "Prometheus 2.42 with native histograms keeps the native series only"
            assert not prometheus_query(classic, "vfs_read_latency_seconds"), \
                "a classic scrape has no native series"
            time.sleep(4)             # the last counts scraped by both, three times over
            at = time.time() - 1

            cells = [("vfs_read_latency_seconds", f'pod="{pod}"') for pod in PODS.values()]
            cells += [("block_io_latency_seconds", f'device="{d.name}",op=~"read|sync-read"')
                      for d in disks]          # O_DIRECT reads are sync-read
            cells += [("run_queue_latency_seconds", f'pod="{PODS["batch"]}"')]
            for metric, match in cells:
                count = one(classic, f"sum({metric}_count{{{match}}})", at)
                assert count > 0, (metric, match)
                assert one(native, f"histogram_count(sum({metric}{{{match}}}))", at) == count
                total = one(classic, f"sum({metric}_sum{{{match}}})", at)
                assert one(native, f"histogram_sum(sum({metric}{{{match}}}))", at) == \
                    pytest.approx(total, rel=1e-12)
                for q in (0.5, 0.9, 0.99):
                    ours = one(classic, f"histogram_quantile({q}, sum by (le) "
                                        f"({metric}_bucket{{{match}}}))", at)
                    theirs = one(native, f"histogram_quantile({q}, sum({metric}{{{match}}}))",
                                 at)
                    gap = abs(math.log2(theirs) - math.log2(ours))
                    assert gap <= 1, (metric, match, q, ours, theirs)     # one bucket
                    figures["quantile_log2_gap"] = max(figures["quantile_log2_gap"], gap)
                    figures["compared"] += 1
            counts = {d.name: one(classic, f'sum(block_io_latency_seconds_count{{device='
                                           f'"{d.name}"}})', at) for d in disks}
            assert counts == {disks[0].name: 240, disks[1].name: 42}, counts

            # the recorded series of the shipped rules, from either server
            for record in ("namespace_pod:vfs_read_latency_seconds:p99_rate5m",
                           "namespace_pod:run_queue_latency_seconds:p99_rate5m"):
                query = f'{record}{{pod="{PODS["web"]}"}}'
                ours, theirs = one(classic, query, at), one(native, query, at)
                assert abs(math.log2(theirs) - math.log2(ours)) <= 1, (record, ours, theirs)
            for disk in disks:
                query = ('instance_device:block_io_latency_seconds:p99_rate5m'
                         f'{{device="{disk.name}"}}')
                ours, theirs = one(classic, query, at), one(native, query, at)
                assert abs(math.log2(theirs) - math.log2(ours)) <= 1, (query, ours, theirs)

            for port in (classic, native):
                assert_dashboard_answers(port, PODS["web"])
    finally:
        os.unlink(path)
        exp.stop()
    with open(FIGURES, "w") as f:
        json.dump(figures, f, indent=1)


@pytest.mark.wall_clock      # under emulation each program runs for microseconds: see below
def test_the_kernels_native_slots_hold_what_nanosecond_slots_say(tmp_path):
    """Two vfs_read programs on the same reads of one child process: one
    with the exporter's native slots, one with nanosecond log2 slots. Every
    native edge 2^(k-20) s lies between two nanosecond edges 2^m and
    2^(m+1) ns, so the count at or below it is bracketed by theirs; counts
    are equal."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                       # waits for the go, then reads
        try:
            os.read(r, 1)
            pipe_reads([0.0001 * (i % 40) for i in range(160)])
            zero_reads(2000)
        finally:
            os._exit(0)
    native = VfsReadReader(unit=NATIVE, pid=pid)
    nsecs = VfsReadReader(unit="nsecs", pid=pid)
    try:
        os.write(w, b"g")
        os.waitpid(pid, 0)
        a, b = native.snapshot().hist, nsecs.snapshot().hist
    finally:
        native.close()
        nsecs.close()
        os.close(r)
        os.close(w)
    # Each program reads the clock itself, one after the other, at entry and
    # at exit: a read's two times differ by the programs' own run time (tens
    # of ns on real CPUs), so a read within that of an edge may fall either
    # side. Under QEMU's emulation the programs run for microseconds, as long
    # as the reads themselves, and the bracket means nothing: host only. (The
    # exporter tests load the native slots in every probe mode, VM included.)
    assert a.count == b.count >= 2000
    assert abs(a.total - b.total) <= a.count * 1000, (a.total, b.total)
    slack = 3
    cumulative_ns, running = [], 0
    for c in b.slots:
        running += c
        cumulative_ns.append(running)              # reads under 2^m ns
    running = 0
    for k in range(40):
        running += a.slots[k]
        m = math.floor(math.log2(1e9 * 2.0 ** (k - 20)))
        assert cumulative_ns[m] - slack <= running <= cumulative_ns[m + 1] + slack, k
