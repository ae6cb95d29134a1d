"""execve-counter against real tracepoints: every count checked exactly
against execs this test makes itself (as user nobody, filtered by uid, so
nothing else on the machine can disturb the numbers)."""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from pytools.tools.execve.snapshot import delta

from pytools.tools.execve.spec import ExecveReader

from .workload import (NOBODY, bpf_program_ids, cgroup_v2_id, demote, make_executables,
                       programs_gone, run_execs, run_execveat, start_tool, tool_command)


@pytest.fixture
def true_copy(exec_dir):
    return make_executables(exec_dir, [f"true-{os.getpid()}"])[0]


def measure(counter, action):
    before = counter.snapshot()
    action()
    return delta(counter.snapshot(), before)


def test_counts_execve_by_filename_exactly(true_copy):
    with ExecveReader(by="filename") as counter:
        assert counter.program.candidate.mode == "tracepoint"
        got = measure(counter, lambda: run_execs(true_copy, 23))
    assert got.counts.get(true_copy) == 23


def test_counts_execveat_under_its_relative_name(exec_dir):
    name = f"at-true-{os.getpid()}"
    make_executables(exec_dir, [name])
    dirfd = os.open(exec_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with ExecveReader(by="filename", uid=NOBODY) as counter:
            got = measure(counter, lambda: run_execveat(dirfd, name, 7))
    finally:
        os.close(dirfd)
    assert got.counts == {name: 7}


def test_counts_failed_execs_separately(true_copy, exec_dir):
    missing = os.path.join(exec_dir, "does-not-exist")

    def work():
        run_execs(true_copy, 3)
        for _ in range(5):
            with pytest.raises(FileNotFoundError):
                subprocess.run([missing], preexec_fn=os.setsid)

    with ExecveReader(by="filename") as counter:
        got = measure(counter, work)
    assert got.counts[true_copy] == 3 and got.counts[missing] == 5
    assert got.failed.get(missing) == 5 and true_copy not in got.failed
    assert got.ran(true_copy) == 3 and got.ran(missing) == 0


def path_walk(exec_dir, name, misses, times):
    """`env NAME` as nobody, `times` times, with a $PATH whose first
    `misses` directories lack NAME: each run makes `misses` failed execs
    (ENOENT) before the one that runs, as env's execvp walks $PATH."""
    dirs = []
    for i in range(misses):
        os.mkdir(os.path.join(exec_dir, f"empty{i}"), 0o755)
        dirs.append(os.path.join(exec_dir, f"empty{i}"))
    env_path = shutil.which("env")
    for _ in range(times):
        subprocess.run([env_path, name], check=True, preexec_fn=demote, cwd="/",
                       env={"PATH": ":".join(dirs + [exec_dir])})
    return [os.path.join(d, name) for d in dirs]


def test_a_path_walk_that_misses_is_counted_failed_not_ran(exec_dir):
    name = f"walk-{os.getpid()}"
    target = make_executables(exec_dir, [name])[0]
    missed = []
    with ExecveReader(by="filename", uid=NOBODY) as counter:
        got = measure(counter, lambda: missed.extend(path_walk(exec_dir, name, 3, 4)))
    # Per run: env runs, then 3 misses and the exec that runs.
    assert {k: got.ran(k) for k in [target] + missed} == {target: 4, **{m: 0 for m in missed}}
    assert {k: got.failed.get(k, 0) for k in [target] + missed} == \
        {target: 0, **{m: 4 for m in missed}}
    assert got.total_failed == 12 and got.total_ran == 8


def test_cli_shows_ran_and_failed_apart(exec_dir):
    name = f"walk-{os.getpid()}"
    target = make_executables(exec_dir, [name])[0]
    proc = start_tool(tool_command("execve-counter") + ["--uid", str(NOBODY), "--json", "60"])
    misses = path_walk(exec_dir, name, 2, 3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    last = json.loads(out.splitlines()[-1])
    groups = {g["key"]: g for g in last["groups"]}
    assert (groups[target]["ran"], groups[target]["failed"]) == (3, 0)
    assert all((groups[m]["ran"], groups[m]["failed"], groups[m]["count"]) == (0, 3, 3)
               for m in misses)
    assert (last["ran"], last["failed"], last["total"]) == (6, 6, 12)   # env ran 3 times


def test_cli_failed_keeps_only_keys_that_failed(exec_dir):
    name = f"walk-{os.getpid()}"
    target = make_executables(exec_dir, [name])[0]
    proc = start_tool(tool_command("execve-counter") + ["--uid", str(NOBODY), "--failed",
                                                        "60"])
    misses = path_walk(exec_dir, name, 1, 2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    rows = [line.split() for line in out.splitlines() if line.strip()]
    assert rows[1] == ["FILENAME", "RAN", "FAILED", "CALLS/s"], out
    assert rows[2][:3] == [misses[0], "0", "2"], out
    assert rows[-1][:3] == ["TOTAL", "4", "2"], out   # env and the target ran twice
    assert target not in out


@pytest.mark.parametrize("by", ["comm", "uid", "cgroup"])
def test_other_keys(by, true_copy):
    with open("/proc/self/comm") as f:
        comm = f.read().strip()  # a forked child execs under its parent's name
    expected = {"comm": comm, "uid": NOBODY, "cgroup": cgroup_v2_id()}[by]
    with ExecveReader(by=by, uid=NOBODY) as counter:
        got = measure(counter, lambda: run_execs(true_copy, 11))
    if expected is None:  # no cgroup v2 mount to name the id: one key all the same
        assert list(got.counts.values()) == [11]
    else:
        assert got.counts == {expected: 11}


def test_pid_filter_counts_only_that_process(true_copy):
    child = subprocess.Popen(
        [sys.executable, "-c", f"import os,sys; sys.stdin.read(1); os.execv({true_copy!r}, ['t'])"],
        stdin=subprocess.PIPE)
    try:
        with ExecveReader(by="filename", pid=child.pid) as counter:
            def work():
                run_execs(true_copy, 5)  # other processes: not counted
                child.communicate(b"x")
            got = measure(counter, work)
    finally:
        child.kill()
        child.wait()
    assert got.counts == {true_copy: 1}


def test_full_map_counts_overflow_instead_of_losing_calls(exec_dir):
    paths = make_executables(exec_dir, [f"t{i}" for i in range(10)])
    with ExecveReader(by="filename", uid=NOBODY, max_keys=4) as counter:
        got = measure(counter, lambda: [run_execs(p, 1) for p in paths])
    assert len(got.counts) == 4 and set(got.counts.values()) == {1}
    assert got.overflow == 6 and got.total == 10


def test_cli_json_from_root_dir_counts_each_interval(true_copy):
    proc = start_tool(tool_command("execve-counter") +
                      ["--json", "--uid", str(NOBODY), "0.5"])
    first = json.loads(proc.stdout.readline())  # an interval has passed
    run_execs(true_copy, 23)                    # over one or more intervals
    proc.send_signal(signal.SIGINT)             # prints the partial last one
    out, err = proc.communicate(timeout=30)
    objects = [first] + [json.loads(line) for line in out.splitlines()]
    assert proc.returncode == 0 and len(objects) >= 2, err
    seen = [sum(e["count"] for e in o["groups"] if e["key"] == true_copy) for o in objects]
    assert seen[0] == 0 and sum(seen) == 23, seen   # each exec in exactly one interval
    assert all(o["probe"]["mode"] == "tracepoint" for o in objects)
    assert all(o["total"] == sum(e["count"] for e in o["groups"]) + o["other"]["count"]
               + o["overflow"] for o in objects)


def test_cli_table_from_root_dir(true_copy):
    proc = start_tool(tool_command("execve-counter") + ["--uid", str(NOBODY), "-T", "1", "1"])
    run_execs(true_copy, 5)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    rows = [line.split() for line in out.splitlines() if line.strip()]
    assert [true_copy, "5"] in [r[:2] for r in rows]
    assert ["TOTAL", "5"] == rows[-1][:2]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_prints_last_interval_and_detaches(sig, true_copy):
    before = bpf_program_ids()
    proc = start_tool(tool_command("execve-counter") + ["--uid", str(NOBODY), "--json", "60"])
    ours = bpf_program_ids() - before
    assert ours, "the tool's programs should be visible while it runs"
    run_execs(true_copy, 3)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    last = json.loads(out.splitlines()[-1])
    assert sum(e["count"] for e in last["groups"] if e["key"] == true_copy) == 3
    assert "Traceback" not in err
    assert programs_gone(ours), f"programs {bpf_program_ids() & ours} still loaded after exit"


def test_non_root_gets_one_line_error():
    result = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        + tool_command("execve-counter") + ["1", "1"],
        cwd="/", capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "error:" in result.stderr
    assert "sudo" in result.stderr and "Traceback" not in result.stderr
