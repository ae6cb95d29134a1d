"""execve-counter --trace against real tracepoints: each exec a child of
this test makes (in a fake pod's cgroup, or one process filtered by pid, so
nothing else on the machine can disturb the numbers) is printed once, with
its arguments as passed, its parent, its pod and its result."""

import errno
import json
import os
import shutil
import subprocess
import sys

from pytools.escape import unescape
from pytools.tools.execve.spec import ExecveReader
from pytools.tools.execve.trace import SHARED, Tracer

from .pods import node, run_in, true_copy  # noqa: F401 (fixtures)
from .workload import BURST_SCALE, hostile_names, run_tool, tool_command

ARG_LEN = SHARED["ARG_LEN"]


def exec_plan(plan, pidfile):
    """For each (path, argv): fork, and the child execs it (127 if it
    cannot); the forker's pid (the execs' parent) written to pidfile."""
    with open(pidfile, "w") as f:
        f.write(str(os.getpid()))
    for path, argv in plan:
        pid = os.fork()
        if pid == 0:
            try:
                os.execv(path, argv)
            finally:
                os._exit(127)
        os.waitpid(pid, 0)


def trace(args, work, logs=None):
    """The tool's --trace output over work(), and its stderr."""
    env = dict(os.environ, PYTOOLS_POD_LOGS=logs) if logs else None
    return run_tool(tool_command("execve-counter") + ["--trace"] + args, work, env=env,
                    timeout=120)


def json_trace(args, work, logs=None):
    out, _ = trace(args + ["--json"], work, logs)
    objects = [json.loads(line) for line in out.splitlines()]
    (end,) = [o for o in objects if o["event"] == "end"]
    execs = [o for o in objects if o["event"] == "exec"]
    assert end["printed"] == len(execs) and end["lost"] == 0
    return execs


def test_each_exec_with_its_arguments_parent_pod_and_result(node, true_copy, tmp_path):  # noqa: F811
    web, pidfile = node.containers["web"], str(tmp_path / "forker")
    missing = os.path.join(os.path.dirname(true_copy), "missing")
    argv = ["renamed", "--flag", "a b", "", "x" * ARG_LEN]
    plan = [(true_copy, argv)] * 3 + [(missing, [missing, "-v"])] * 2

    def work():
        run_in(web.cgroup, exec_plan, plan, pidfile)
        run_in(node.service, exec_plan, [(true_copy, [true_copy])], pidfile + "-service")

    execs = json_trace(["--cgroup", node.root], work, node.logs)
    forker = int(open(pidfile).read())
    with open("/proc/self/comm") as f:
        comm = f.read().strip()          # the forker's: a fork of this process
    assert len(execs) == 6, execs
    ran = [e for e in execs if e["file"] == true_copy and e["pod"]]
    assert len(ran) == 3 and len({e["pid"] for e in ran}) == 3
    for e in ran:
        assert e["argv"] == argv and e["argv_cut"] == [] and not e["argv_more"]
        assert (e["result"], e["ret"], e["failed"]) == ("ok", 0, False)
        assert e["ppid"] == forker and e["comm"] == comm   # the caller's, before the exec
        assert (e["namespace"], e["pod"], e["container"]) == (web.namespace, web.pod, web.name)
    failed = [e for e in execs if e["failed"]]
    assert [(e["file"], e["argv"], e["result"], e["ret"]) for e in failed] == \
        [(missing, [missing, "-v"], "ENOENT", -errno.ENOENT)] * 2
    assert all(e["ppid"] == forker and e["pod"] == web.pod for e in failed)
    (outside,) = [e for e in execs if not e["pod"]]
    with open(pidfile + "-service") as f:
        assert outside["file"] == true_copy and outside["ppid"] == int(f.read())

    # --by pod keeps execs in pods only; --failed only the failed ones.
    execs = json_trace(["--cgroup", node.root, "--by", "pod", "--failed"], work, node.logs)
    assert [(e["file"], e["pod"], e["result"]) for e in execs] == \
        [(missing, web.pod, "ENOENT")] * 2
    execs = json_trace(["--cgroup", node.root, "--ok"], work, node.logs)
    assert sorted(e["pod"] for e in execs) == ["", web.pod, web.pod, web.pod]

    # As text: one line each, the pod, the parent, the result.
    out, _ = trace(["--cgroup", node.root, "--by", "container"], work, node.logs)
    lines, forker = out.splitlines()[1:], int(open(pidfile).read())
    assert len(lines) == 5
    for line in lines:
        fields = line.split(maxsplit=6)
        assert fields[1] == f"{web.namespace}/{web.pod}/{web.name}" and fields[3] == \
            str(forker)
        assert (fields[5], fields[6]) in (
            ("ok", f'{true_copy} [argv0 renamed] --flag "a b" "" {"x" * ARG_LEN}'),
            ("ENOENT", f"{missing} -v"))


def test_hostile_names_and_arguments_are_printed_escaped_on_one_line(node, exec_dir):  # noqa: F811
    paths = hostile_names(exec_dir)
    for path in paths:
        shutil.copy("/bin/true", path)
        os.chmod(path, 0o755)
    hostile_args = [b"new\nline", b"\x1b[2J\x1b]0;pwned\x07", b"bad-\xff\xfe-utf8",
                    b"csi-\x9b31m", b"A" * 4096]
    plan = [(path, [b"argv0"] + hostile_args) for path in paths]
    pidfile = os.path.join(exec_dir, "forker")
    for as_json in (False, True):
        out, _ = trace(["--cgroup", node.service] + (["--json"] if as_json else []),
                       lambda: run_in(node.service, exec_plan, plan, pidfile))
        assert "\x1b" not in out and "\x9b" not in out and "\ufffd" not in out
        if as_json:
            execs = [json.loads(line) for line in out.splitlines() if '"event": "exec"' in line]
            assert [unescape(e["file"]) for e in execs] == paths
            for e in execs:
                assert [unescape(a) for a in e["argv"]] == \
                    [b"argv0"] + hostile_args[:-1] + [b"A" * ARG_LEN]
                assert e["argv_cut"] == [len(hostile_args)] and e["result"] == "ok"
        else:
            body = out.splitlines()[1:]           # the header first
            assert len(body) == len(paths)        # one line each, newlines or not
            files = [unescape(line.split(maxsplit=6)[6].split(" ")[0]) for line in body]
            assert files == paths
            assert all(line.endswith("A" * ARG_LEN + "[cut]") for line in body)


# Failed execs (ENOENT) from one process: cheap, so a burst outruns the reader.
BURSTER = """
import os, sys
args = [b"x" * 100] * 22
sys.stdin.read(1)
for _ in range(int(sys.argv[1])):
    try:
        os.execv(b"/nonexistent/pytools-burst", args)
    except OSError:
        pass
os._exit(0)
"""
BURST = 20000 // BURST_SCALE


def burster():
    return subprocess.Popen([sys.executable, "-c", BURSTER, str(BURST)], stdin=subprocess.PIPE)


def test_a_burst_through_a_tiny_ring_buffer_is_printed_or_counted_lost():
    child = burster()
    out, _ = trace(["-p", str(child.pid), "--buffer-pages", "1", "--json"],
                   lambda: child.communicate(b"x", timeout=120))
    objects = [json.loads(line) for line in out.splitlines()]
    execs = [o for o in objects if o["event"] == "exec"]
    (end,) = [o for o in objects if o["event"] == "end"]
    assert end["buffer"] == "ring buffer" and end["printed"] == len(execs)
    assert sum(o["count"] for o in objects if o["event"] == "lost") == end["lost"] > 0
    assert all(e["result"] == "ENOENT" and len(e["argv"]) == 21 and e["argv_more"]
               for e in execs)
    assert len(execs) + end["lost"] == BURST


def test_a_burst_through_a_tiny_perf_buffer_is_counted_from_the_maps_all_the_same():
    """The perf buffer, as kernels before 5.8 use: losses counted the same,
    and the counts (the exporter's) never depend on the stream."""
    child = burster()
    printed = []
    trace_opts = {"trace": True, "outcome": None, "buffer_pages": 1, "ringbuf": False}
    with ExecveReader(by="comm", pid=child.pid, **trace_opts) as reader:
        tracer = Tracer(reader, printed.append, True, lambda cgroup_id: {}, 1)
        assert tracer.stream.kind == "perf buffer"
        before = reader.snapshot()
        child.communicate(b"x", timeout=120)
        tracer.stream.poll(0)
        tracer.stream.drain()
        tracer.show_lost()
        after = reader.snapshot()
    assert after.total - before.total == BURST and after.total_failed - before.total_failed == BURST
    execs = [o for o in printed if o["event"] == "exec"]
    assert len(execs) + tracer.lost_shown == BURST and tracer.lost_shown > 0


THREAD_EXEC = """
import os, sys, threading
sys.stdin.read(1)
t = threading.Thread(target=os.execv, args=(sys.argv[1], ["from-thread", "arg"]))
t.start()
t.join()
"""


def test_an_exec_from_a_thread_that_is_not_the_leader_is_traced(true_copy):  # noqa: F811
    """It returns under the leader's thread id (the kernel's de_thread)."""
    child = subprocess.Popen([sys.executable, "-c", THREAD_EXEC, true_copy],
                             stdin=subprocess.PIPE)
    execs = json_trace(["-p", str(child.pid)],
                       lambda: child.communicate(b"x", timeout=60))
    assert child.returncode == 0
    assert [(e["pid"], e["file"], e["argv"], e["result"]) for e in execs] == \
        [(child.pid, true_copy, ["from-thread", "arg"], "ok")]
    assert execs[0]["tid"] != child.pid and execs[0]["ppid"] == os.getpid()
