"""oomkill against real OOM kills: a fake pod's container (tests/kernel/
test_workloads_kernel.py's FakeNode) whose process also sits in a memory
cgroup limited to MEMORY_LIMIT runs a child that allocates more, N times;
each kill the tool prints names the child's command and the pod, and the
tool's and the exporter's counts equal the memory cgroup's own oom_kill
counter. The memory cgroup is the machine's: cgroup v1's memory
controller where it is bound there (this host), else the pod's own
cgroup v2 (memory.max, memory.events).

A machine-wide OOM is not made here (it would take the test machine down,
and this kernel has no sysrq to force one): what decides "global" is the
walk over the victim's memory cgroups finding no limit within reach,
tested here by a kill under a limit set on the parent memory cgroup (the
walk goes up) and in tests/unit/test_oomkill.py for the rest."""

import json
import os
import subprocess
from typing import Optional

import pytest

from .exporter import Exporter, value
from .memory_cgroup import HOG, MEMORY_LIMIT, MemoryCgroup, kill_n
from .modes import need_mode
from .pods import MOUNT, node  # noqa: F401 (fixtures)
from .workload import start_tool, stop_tool, tool_command

pytestmark = pytest.mark.skipif(MOUNT is None, reason="no cgroup2 mount")


def start(args, node):  # noqa: F811
    return start_tool(tool_command("oomkill") + args + ["--json", "3600"],
                      env=dict(os.environ, PYTOOLS_POD_LOGS=node.logs))


def stop(proc) -> list:
    out, _ = stop_tool(proc)
    return [json.loads(line) for line in out.splitlines()]


KILLS = 3


@pytest.fixture
def memory(node):  # noqa: F811
    cg = MemoryCgroup(node.containers["batch"].cgroup, f"pytools-oom-{os.getpid()}",
                      MEMORY_LIMIT)
    yield cg
    cg.close()


def check_kills(kills: list, container, n: int, limit: Optional[int]) -> None:
    assert len(kills) == n
    for e in kills:
        assert e["comm"] == HOG and e["attributed"]
        assert (e["namespace"], e["pod"], e["container"]) == \
            (container.namespace, container.pod, container.name)
        assert e["constraint"] == "memcg" and e["memcg_limit_bytes"] == limit
        assert e["trigger"]["comm"] == HOG      # the hog's own allocation set it off
        if e["anon_rss_kb"] is not None:        # 6.8+: the tracepoint carries the memory
            assert 0 < e["anon_rss_kb"] * 1024 <= limit


def test_each_kill_in_a_fake_pod_is_printed_and_counted_as_the_kernel_counts(node, memory):  # noqa: F811
    need_mode("raw_tracepoint", tracepoint="signal:signal_generate")
    batch = node.containers["batch"]
    proc = start(["--cgroup", node.root], node)
    counted = kill_n(memory, KILLS)
    objects = stop(proc)
    assert counted == KILLS
    check_kills([o for o in objects if o["event"] == "oom_kill"], batch, counted, MEMORY_LIMIT)
    (counts,) = [o for o in objects if o["event"] == "counts"]
    assert [(g["namespace"], g["pod"], g["count"]) for g in counts["groups"]] == \
        [(batch.namespace, batch.pod, counted)]
    assert counts["unattributed"] == 0 and counts["total"] == counted


def test_a_limit_on_the_parent_memory_cgroup_is_the_one_named(node):  # noqa: F811
    need_mode("raw_tracepoint", tracepoint="signal:signal_generate")
    web = node.containers["web"]
    memory = MemoryCgroup(web.cgroup, f"pytools-oom-parent-{os.getpid()}", MEMORY_LIMIT,
                          on_parent=True)
    try:
        proc = start(["--cgroup", os.path.dirname(web.cgroup)], node)
        counted = kill_n(memory, 1)
        objects = stop(proc)
    finally:
        memory.close()
    check_kills([o for o in objects if o["event"] == "oom_kill"], web, counted, MEMORY_LIMIT)


def test_kills_outside_the_cgroup_filter_are_not_shown(node, memory):  # noqa: F811
    need_mode("raw_tracepoint", tracepoint="signal:signal_generate")
    proc = start(["--cgroup", os.path.dirname(node.containers["web"].cgroup)], node)
    assert kill_n(memory, 1) == 1                          # in the batch pod
    objects = stop(proc)
    assert not [o for o in objects if o["event"] == "oom_kill"]


def test_the_tracepoint_mode_counts_kills_as_not_attributed(node, memory):  # noqa: F811
    need_mode("tracepoint", tracepoint="oom:mark_victim")
    proc = start(["--probe", "tracepoint"], node)
    counted = kill_n(memory, 2)
    objects = stop(proc)
    mine = [o for o in objects if o["event"] == "oom_kill"
            and o["comm"] in (HOG, None)]                     # 6.1: pid only
    assert len(mine) >= counted == 2
    assert all(not o["attributed"] and o["pod"] is None and o["constraint"] == "unknown"
               for o in mine)
    (counts,) = [o for o in objects if o["event"] == "counts"]
    assert counts["unattributed"] >= counted and not counts["groups"]


def test_the_exporter_counts_a_pods_kills_as_the_kernel_does(node, memory):  # noqa: F811
    batch = node.containers["batch"]
    exp = Exporter("--collectors", "oomkill", "--pod-logs", node.logs)
    try:
        exp.assert_serving()
        labels = dict(namespace=batch.namespace, pod=batch.pod, container=batch.name)
        assert not [k for k in exp.scrape() if k[0] == "oom_kills_total"
                    and dict(k[1]) == labels]
        counted = kill_n(memory, KILLS)
        assert counted == KILLS
        assert value(exp.scrape(), "oom_kills_total", **labels) == counted
    finally:
        exp.stop()


def test_non_root_gets_one_line_error():
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
                            + tool_command("oomkill") + ["1", "1"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "root" in result.stderr
