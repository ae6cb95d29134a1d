"""runqlat's pure parts: the preemption bit from sched_switch's print
format, cflags, plan, delta, text, JSON and its metric families."""

import json

import pytest
from prometheus_client import CollectorRegistry

from pytools.self_metrics import SelfStats
from pytools.hist import Log2Hist
from pytools.kernel import kernel_version_code
from pytools.tools.runqlat import output as rq_output
from pytools.tools.runqlat import plan as rq_plan
from pytools.tools.runqlat.snapshot import RunqSnapshot, delta

from .sources import FixedSource, tool_collector

# sched_switch's print format on 6.1 and 6.18 (the prev_state part).
FORMAT_6 = (
    'print fmt: "prev_comm=%s prev_pid=%d prev_prio=%d prev_state=%s%s ==> next_comm=%s", '
    "REC->prev_comm, REC->prev_pid, REC->prev_prio, (REC->prev_state & ((((0x00000000 | "
    "0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | "
    "0x00000040) + 1) << 1) - 1)) ? __print_flags(REC->prev_state & ((((0x00000000 | "
    "0x00000001) + 1) << 1) - 1), \"|\", { 0x00000001, \"S\" }) : \"R\", REC->prev_state & "
    "(((0x00000000 | 0x00000001) + 1) << 1) ? \"+\" : \"\", REC->next_comm")
# 4.14-era kernels: TASK_REPORT_MAX was 0x80.
FORMAT_4 = ('print fmt: "...", (REC->prev_state & ((((0x0000 | 0x0001 | 0x0002 | 0x0004 | '
            '0x0008 | 0x0010 | 0x0020 | 0x0040) + 1) << 1) - 1)) ? __print_flags(...) : "R"')


def hist(*values_ns):
    return Log2Hist.from_values(list(values_ns), 1000, "usecs")


def test_the_not_runnable_mask_comes_from_the_print_format():
    assert rq_plan.state_mask(FORMAT_6) == 0xFF
    assert rq_plan.state_mask(FORMAT_4) == 0xFF
    assert rq_plan.state_mask('print fmt: "x", REC->prev_state & (0x7f) ? "S" : "R"') is None
    assert rq_plan.state_mask("print fmt: nothing") is None
    # Only literals and | + - << are evaluated: anything else is no mask.
    assert rq_plan.state_mask("(REC->prev_state & (__import__('os').getpid()))") is None
    assert rq_plan._evaluate("((1 | 2) + 1) << 2") == 16 and rq_plan._evaluate("1 * 2") is None


def test_the_machines_own_format_gives_a_mask_where_tracefs_is_readable():
    # 0xff on every kernel since 4.14; the fallback is the same value.
    assert rq_plan.read_state_mask() == 0xFF
    assert rq_plan.read_state_mask("/nonexistent") == rq_plan.DEFAULT_STATE_MASK


def test_cflags_and_plan():
    flags = rq_plan.cflags("msecs", pid=42, comm="ab", per="pod", pid_max=4_194_304, mask=0xFF,
                      max_keys=8)
    assert flags == ["-DHIST_SLOTS=64", "-DUNIT_NS=1000000", "-DUNIT_BITS=20", "-DKEY_TGID=1",
                     "-DKEY_TID=2", "-DKEY_CGROUP=3", "-DWAIT_UNATTRIBUTED=0",
                     "-DWAIT_MAP_FULL=1", "-DWAIT_LOST=2", "-DWAIT_COUNTS=3",
                     "-DSTART_SLOTS=65536", "-DSTATE_MASK=0xff",
                     f"-DKERNEL_VERSION_CODE={kernel_version_code():#x}", "-DMAX_KEYS=8",
                     "-DFILTER_PID=42", "-DFILTER_COMM_LO=0x6261ULL", "-DFILTER_COMM_HI=0x0ULL",
                     "-DPER_KEY=3"]
    assert "-DPER_KEY=1" in rq_plan.cflags(per="pid") and "-DPER_KEY=2" in rq_plan.cflags(per="tid")
    with pytest.raises(ValueError):
        rq_plan.cflags(per="service")
    for comm in ("", "x" * 16):             # the kernel compares 1 to 15 bytes
        with pytest.raises(ValueError):
            rq_plan.cflags(comm=comm)
    raw, tracepoint = rq_plan.plan()
    assert (raw.mode, raw.reads_structs, tracepoint.mode) == ("raw_tracepoint", True,
                                                              "tracepoint")
    for candidate in (raw, tracepoint):
        assert [h.target for h in candidate.hooks] == [
            "sched:sched_wakeup", "sched:sched_wakeup_new", "sched:sched_switch"]


def test_delta_keeps_keys_that_changed():
    prev = RunqSnapshot(hist(1000), {1: hist(1000), 2: hist(5000)}, 1, 0, 0, 1.0)
    cur = RunqSnapshot(hist(1000, 3000, 9000), {1: hist(1000, 3000), 2: hist(5000),
                                                3: hist(9000)}, 4, 1, 2, 3.0)
    d = delta(cur, prev)
    assert d.hist.count == 2 and {k: h.count for k, h in d.per_key.items()} == {1: 1, 3: 1}
    assert (d.unattributed, d.map_full, d.lost, d.elapsed) == (3, 1, 2, 2.0)
    assert delta(RunqSnapshot(hist(1)), RunqSnapshot(hist())).per_key is None


def test_text_per_thread_and_notes_fit_80_columns():
    snap = RunqSnapshot(hist(1500, 3000), {1: hist(1500), 999999: hist(3000)},
                        unattributed=3, map_full=2, lost=4, elapsed=1.0)
    lines = rq_output.runqlat_text(snap, "scheduler via tracepoints", 1.0, 1, "tid", None,
                            "12:00:00").splitlines()
    assert lines[0] == "12:00:00 scheduler via tracepoints, 1.0s"
    assert any(line.endswith(" [1]") for line in lines)        # `comm [tid]`
    assert "[1 more threads]" in lines
    assert lines[-3] == "[3 waits of tasks never seen leaving a CPU: no process or cgroup]"
    assert lines[-2] == "[2 waits not kept per key: map full]"
    assert lines[-1] == "[4 waits not timed: their start slot was taken]"
    assert max(len(line) for line in lines) <= 80
    assert "(no events)" in rq_output.runqlat_text(RunqSnapshot(hist()), "x", 1.0, 5, None)


def test_json_per_process():
    snap = RunqSnapshot(hist(2000, 3000), {1: hist(2000, 3000)}, elapsed=1.0)
    obj = json.loads(json.dumps(rq_output.runqlat_json(snap, {"mode": "tracepoint"}, 1.0, 5, "t",
                                                "pid")))
    assert obj["hist"]["count"] == 2 and obj["hist"]["sum_ns"] == 5000
    (row,) = obj["groups"]
    assert row["pid"] == 1 and row["hist"]["count"] == 2 and obj["by"] == "pid"
    assert row["key"] == f"{row['comm']} [1]" and obj["other"] == {"keys": 0, "count": 0}
    assert "groups" not in rq_output.runqlat_json(snap, {}, 1.0, 5, "t", None)


def test_families_unlabelled_with_exact_sums():
    snap = RunqSnapshot(hist(1500, 3000, 3000), unattributed=2, map_full=1, lost=5)
    collector = tool_collector("runqlat", FixedSource(snap), SelfStats(), "k", 10)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    get = registry.get_sample_value
    assert get("run_queue_latency_seconds_count") == 3
    assert get("run_queue_latency_seconds_sum") == 7.5e-06
    assert get("run_queue_latency_seconds_bucket", {"le": "1.999e-06"}) == 1
    assert get("run_queue_latency_seconds_bucket", {"le": "+Inf"}) == 3
    assert get("run_queue_unattributed_total") == 3 and get("run_queue_lost_total") == 5
    assert get("runqlat_probe_info", {"mode": "tracepoint", "probe": "via tracepoints",
                                      "kernel": "k"}) == 1


def test_threads_are_named_as_the_kernel_saw_them_and_names_survive_the_delta():
    """-L labels come from the snapshot (the name at the thread's last
    wait, from the kernel), never from /proc at rendering time."""
    prev = RunqSnapshot(hist(1000), {8006: hist(1000)}, names={8006: "old"})
    cur = RunqSnapshot(hist(1000, 3000), {8006: hist(1000, 3000, 4000), 7: hist(5)},
                       names={8006: "worker-3"})
    shown = delta(cur, prev)
    groups = rq_output.runqlat_groups(shown, "tid", None)
    assert [(key, labels["comm"]) for key, labels, _ in groups] == \
        [("worker-3 [8006]", "worker-3"), ("? [7]", "?")]
