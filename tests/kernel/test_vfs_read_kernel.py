"""vfsread-latency against reads with known latencies, in every probe mode
the kernel offers (a mode it lacks skips, naming what is missing)."""

import json
import os
import signal
import subprocess
import sys
import time
from typing import List

import pytest

from pytools.hist import slot_of
from pytools.tools.vfs_read.snapshot import delta
from pytools.tools.vfs_read.spec import VfsReadReader

from .modes import mode_problem, need_mode
from .workload import (DELAY, SYSCALL_SLACK_NS, bpf_program_ids, programs_gone,
                       slow_pipe_reads, start_tool, tool_command, zero_reads)
from .workload import NAMED_CHILD

MODES = ["kprobe", "fentry", "raw_tracepoint", "tracepoint"]
SLOW_SLOT = slot_of(int(DELAY * 1e6))   # 22 000 us lands in [16384, 32767]


def assert_matches(slots: List[int], total_ns: int, durations: List[int], other_ns: int = 0,
                   unit_ns: int = 1000):
    """The kernel's slots and exact sum agree with durations timed in user space.
    Scheduling noise on a busy machine moves durations, not this check."""
    assert len(slots) == len(durations), (slots, durations)
    for k, d in zip(sorted(slots), sorted(durations), strict=True):
        low = slot_of(max(0, d - SYSCALL_SLACK_NS) // unit_ns)
        assert low <= k <= slot_of(d // unit_ns), (slots, durations)
    assert sum(durations) - len(durations) * SYSCALL_SLACK_NS <= total_ns
    assert total_ns <= sum(durations) + other_ns   # other_ns: other reads in the sum


def slots_of(hist, from_slot: int) -> List[int]:
    return [k for k in range(from_slot, len(hist.slots)) for _ in range(hist.slots[k])]


@pytest.fixture(scope="module", params=MODES)
def tool(request):
    """One loaded program per mode, shared by the tests of that mode."""
    mode = request.param
    need_mode(mode)
    with VfsReadReader(unit="usecs", pid=os.getpid(), mode=mode) as loaded:
        assert loaded.program.candidate.mode == mode
        yield loaded


def measure(tool, action):
    before = tool.snapshot()
    action()
    return delta(tool.snapshot(), before)


def test_fast_reads_are_counted_exactly(tool):
    got = measure(tool, lambda: zero_reads(997))
    assert got.hist.count == 997
    fast = sum(got.hist.slots[:slot_of(1000) + 1])       # under ~1 ms each
    assert fast >= 990, got.hist.slots
    assert got.hist.total > 0


def test_slow_reads_land_in_their_slots(tool):
    durations = []
    got = measure(tool, lambda: durations.extend(slow_pipe_reads(5)))
    assert got.hist.count == 5
    assert_matches(slots_of(got.hist, 0), got.hist.total, durations)
    assert all(slot_of(d // 1000) >= SLOW_SLOT for d in durations)


def test_min_latency_drops_fast_reads():
    durations = []
    with VfsReadReader(pid=os.getpid(), min_latency=10_000_000) as tool:
        got = measure(tool, lambda: (zero_reads(200), durations.extend(slow_pipe_reads(3))))
    assert_matches(slots_of(got.hist, 0), got.hist.total, durations)


def test_comm_filter_and_per_process_histograms():
    with open("/proc/self/comm") as f:
        comm = f.read().strip()
    with VfsReadReader(comm=comm, by="pid") as tool:
        got = measure(tool, lambda: zero_reads(300))
    mine = got.per_process[(os.getpid(), comm)]
    assert mine.count == 300
    assert all(c == comm for _, c in got.per_process)


def go(child) -> None:
    """Let a NAMED_CHILD make its reads, and wait until it has."""
    child.stdin.write("g")
    child.stdin.flush()
    assert child.stdout.readline() == "done\n"


@pytest.mark.parametrize("comm", ['q"u\\o', "it's"])
def test_comm_filter_counts_a_name_with_quotes_and_backslashes_exactly(comm):
    n = 157
    child = subprocess.Popen([sys.executable, "-c", NAMED_CHILD, comm, str(n)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        with VfsReadReader(comm=comm, by="pid") as tool:
            before = tool.snapshot()
            go(child)
            got = delta(tool.snapshot(), before)
    finally:
        child.kill()
        child.wait()
    assert got.per_process == {(child.pid, comm): got.hist}, got.per_process
    assert got.hist.count == n


@pytest.mark.parametrize("name, option", [
    ("fifteen-bytes-x", "fifteen-bytes-x"),         # the longest name the kernel keeps
    ("c" * 15, "c" * 40),                           # cut to what the kernel keeps
])
def test_cli_comm_of_15_bytes_or_longer_counts_exactly(name, option):
    """A 15-byte -c (a 16-byte compare, NUL included) once failed to load
    ("Argument list too long"); a longer one is cut to 15 with a warning
    and matches the process the kernel names with those 15 bytes."""
    n = 157
    child = subprocess.Popen([sys.executable, "-c", NAMED_CHILD, option, str(n)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        with open(f"/proc/{child.pid}/comm") as f:
            assert f.read().strip() == name
        proc = subprocess.Popen(tool_command("vfsread-latency") + ["-c", option, "--json",
                                                                   "3600"], cwd="/",
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        banner = proc.stderr.readline()
        if option != name:
            assert "keeps 15 bytes" in banner and repr(name) in banner, banner
            banner = proc.stderr.readline()
        assert banner.startswith("Tracing"), banner + proc.stderr.read()
        go(child)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        child.kill()
        child.wait()
    assert proc.returncode == 0, err
    (obj,) = [json.loads(line) for line in out.splitlines()]
    assert obj["hist"]["count"] == n, obj


def test_ebpf_prints_what_the_tool_loads():
    with VfsReadReader(kind=None) as tool:       # the command's default: regular files
        expected = tool.program.cflags
        source = tool.program.text
    out = subprocess.run(tool_command("vfsread-latency") + ["--ebpf"], capture_output=True,
                         text=True, timeout=120, cwd="/").stdout
    first, second, rest = out.split("\n", 2)
    assert first == "// cflags: " + " ".join(expected)
    assert second.startswith("// probe: ") and "(attached on this kernel)" in second
    assert rest == source + "\n"


CHILD = r"""
import os, sys, threading, time
os.read(0, 1)                       # in flight when the tool attaches: not counted
fd = os.open("/dev/zero", os.O_RDONLY)
for _ in range(NREADS):
    os.read(fd, 64)
r, w = os.pipe()
reading = threading.Semaphore(0)    # the writer's delay starts after the reader's clock
def writer():
    for _ in range(3):
        reading.acquire(); time.sleep(DELAY); os.write(w, b"x")
threading.Thread(target=writer).start()
durations = []
for _ in range(3):
    t = time.perf_counter_ns(); reading.release(); os.read(r, 1)
    durations.append(time.perf_counter_ns() - t)
print("done", *durations, flush=True)
os.read(0, 1)                       # blocks until the test ends: never completes in time
"""


@pytest.mark.parametrize("mode", MODES)
def test_cli_json_matches_the_workload(mode):
    need_mode(mode)
    n = 101
    child = subprocess.Popen([sys.executable, "-c",
                              CHILD.replace("NREADS", str(n)).replace("DELAY", str(DELAY))],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)  # let the child reach its first blocking read
        proc = start_tool(tool_command("vfsread-latency") +
                          ["--json", "--probe", mode, "-p", str(child.pid), "--kind", "all",
                           "1", "3"])
        child.stdin.write("x")
        child.stdin.flush()
        done = child.stdout.readline().split()
        assert done[0] == "done"
        durations = [int(d) for d in done[1:]]
        out, err = proc.communicate(timeout=60)
    finally:
        child.kill()
        child.wait()
    assert proc.returncode == 0, err
    objects = [json.loads(line) for line in out.splitlines()]
    assert len(objects) == 3 and all(o["probe"]["mode"] == mode for o in objects)
    assert sum(o["hist"]["count"] for o in objects) == n + 3, objects
    # The slow reads are the longest ones: each took DELAY or more, while a
    # /dev/zero read takes microseconds (under QEMU, now and then a few ms).
    every = sorted(slot_of(s["lo"]) for o in objects for s in o["hist"]["slots"]
                   for _ in range(s["count"]))
    slow = every[-len(durations):]
    total_ns = sum(o["hist"]["sum_ns"] for o in objects)
    assert_matches(slow, total_ns, durations, other_ns=n * 1_000_000)  # n fast reads, < 1 ms each


def test_cli_text_says_which_probe_and_detaches_on_sigint():
    before = bpf_program_ids()
    proc = start_tool(tool_command("vfsread-latency") + ["-p", str(os.getpid()), "--kind",
                                                         "all", "30"])
    ours = bpf_program_ids() - before
    assert ours
    zero_reads(50)
    proc.send_signal(signal.SIGINT)
    # Wait before reading the pipes: our own pipe reads would otherwise be
    # counted by the tool (it traces this pid) in its last partial interval.
    proc.wait(timeout=10)
    out, err = proc.communicate()
    assert proc.returncode == 0 and "Traceback" not in err
    assert out.splitlines()[0].startswith(("vfs_read via", "read syscalls via"))
    assert "count 50 " in out
    assert programs_gone(ours), f"programs {bpf_program_ids() & ours} still loaded after exit"


def test_forcing_a_missing_mode_is_one_line_error():
    # A probe mode this kernel lacks: kprobe or fentry here on 6.18, the
    # readahead tracepoints (6.18+) on older kernels.
    candidates = [("vfsread-latency", "kprobe", {}), ("vfsread-latency", "fentry", {}),
                  ("readahead-stats", "tracepoint",
                   {"tracepoint": "readahead:page_cache_sync_ra"})]
    missing = [(tool, mode) for tool, mode, kw in candidates if mode_problem(mode, **kw)]
    if not missing:
        pytest.skip("this kernel has kprobes, fentry and the readahead tracepoints")
    tool, mode = missing[0]
    result = subprocess.run(tool_command(tool) + ["--probe", mode, "1", "1"],
                            capture_output=True, text=True, timeout=120, cwd="/")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and f"probe mode {mode}" in result.stderr


@pytest.mark.parametrize("args", [["-P"], ["--by", "pid"]])
def test_cli_dash_P_keeps_two_processes_of_one_name_apart(args):
    """-P is --by pid: two processes named alike are two groups (it once
    grouped by name), and `-P 1 3`-style intervals stay intervals."""
    comm, counts = f"twin-{os.getpid() % 10000}", (157, 61)
    children = [subprocess.Popen([sys.executable, "-c", NAMED_CHILD, comm, str(n)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for n in counts]
    try:
        for child in children:
            assert child.stdout.readline() == "ready\n"
        proc = start_tool(tool_command("vfsread-latency") + args + ["-c", comm, "--json",
                                                                     "3600", "1"])
        for child in children:
            go(child)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        for child in children:
            child.kill()
            child.wait()
    assert proc.returncode == 0 and "warning" not in err, err
    (obj,) = [json.loads(line) for line in out.splitlines()]
    groups = {g["key"]: g["hist"]["count"] for g in obj["groups"]}
    assert groups == {f"{comm} [{c.pid}]": n for c, n in zip(children, counts, strict=True)},\
        groups
    assert obj["by"] == "pid"
