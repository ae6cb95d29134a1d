"""Pods, containers and services, for real: cgroup v2 hierarchies made in
this machine's cgroup2 mount that mimic both kubelet cgroup drivers and a
systemd service, a fake /var/log/pods + /var/log/containers tree, and work
done in each fake container (its pid written to cgroup.procs). Every tool
and the exporter must attribute it exactly; gone pods must leave neither
series nor map entries; --cgroup must count only its subtree."""

import json
import os
import signal
import struct
import subprocess
import time
from typing import Dict, List

import pytest

from .block import Loop
from .exporter import Exporter, diff, value
from .memory_cgroup import oom_kill_in
from .modes import scratch_dir
from .pods import (EXECS, MOUNT, NODE_LABEL, SERVICE_EXECS, cid, cli, cold_read,  # noqa: F401 (fixtures)
                   daemonset_args, execs, failed_opens, node, remove_cgroups, run_in,
                   stats_by_sysctl, true_copy, uid, workload_execs)
from .prometheus import (assert_dashboard_answers, prometheus_query, running_prometheus,
                         wait_for_query)
from .workload import (bpf_map_ids, bpf_map_keys, file_reads, start_tool, syn_retransmits,
                       tool_command, write_file, zero_reads)

pytestmark = pytest.mark.skipif(MOUNT is None, reason="no cgroup2 mount: the kernel or "
                                "host has no cgroup v2 hierarchy")
PAGE = os.sysconf("SC_PAGE_SIZE")


def test_execve_counter_by_container_pod_and_service(node, true_copy):
    got = cli(node, tool_command("execve-counter") + ["--by", "container"],
              lambda: workload_execs(node, true_copy))
    counts = {(e["namespace"], e["pod"], e["container"]): e["count"] for e in got["groups"]}
    expected = {(c.namespace, c.pod, c.name): EXECS[k] for k, c in node.containers.items()}
    expected[("", "", "")] = SERVICE_EXECS
    assert counts == expected
    assert got["total"] == sum(EXECS.values()) + SERVICE_EXECS

    got = cli(node, tool_command("execve-counter") + ["--by", "pod"],
              lambda: workload_execs(node, true_copy))
    pods = {(e["namespace"], e["pod"]): e["count"] for e in got["groups"]}
    assert pods[("shop-prod", "cart-7d9f-x2")] == EXECS["web"] + EXECS["sidecar"]
    assert pods[("data", "db-0")] == EXECS["db"]
    assert {e["key"] for e in got["groups"]} >= {"shop-prod/cart-7d9f-x2", "data/db-0"}

    got = cli(node, tool_command("execve-counter") + ["--by", "service"],
              lambda: workload_execs(node, true_copy))
    services = {e["service"]: e["count"] for e in got["groups"]}
    assert services == {"pytools-fake.service": SERVICE_EXECS, "kubepods": sum(EXECS.values())}


def test_vfsread_latency_per_container_and_pod(node):
    reads = {"web": 101, "sidecar": 53, "batch": 37, "db": 71}

    def work():
        for key, n in reads.items():
            run_in(node.containers[key].cgroup, file_reads, n)

    got = cli(node, tool_command("vfsread-latency") + ["--by", "container", "--top", "20"], work)
    per = {(w["namespace"], w["pod"], w["container"]): w["hist"]["count"]
           for w in got["groups"]}
    # The forked child's own reads (none but ours after the fork) are the workload.
    for key, c in node.containers.items():
        assert per[(c.namespace, c.pod, c.name)] == reads[key], per
    got = cli(node, tool_command("vfsread-latency") + ["--by", "pod"], work)
    per = {(w["namespace"], w["pod"]): w["hist"]["count"] for w in got["groups"]}
    assert per[("shop-prod", "cart-7d9f-x2")] == reads["web"] + reads["sidecar"]


def test_readahead_by_pod_and_a_closed_files_path(node):
    path = write_file(scratch_dir(), 8 << 20)
    try:
        got = cli(node, tool_command("readahead-stats") + ["--table", "pod"],
                  lambda: run_in(node.containers["batch"].cgroup, cold_read, path))
    finally:
        st = os.stat(path)
        os.unlink(path)
    pods = {(w["namespace"], w["pod"]): w["pages"] for w in got["workloads"]}
    assert pods[("batch", "nightly-job-1")] >= (8 << 20) // PAGE * 0.8, pods
    # Read and closed: no process has it open, its path comes from a handle.
    (mine,) = [f for f in got["files"] if f["ino"] == st.st_ino]
    assert mine["name"] == path and "no_path" not in mine


def test_biolatency_counts_only_the_cgroup_subtree(node):
    loop = Loop()
    try:
        proc = start_tool(tool_command("biolatency") + [
            "-d", loop.device, "-Q", "--cgroup", node.containers["db"].cgroup, "--json",
            "3600"])
        run_in(node.containers["db"].cgroup, loop.direct_reads, 29)
        loop.direct_reads(17, first_block=200)          # outside: not counted
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        loop.close()
    assert proc.returncode == 0, err
    (obj,) = [json.loads(line) for line in out.splitlines()]
    assert obj["hist"]["count"] == 29 and "groups" not in obj


def test_cgroup_filter_counts_only_its_subtree(node, true_copy):
    def work():
        workload_execs(node, true_copy)
        execs(true_copy, 19)                         # this test's cgroup: outside
    env = dict(os.environ, PYTOOLS_POD_LOGS=node.logs)
    pod_cgroup = os.path.dirname(node.containers["web"].cgroup)
    proc = subprocess.Popen(tool_command("execve-counter") + [
        "--by", "container", "--cgroup", pod_cgroup, "--json", "3600"], cwd="/",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr.readline().startswith("Tracing")
    work()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    (obj,) = [json.loads(line) for line in out.splitlines()]
    counts = {e["container"]: e["count"] for e in obj["groups"]}
    assert counts == {"web": EXECS["web"], "log-shipper": EXECS["sidecar"]}


@pytest.mark.parametrize("bad", ["/pytools-no-such-cgroup", "/etc", "/sys/fs/cgroup/../.."])
def test_a_bad_cgroup_is_a_usage_error(bad):
    result = subprocess.run(tool_command("execve-counter") + ["--cgroup", bad, "1", "1"],
                            cwd="/", capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Error: Invalid value for '--cgroup'" in result.stderr


def test_unreadable_log_directories_give_one_warning_and_uids(node, true_copy):
    env = dict(os.environ, PYTOOLS_POD_LOGS="/nonexistent-pytools")
    proc = subprocess.Popen(tool_command("execve-counter") + [
        "--by", "container", "--cgroup", node.root, "--json", "3600"], cwd="/",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr.readline().startswith("Tracing")
    run_in(node.containers["batch"].cgroup, execs, true_copy, 3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    (obj,) = [json.loads(line) for line in out.splitlines()]
    (entry,) = obj["groups"]
    assert (entry["namespace"], entry["pod"], entry["container"]) == ("", uid(2), cid(0x21)[:12])
    warnings = [line for line in err.splitlines() if "cannot read" in line]
    assert len(warnings) == 1 and "shown by UID" in warnings[0], err


def test_a_cgroup_gone_before_the_read_is_shown_by_id(node, true_copy):
    gone = os.path.join(node.root, "short-lived")
    os.makedirs(gone)
    gone_id = os.stat(gone).st_ino
    env = dict(os.environ, PYTOOLS_POD_LOGS=node.logs)
    proc = subprocess.Popen(tool_command("execve-counter") + [
        "--by", "container", "--cgroup", node.root, "--json", "3600"], cwd="/",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr.readline().startswith("Tracing")
    run_in(gone, execs, true_copy, 2)
    remove_cgroups(gone)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    (obj,) = [json.loads(line) for line in out.splitlines()]
    assert [(e["pod"], e["count"]) for e in obj["groups"]] == [(f"cgroup {gone_id}", 2)]


def cgroup_keys(map_ids) -> Dict[str, List[int]]:
    """The cgroup ids in the exporter's per-cgroup maps, read from the kernel
    (names are cut to 15 bytes; the per-cgroup maps are the ones whose keys
    start with a u64 cgroup id)."""
    found: Dict[str, List[int]] = {}
    for map_id in map_ids:
        name, keys = bpf_map_keys(map_id)
        if name in ("execve_total", "vfs_read_latenc", "readahead_cgrou"):
            found.setdefault(name, []).extend(struct.unpack_from("<Q", k)[0] for k in keys
                                              if len(k) >= 8)
    return found


def test_the_exporter_labels_pods_and_forgets_gone_ones(node, true_copy):
    before_maps = bpf_map_ids()
    exp = Exporter("--collectors", "execve,vfs_read,readahead", "--execve-by", "pod",
                   "--vfs-read-by", "pod", "--readahead-by", "pod", "--pod-logs", node.logs,
                   "--gone-after", "2")
    path = write_file(scratch_dir(), 8 << 20)
    try:
        exp.assert_serving()
        ours = bpf_map_ids() - before_maps
        first = exp.scrape()
        workload_execs(node, true_copy)
        run_in(node.containers["web"].cgroup, zero_reads, 101)
        run_in(node.containers["batch"].cgroup, cold_read, path)
        second = exp.scrape()
        for key, c in node.containers.items():
            assert diff(second, first, "execve_total", **c.labels) == EXECS[key], key
        web = node.containers["web"]
        assert diff(second, first, "vfs_read_latency_seconds_count", namespace=web.namespace,
                    pod=web.pod) >= 101     # the forked child's own reads add a few
        batch = node.containers["batch"]
        pages = sum(value(second, "readahead_pod_pages_total", kind=k,
                          namespace=batch.namespace, pod=batch.pod)
                    for k in ("sync", "async", "forced"))
        assert pages >= (8 << 20) // PAGE * 0.8

        batch_ids = {os.stat(batch.cgroup).st_ino}
        assert batch_ids <= set(cgroup_keys(ours).get("execve_total", []))
        node.remove_pod(batch)
        time.sleep(2.5)
        exp.scrape()                            # unchanged for 2 s, cgroup gone: dropped
        third = exp.scrape()
        assert not [k for k in third if dict(k[1]).get("pod") == batch.pod], \
            "a gone pod's series are still exported"
        assert value(third, "execve_total", **web.labels) == value(second, "execve_total",
                                                                    **web.labels)
        keys = cgroup_keys(ours)
        for name, ids in keys.items():
            assert not batch_ids & set(ids), f"{name} still holds the gone pod's entries"
        assert value(third, "bpf_exporter_gone_cgroups_total", collector="execve") >= 1
    finally:
        os.unlink(path)
        exp.stop()


# Prometheus's evaluation of the shipped rules and panels over the exporter's
# series: the collectors it scrapes are tested on each kernel by the tests
# above and test_exporter_kernel.py; this one runs on the host only.
@pytest.mark.userspace
def test_every_dashboard_query_answers_from_a_real_prometheus_scraping_pods(
        node, true_copy, stats_by_sysctl):
    """The DaemonSet's own arguments (from its YAML), a real Prometheus
    scraping every second and evaluating the shipped rules, and each
    dashboard expression evaluated by it (assert_dashboard_answers).
    (tests/kernel/test_exporter_native_kernel.py does the same with native
    histograms.)"""
    exp = Exporter(*daemonset_args(node))
    path = write_file(scratch_dir(), 8 << 20)
    try:
        with running_prometheus("  - job_name: bpf\n    static_configs: "
                                f"[{{targets: ['127.0.0.1:{exp.port}'], {NODE_LABEL}}}]\n",
                                rules=True) as port:
            exp.assert_serving()
            wait_for_query(port, 'up{job="bpf"}', lambda r: r and r[0]["value"][1] == "1")
            oom_kill_in(node.containers["sidecar"].cgroup)      # oomkill
            run_in(node.containers["web"].cgroup, syn_retransmits)     # tcp
            start = time.monotonic()
            while time.monotonic() - start < 30:        # load over several scrapes
                workload_execs(node, true_copy)
                run_in(node.containers["web"].cgroup, zero_reads, 500)
                run_in(node.containers["batch"].cgroup, cold_read, path)   # readahead, block I/O
                run_in(node.containers["web"].cgroup, failed_opens, 50)    # file_opens
                if time.monotonic() - start > 5 and prometheus_query(
                        port, 'namespace_pod:execve:rate5m{pod="cart-7d9f-x2"} > 0'):
                    break
                time.sleep(0.5)
            assert_dashboard_answers(port, "cart-7d9f-x2")
    finally:
        os.unlink(path)
        exp.stop()
