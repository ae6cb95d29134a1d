"""The tools' own BPF cost, from the kernel's run-time statistics, for
real: N reads of this test's own make the programs' run count grow by at
least N, and their run time grow, in the CLI's JSON and in the exporter."""

import json
import signal
import subprocess
import sys

from .test_exporter_kernel import Exporter, diff
from .test_privileges_kernel import least, paranoid, perf_allowed  # noqa: F401 (fixtures)
from .test_vfs_read_kernel import NAMED_CHILD
from .workload import tool_command


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


def test_the_exporter_exports_its_programs_cost():
    exp = Exporter("--collectors", "vfs_read")
    try:
        exp.assert_serving()
        first = exp.scrape()
        named_reads("pytools-costx", 401, lambda: None)
        second = exp.scrape()
    finally:
        exp.stop()
    programs = {dict(k[1])["program"] for k in second
                if k[0] == "bpf_exporter_program_runs_total"}
    assert programs, "no program cost exported"
    runs = sum(diff(second, first, "bpf_exporter_program_runs_total", collector="vfs_read",
                    program=p) for p in programs)
    seconds = sum(diff(second, first, "bpf_exporter_program_run_seconds_total",
                       collector="vfs_read", program=p) for p in programs)
    assert runs >= 401 and seconds > 0
