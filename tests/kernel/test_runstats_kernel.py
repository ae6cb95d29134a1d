"""The tools' own BPF cost, from the kernel's run-time statistics, for
real: N reads of this test's own make the programs' run count grow by at
least N, and their run time grow, in the CLI's JSON and in the exporter."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import types

import pytest

from pytools.runstats import enable_stats, holders, program_costs, total
from pytools.selfcost import SelfCost

from .exporter import Exporter, diff, value
from .perf_paranoid import least, paranoid, perf_allowed  # noqa: F401 (fixtures)
from .workload import NAMED_CHILD
from .workload import STATS_SYSCTL, stats_sysctl, tool_command


def named_reads(comm: str, n: int, run_tool, stop_tool=lambda handle: handle):
    """Start a child named comm, run_tool() once it is ready, then its n
    reads, then stop_tool(what run_tool returned) before the child is
    killed (its last, blocked read would end then)."""
    child = subprocess.Popen([sys.executable, "-c", NAMED_CHILD, comm, str(n)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        handle = run_tool()
        child.stdin.write("g")
        child.stdin.flush()
        assert child.stdout.readline() == "done\n"
        return stop_tool(handle)
    finally:
        child.kill()
        child.wait()


def json_interval(command):
    proc = subprocess.Popen(command, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    for line in proc.stderr:            # -v says which probes first
        if line.startswith("Tracing"):
            return proc
    raise AssertionError(f"no banner: {proc.communicate()}")


def finish(proc):
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    (obj,) = [json.loads(line) for line in out.splitlines()]
    return obj, err


def test_cli_json_and_verbose_carry_the_programs_cost():
    n = 301
    obj, err = named_reads("pytools-cost", n, lambda: json_interval(
        tool_command("vfsread-latency") + ["-c", "pytools-cost", "-v", "--json", "3600"]),
        finish)
    assert obj["hist"]["count"] == n
    cost = obj["bpf_cost"]
    assert cost["runs"] >= n and cost["run_ns"] > 0 and cost["ns_per_run"] > 0


def test_cli_verbose_prints_the_cost_per_interval():
    proc = subprocess.run(tool_command("execve-counter") + ["-v", "0.5", "2"], cwd="/",
                          capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("bpf cost:")]
    assert proc.returncode == 0 and len(lines) == 2, proc.stderr
    assert " runs, " in lines[0] and " ms CPU" in lines[0]


def test_without_the_right_to_turn_statistics_on_nothing_is_reported_not_zeros(perf_allowed):
    path = "/proc/sys/kernel/bpf_stats_enabled"
    with open(path) as f:
        before = f.read().strip()
    with open(path, "w") as f:        # off, as on a stock node
        f.write("0")
    try:
        result = subprocess.run(least(tool_command("execve-counter") + ["--json", "0.2", "1"]),
                                cwd="/", capture_output=True, text=True, timeout=120)
    finally:
        with open(path, "w") as f:
            f.write(before)
    assert result.returncode == 0, result.stderr
    cost = json.loads(result.stdout)["bpf_cost"]
    assert cost["runs"] is None and cost["run_ns"] is None
    assert "CAP_SYS_ADMIN" in cost["note"]


def holds_stats(pid: int) -> bool:
    return any(holder == pid for holder, _ in holders())


def reads_in_background(seconds: float) -> threading.Thread:
    def loop():
        end = time.monotonic() + seconds
        with open("/dev/zero", "rb", buffering=0) as f:
            while time.monotonic() < end:
                f.read(1)
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def test_the_exporter_samples_its_programs_cost_and_holds_no_statistics_between():
    with stats_sysctl("0"):     # as on a stock node: the exporter samples
        reader = reads_in_background(3.0)
        exp = Exporter("--collectors", "vfs_read")
        try:
            exp.assert_serving()
            deadline = time.monotonic() + 10
            while True:     # the first window (0.5 s) starts with the exporter
                samples = exp.scrape()
                runs = [v for k, v in samples.items()
                        if k[0] == "bpf_exporter_program_runs_total"]
                if runs or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            reader.join()
            # Between windows (the next is 30 s after the first) the
            # statistics are off: no fd of the exporter holds them on.
            assert not holds_stats(exp.proc.pid)
            with open(STATS_SYSCTL) as f:
                assert f.read().strip() == "0"
        finally:
            exp.stop()
    assert runs and sum(runs) > 0, "no program cost after the first window"
    seconds = sum(v for k, v in samples.items()
                  if k[0] == "bpf_exporter_program_run_seconds_total")
    assert seconds > 0
    assert 0 < value(samples, "bpf_exporter_program_stats_on_ratio") <= 1


def test_where_the_operator_holds_statistics_on_the_figures_are_exact():
    with stats_sysctl("1"):
        exp = Exporter("--collectors", "vfs_read")
        try:
            exp.assert_serving()
            first = exp.scrape()
            named_reads("pytools-costx", 401, lambda: None)
            second = exp.scrape()
            held = holds_stats(exp.proc.pid)
        finally:
            exp.stop()
    assert not held, "the exporter turned statistics on where the sysctl holds them"
    said = "".join(exp.early)        # logged before the banner, without -v
    assert "program cost: exact: kernel.bpf_stats_enabled=1" in said, said
    programs = {dict(k[1])["program"] for k in second
                if k[0] == "bpf_exporter_program_runs_total"}
    assert programs, "no program cost exported"
    runs = sum(diff(second, first, "bpf_exporter_program_runs_total", collector="vfs_read",
                    program=p) for p in programs)
    seconds = sum(diff(second, first, "bpf_exporter_program_run_seconds_total",
                       collector="vfs_read", program=p) for p in programs)
    assert runs >= 401 and seconds > 0
    assert value(second, "bpf_exporter_program_stats_on_ratio") == 1


def test_the_exporter_with_self_cost_off_turns_nothing_on_and_reports_no_cost():
    with stats_sysctl("0"):
        exp = Exporter("--collectors", "vfs_read", "--self-cost", "off")
        try:
            exp.assert_serving()
            held = holds_stats(exp.proc.pid)
            samples = exp.scrape()
        finally:
            exp.stop()
    assert not held
    assert not [k for k in samples if k[0].startswith("bpf_exporter_program_")]


GETPPID_PROGRAM = """
BPF_PERCPU_ARRAY(hits, u64, 1);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    int only = 0;
    u64 *v = hits.lookup(&only);
    if (v)
        *v += bpf_ktime_get_ns() & 1;
    return 0;
}
"""

# A steady workload: RATE getppid calls a second, in batches every 5 ms.
PACED = """
import os, sys, time
batch = int(sys.argv[1]) // 200
t = time.monotonic()
while True:
    for _ in range(batch):
        os.getppid()
    t += 0.005
    d = t - time.monotonic()
    if d > 0:
        time.sleep(d)
    elif d < -0.05:                 # fell behind (a busy machine): no catch-up burst
        t = time.monotonic()
"""
RATE = 50_000
RUNS_ERROR, TIME_ERROR = 0.05, 0.20     # the stated errors (measured here: 0.3% and 4%)


def always_on(read_costs, seconds: float):
    """Runs and run ns per second with statistics held on for `seconds`."""
    fd, problem = enable_stats()
    assert fd is not None, problem
    try:
        t0, c0 = time.monotonic(), read_costs()
        time.sleep(seconds)
        t1, c1 = time.monotonic(), read_costs()
    finally:
        os.close(fd)
    grew = total(c1) - total(c0)
    return grew.runs / (t1 - t0), grew.run_ns / (t1 - t0)


@pytest.mark.wall_clock     # a paced 50,000 calls/s over wall-clock windows: real CPUs only
def test_a_sampled_estimate_stays_near_the_always_on_figure():
    """A program on getppid (which nothing else on the machine calls much)
    and a paced workload of RATE calls a second: statistics sampled (0.25 s
    in every 1 s: the exporter's scheme, shorter) for about 8 s, and held
    on for 2 s before and after. The estimate's runs and
    run time per second stay within RUNS_ERROR and TIME_ERROR of the
    always-on figures' mean."""
    from bcc import BPF

    from pytools.loader import prepare
    prepare()                           # the kernel headers, for BCC
    bpf = BPF(text=GETPPID_PROGRAM.encode())
    program = types.SimpleNamespace(bpf=bpf)

    def read_costs():
        return {("test", name): c for name, c in program_costs(program).items()}
    child = subprocess.Popen([sys.executable, "-c", PACED, str(RATE)])
    try:
        with stats_sysctl("0"):
            time.sleep(0.5)             # the child at its pace
            first = always_on(read_costs, 2.0)
            cost = SelfCost(read_costs, "sampled", window=0.25, period=1.0)
            try:
                assert cost.how == "sampled", cost.describe()
                time.sleep(8.2)
            finally:
                cost.close()
            second = always_on(read_costs, 2.0)
        exact_runs, exact_ns = ((a + b) / 2 for a, b in zip(first, second, strict=True))
        elapsed = cost.estimator.elapsed_seconds
        estimate = list(cost.costs().values())
    finally:
        child.kill()
        child.wait()
        bpf.cleanup()
    est_runs = sum(e.runs for e in estimate) / elapsed
    est_ns = sum(e.run_ns for e in estimate) / elapsed
    assert 7 <= elapsed <= 9.5 and 0.2 <= cost.duty() <= 0.3, (elapsed, cost.duty())
    assert exact_runs > 0.8 * RATE, f"the workload did not keep its pace: {exact_runs}/s"
    assert abs(est_runs / exact_runs - 1) <= RUNS_ERROR, (est_runs, exact_runs)
    assert abs(est_ns / exact_ns - 1) <= TIME_ERROR, (est_ns, exact_ns)
