"""Privileges, for real.

- Partial: a non-root user holding CAP_BPF and CAP_PERFMON (what the
  not-root message offers) but not the right to read tracefs, which is
  root's and mode 0700. Each tool and the exporter must name that cause in
  one line with the fix, not claim a tracepoint is missing.
- Least: the same user holding exactly LEAST_CAPABILITIES (what the systemd
  unit and the DaemonSet grant) runs every tool and the exporter, and they
  count exactly; doctor finds nothing missing."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request

import pytest

from pytools.tools import TOOLS

from .block import loop  # noqa: F401 (fixtures)
from .exporter import free_port
from .modes import scratch_dir
from .perf_paranoid import least, paranoid, perf_allowed  # noqa: F401 (fixtures)
from .workload import NAMED_CHILD
from .workload import (NOBODY, evict_and_read, make_executables, run_execs, start_tool,
                       tool_command, write_file)


def as_nobody_with(caps, command):
    flags = ",".join(f"+{c}" for c in caps)
    return subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         f"--inh-caps={flags}", f"--ambient-caps={flags}"] + command,
        cwd="/", capture_output=True, text=True, timeout=120)


def tracefs_is_closed_to_others() -> bool:
    return not os.stat("/sys/kernel/tracing").st_mode & 0o005


COMMANDS = [[t.command, "1", "1"] for t in TOOLS] + [
    ["bpf-exporter", "--listen", "127.0.0.1:0"], ["pytools", "doctor"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_cap_bpf_and_perfmon_without_tracefs_access_is_one_line_naming_it(command,
                                                                          perf_allowed):
    if not tracefs_is_closed_to_others():
        pytest.skip("tracefs here is open to other users: nothing to refuse")
    if command[0] == "bpf-exporter":
        command = command[:2] + [f"127.0.0.1:{free_port()}"]
    result = as_nobody_with(["bpf", "perfmon"], tool_command(command[0]) + command[1:])
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "no tracepoint" not in result.stderr
    if command[0] == "pytools":        # doctor: a FAIL row with the fix
        assert "cannot read tracepoint ids in /sys/kernel/tracing" in result.stdout
        assert "CAP_DAC_READ_SEARCH" in result.stdout
        return
    lines = result.stderr.strip().splitlines()
    assert lines == [f"{command[0]}: error: cannot read tracepoint ids in /sys/kernel/tracing "
                     "(mode 0700, root's) (add CAP_DAC_READ_SEARCH to CAP_BPF and CAP_PERFMON, "
                     "or run as root)"], result.stderr


# ------------------------------------------------ the documented capability set

PERF_PROBE = r"""
import ctypes, os, sys
attr = (ctypes.c_uint32 * 32)()
attr[0], attr[1], attr[2] = 1, ctypes.sizeof(attr), 9      # software, dummy
nr = {"x86_64": 298, "aarch64": 241}[os.uname().machine]
fd = ctypes.CDLL(None, use_errno=True).syscall(nr, ctypes.byref(attr), 0, -1, -1, 0)
sys.exit(0 if fd >= 0 else 1)
"""


def nobody_may_open_perf_events() -> bool:
    """Ground truth, without pytools: may user nobody holding the least
    capabilities open any perf event at this perf_event_paranoid?"""
    return subprocess.run(least([sys.executable, "-c", PERF_PROBE])).returncode == 0


def test_perf_event_paranoid_3_is_named_in_one_line_where_it_refuses(paranoid):
    paranoid(3)
    refused = not nobody_may_open_perf_events()
    result = subprocess.run(least(tool_command("execve-counter") + ["1", "1"]), cwd="/",
                            capture_output=True, text=True, timeout=120)
    if refused:     # Debian's kernels: level 3 is theirs
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            "execve-counter: error: perf_event_open is refused to this process "
            "(kernel.perf_event_paranoid is 3: this kernel lets only CAP_SYS_ADMIN open perf "
            "events at that level) (sysctl -w kernel.perf_event_paranoid=2 (the documented "
            "capabilities then suffice), or run as root)"], result.stderr
    else:           # upstream kernels treat 3 as 2: the capabilities suffice
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        assert "TOTAL" in result.stdout


def finish(proc):
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err, err
    return [json.loads(line) for line in out.splitlines()]


def test_doctor_with_the_least_capabilities_finds_nothing_missing(perf_allowed):
    result = subprocess.run(least(tool_command("pytools") + ["doctor"]), cwd="/",
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " FAIL " not in result.stdout


def test_execve_counter_with_the_least_capabilities_counts_exactly(perf_allowed):
    workdir = tempfile.mkdtemp()
    try:
        (true_copy,) = make_executables(workdir, ["pytools-caps-true"])
        proc = start_tool(least(tool_command("execve-counter") + ["--json", "3600"]))
        run_execs(true_copy, 13)
        (obj,) = finish(proc)
    finally:
        shutil.rmtree(workdir)
    assert sum(e["count"] for e in obj["groups"] if e["key"] == true_copy) == 13


def test_vfsread_latency_with_the_least_capabilities_counts_exactly(perf_allowed):
    n, comm = 101, "pytools-caps"
    child = subprocess.Popen([sys.executable, "-c", NAMED_CHILD, comm, str(n)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        proc = start_tool(least(tool_command("vfsread-latency") + ["-c", comm, "--json",
                                                                   "3600"]))
        child.stdin.write("g")
        child.stdin.flush()
        assert child.stdout.readline() == "done\n"
        (obj,) = finish(proc)
    finally:
        child.kill()
        child.wait()
    assert obj["hist"]["count"] == n


def test_readahead_stats_with_the_least_capabilities_sees_a_cold_read(perf_allowed):
    path = write_file(scratch_dir(), 8 << 20)
    try:
        st = os.stat(path)
        proc = start_tool(least(tool_command("readahead-stats") + [
            "--json", "-d", f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}", "3600"]))
        evict_and_read(path)
        (obj,) = finish(proc)
    finally:
        os.unlink(path)
    pages = sum(f["pages"] for f in obj["files"] if f["ino"] == st.st_ino)
    assert pages >= (8 << 20) // os.sysconf("SC_PAGE_SIZE") * 0.8


def test_biolatency_with_the_least_capabilities_counts_exactly(loop, perf_allowed):
    proc = start_tool(least(tool_command("biolatency") + ["-d", loop.device, "-D", "--json",
                                                          "3600"]))
    loop.direct_reads(37)
    (obj,) = finish(proc)
    (hist,) = obj["groups"]
    assert hist["hist"]["count"] == 37


def test_the_exporter_with_the_least_capabilities_counts_exactly(perf_allowed):
    port = free_port()
    proc = subprocess.Popen(least(tool_command("bpf-exporter") + [
        "--listen", f"127.0.0.1:{port}", "--collectors", "execve", "--execve-by", "filename"]),
        cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workdir = tempfile.mkdtemp()
    try:
        early = []
        for line in proc.stderr:          # warnings (no run-time statistics) come first
            early.append(line)
            if line.startswith("Serving"):
                break
        assert early and early[-1].startswith("Serving"), early
        (true_copy,) = make_executables(workdir, ["pytools-caps-exp"])
        run_execs(true_copy, 9)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
    finally:
        shutil.rmtree(workdir)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert f'execve_total{{filename="{true_copy}"}} 9.0' in text
    assert proc.returncode == 0 and "Traceback" not in err
