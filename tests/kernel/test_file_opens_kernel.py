"""file-opens against real syscall tracepoints: every count checked exactly
against opens made by a child process this test starts (held on its stdin
until the tool is attached, and filtered by its pid or by a fake pod's
cgroup, so nothing else on the machine can disturb the numbers)."""

import errno
import json
import os
import signal
import subprocess
import sys

import pytest

from pytools.escape import unescape
from pytools.syscalls import numbers
from pytools.tools.file_opens.spec import FileOpensReader
from pytools.tools.file_opens.output import delta
from pytools.tools.file_opens.trace import Tracer

from .exporter import Exporter, diff
from .pods import cli, failed_opens, MOUNT, node, run_in  # noqa: F401 (fixtures)
from .workload import hostile_names
from .workload import BURST_SCALE, NOBODY, start_tool, tool_command

# Opens made by a child: argv[1] is a JSON list of [call, path as latin-1
# text, flags, times]; it waits for a byte on stdin first, and leaves by
# os._exit so that nothing else (no exit handlers) opens a file after.
OPENER = """
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
NR = json.loads(sys.argv[2])
if len(sys.argv) > 3:
    os.setgroups([]); os.setgid(int(sys.argv[3])); os.setuid(int(sys.argv[3]))
class How(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]
plan = [(c, p.encode("latin-1"), f, n) for c, p, f, n in json.loads(sys.argv[1])]
sys.stdin.read(1)
for call, path, flags, times in plan:
    for _ in range(times):
        if call == "openat":
            fd = libc.syscall(NR["openat"], -100, path, flags, 0)
        elif call == "open":
            fd = libc.syscall(NR["open"], path, flags, 0)
        else:
            how = How(flags, 0, 0)
            fd = libc.syscall(NR["openat2"], -100, path, ctypes.byref(how), ctypes.sizeof(how))
        if fd >= 0:
            os.close(fd)
os._exit(0)
"""


class Opener:
    """A child that makes the opens of `plan` once released."""

    def __init__(self, plan, uid=None):
        args = [sys.executable, "-c", OPENER,
                json.dumps([[c, p.decode("latin-1"), f, n] for c, p, f, n in plan]),
                json.dumps(numbers())] + ([str(uid)] if uid is not None else [])
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, cwd="/")
        self.pid = self.proc.pid

    def release(self):
        self.proc.communicate(b"x", timeout=120)
        assert self.proc.returncode == 0


def test_counts_by_path_and_result_exactly(exec_dir):
    ok, secret = os.path.join(exec_dir, "ok"), os.path.join(exec_dir, "secret")
    for path, mode in ((ok, 0o644), (secret, 0o600)):
        with open(path, "w"):
            pass
        os.chmod(path, mode)
    missing = os.path.join(exec_dir, "missing").encode()
    calls = ["openat", "openat2"] + (["open"] if "open" in numbers() else [])
    plan = [(call, ok.encode(), os.O_RDONLY, 3) for call in calls]
    plan += [("openat", missing, os.O_RDONLY, 17), ("openat", secret.encode(), os.O_RDONLY, 5)]
    child = Opener(plan, uid=NOBODY)
    with FileOpensReader(by="pid", pid=child.pid) as reader:
        assert reader.program.candidate.mode == "tracepoint"
        before = reader.snapshot()
        child.release()
        got = delta(reader.snapshot(), before)
    assert got.counts == {(child.pid, ok.encode(), 0): 3 * len(calls),
                          (child.pid, missing, errno.ENOENT): 17,
                          (child.pid, secret.encode(), errno.EACCES): 5}
    assert got.overflow == 0


def test_failed_counts_only_errors_and_an_emfile_storm(exec_dir):
    ok = os.path.join(exec_dir, "ok").encode()
    open(ok, "w").close()
    child = Opener([("openat", b"relative/missing", os.O_RDONLY, 4),
                    ("openat", ok, os.O_RDONLY, 9)])
    with FileOpensReader(by="comm", pid=child.pid, failed=True) as reader:
        before = reader.snapshot()
        child.release()
        got = delta(reader.snapshot(), before)
    # The path as the caller passed it: relative, to its working directory.
    assert list(got.counts.values()) == [4]
    ((_, path, err),) = got.counts
    assert path == b"relative/missing" and err == errno.ENOENT

    # EMFILE: a process at its descriptor limit.
    script = ("import os, resource, sys; sys.stdin.read(1); "
              "resource.setrlimit(resource.RLIMIT_NOFILE, (8, 8)); fds = []\n"
              "for _ in range(20):\n"
              "    try: fds.append(os.open('/dev/null', os.O_RDONLY))\n"
              "    except OSError: pass\n"
              "os._exit(0)")
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE)
    with FileOpensReader(by="pid", pid=proc.pid, failed=True) as reader:
        before = reader.snapshot()
        proc.communicate(b"x", timeout=60)
        got = delta(reader.snapshot(), before)
    # 20 tries under a limit of 8 descriptors, 3 or more already open.
    assert got.counts.get((proc.pid, b"/dev/null", errno.EMFILE), 0) >= 20 - 8 + 3
    assert set(err for _, _, err in got.counts) == {errno.EMFILE}, got.counts


def traced(args, opener):
    """The tool's --trace output (and stderr) over the opener's opens."""
    proc = start_tool(tool_command("file-opens") + ["--trace", "-p", str(opener.pid)] + args)
    opener.release()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "Traceback" not in err, err
    return out, err


needs_cgroup2 = pytest.mark.skipif(MOUNT is None, reason="no cgroup2 mount: the kernel or "
                                   "host has no cgroup v2 hierarchy")
FAILS = {"web": 23, "sidecar": 7, "batch": 31}


@needs_cgroup2
def test_failed_by_pod_counts_a_fake_pods_failed_opens_exactly(node):  # noqa: F811
    misconfigured = "/etc/pytools-misconfigured.conf"

    def work():
        for key, n in FAILS.items():
            run_in(node.containers[key].cgroup, failed_opens, n, misconfigured)
            run_in(node.containers[key].cgroup, os.open, "/dev/null", os.O_RDONLY)   # not counted

    obj = cli(node, tool_command("file-opens") + ["--failed", "--by", "pod"], work)
    per = {(e["namespace"], e["pod"], e["result"]): e["count"] for e in obj["groups"]
           if e["path"] == misconfigured}
    web = node.containers["web"]
    assert per == {(web.namespace, web.pod, "ENOENT"): FAILS["web"] + FAILS["sidecar"],
                   ("batch", "nightly-job-1", "ENOENT"): FAILS["batch"]}
    assert all(e["result"] != "ok" for e in obj["groups"])


def burst(n):
    return Opener([("openat", b"/nonexistent/pytools-burst", os.O_RDONLY, n)])


BURST = 30000 // BURST_SCALE


def test_a_burst_through_a_tiny_ring_buffer_is_printed_or_counted_lost():
    out, _ = traced(["--buffer-pages", "1", "--json"], burst(BURST))
    objects = [json.loads(line) for line in out.splitlines()]
    opens = [o for o in objects if o["event"] == "open"]
    lost = [o for o in objects if o["event"] == "lost"]
    (end,) = [o for o in objects if o["event"] == "end"]
    assert end["buffer"] == "ring buffer" and end["printed"] == len(opens)
    assert lost and sum(o["count"] for o in lost) == end["lost"] > 0
    assert all(o["path"] == "/nonexistent/pytools-burst" and o["result"] == "ENOENT"
               for o in opens)
    assert len(opens) + end["lost"] == BURST


def test_a_burst_through_a_tiny_perf_buffer_is_printed_or_counted_lost():
    """The perf buffer, as kernels before 5.8 use: losses counted the same."""
    child = burst(BURST)
    printed = []
    with FileOpensReader(pid=child.pid, trace=True, buffer_pages=1, ringbuf=False) as reader:
        tracer = Tracer(reader, printed.append, True, lambda cgroup_id: {}, 1)
        assert tracer.stream.kind == "perf buffer"
        child.release()
        tracer.stream.poll(0)
        tracer.stream.drain()
        tracer.show_lost()
        counted = sum(reader.snapshot().counts.values())
    opens = [o for o in printed if o["event"] == "open"]
    assert counted == BURST          # the counts come from the map, never the stream
    assert len(opens) + tracer.lost_shown == BURST and tracer.lost_shown > 0


def test_hostile_paths_are_printed_escaped_on_one_line(exec_dir):
    paths = hostile_names(exec_dir)
    assert len(paths[-1]) == 4095
    for as_json in (False, True):
        out, err = traced(["--json"] if as_json else [],
                          Opener([("openat", p, os.O_RDONLY, 1) for p in paths]))
        lines = out.splitlines()
        seen = f"stdout: {out!r}\nstderr: {err!r}"      # what the tool said, if a check fails
        assert "\x1b" not in out and "\x9b" not in out
        if as_json:
            opens = [json.loads(line) for line in lines if '"event": "open"' in line]
            assert [unescape(o["path"]) for o in opens] == paths, seen
            assert all(o["result"] not in ("ENOENT",) for o in opens), seen
        else:
            body = lines[1:]                   # the header first
            assert len(body) == len(paths), seen     # one line each, newline or not
            assert [unescape(line.split(maxsplit=7)[7]) for line in body] == paths, seen


@needs_cgroup2
def test_the_exporter_serves_failed_opens_by_pod_and_errno(node):  # noqa: F811
    exp = Exporter("--collectors", "file_opens", "--pod-logs", node.logs)
    try:
        exp.assert_serving()
        first = exp.scrape()
        web = node.containers["web"]
        run_in(web.cgroup, failed_opens, 41)
        second = exp.scrape()
        assert diff(second, first, "file_open_errors_total", namespace=web.namespace,
                    pod=web.pod, errno="ENOENT") == 41
        assert not [k for k in second if k[0] == "file_open_errors_total"
                    and dict(k[1])["errno"] == "ok"]
    finally:
        exp.stop()


def test_non_root_gets_one_line_error():
    result = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        + tool_command("file-opens") + ["1", "1"],
        cwd="/", capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "error:" in result.stderr and "Traceback" not in result.stderr
