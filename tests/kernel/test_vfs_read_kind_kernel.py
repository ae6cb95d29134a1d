"""vfsread-latency tells reads by the kind of file they are on: a workload
of its own reads a regular file, a pipe and a socket (each of those waits
for a writer) and /dev/null (a character device), a known number of times
each; by default only the regular file's reads are counted, so the waits
on the pipe and the socket never make "reads" look slow."""

import json
import os
import signal
import subprocess
import sys
import tempfile

import pytest

from pytools.hist import slot_of

from .modes import need_mode
from .workload import DELAY, start_tool, tool_command, wait_for

MODES = ["kprobe", "fentry", "raw_tracepoint", "tracepoint"]
N_FILE, N_WAIT, N_NULL = 41, 4, 13
SLOW_SLOT = slot_of(int(DELAY * 1e6) // 2)      # a wait of DELAY is above half of it

WORKLOAD = r"""
import os, socket, sys, threading, time
go, path, n_file, n_wait, n_null, delay = sys.argv[1:]
n_file, n_wait, n_null, delay = int(n_file), int(n_wait), int(n_null), float(delay)
fd = os.open(path, os.O_RDONLY)
r, w = os.pipe()
a, b = socket.socketpair()
null = os.open("/dev/null", os.O_RDONLY)
print("ready", flush=True)
while not os.path.exists(go):      # stat, not read: nothing counted before this
    time.sleep(0.005)
for _ in range(n_file):
    os.pread(fd, 4096, 0)
for _ in range(n_wait):            # each read waits for a writer `delay` later
    threading.Timer(delay, os.write, (w, b"x")).start()
    os.read(r, 1)
    threading.Timer(delay, b.send, (b"y",)).start()
    os.read(a.fileno(), 1)
for _ in range(n_null):
    os.read(null, 64)
print("done", flush=True)
"""


def run(mode, args):
    """The CLI's one JSON object over the workload, and its banner."""
    need_mode(mode)
    with tempfile.TemporaryDirectory() as tmp:
        data, go = os.path.join(tmp, "data"), os.path.join(tmp, "go")
        with open(data, "wb") as f:
            f.write(os.urandom(8192))
        child = subprocess.Popen([sys.executable, "-c", WORKLOAD, go, data, str(N_FILE),
                                  str(N_WAIT), str(N_NULL), str(DELAY)],
                                 stdout=subprocess.PIPE, text=True)
        proc = None
        try:
            assert child.stdout.readline() == "ready\n"
            proc = start_tool(tool_command("vfsread-latency") + [
                "--probe", mode, "-p", str(child.pid), "--json", "3600"] + args)
            open(go, "w").close()
            assert wait_for(lambda: child.poll() is not None, 30)
            assert child.stdout.read() == "done\n"
        except BaseException:
            if proc is not None:
                proc.kill()
            raise
        finally:
            child.kill()
            child.wait()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    (obj,) = [json.loads(line) for line in out.splitlines()]
    assert obj["probe"]["mode"] == mode
    return obj, proc.banner


def slow(hist) -> int:
    return sum(s["count"] for s in hist["slots"] if slot_of(s["lo"]) >= SLOW_SLOT)


@pytest.mark.parametrize("mode", MODES)
def test_each_read_is_counted_under_its_kind_of_file(mode):
    obj, banner = run(mode, ["--by", "kind"])
    assert "every kind of file" in banner and obj["kind"] == "all"
    kinds = {k["kind"]: k["hist"] for k in obj["groups"]}
    assert {k: h["count"] for k, h in kinds.items()} == \
        {"file": N_FILE, "pipe": N_WAIT, "socket": N_WAIT, "tty": N_NULL}, kinds
    assert slow(kinds["pipe"]) == slow(kinds["socket"]) == N_WAIT
    assert slow(kinds["file"]) == 0
    assert obj["hist"]["count"] == N_FILE + 2 * N_WAIT + N_NULL


@pytest.mark.parametrize("mode", MODES)
def test_by_default_pipe_socket_and_tty_reads_are_kept_out(mode):
    obj, banner = run(mode, [])
    assert "reads on regular files only" in banner and obj["kind"] == "file"
    assert obj["hist"]["count"] == N_FILE and slow(obj["hist"]) == 0, obj["hist"]


@pytest.mark.parametrize("kind, count", [("pipe", N_WAIT), ("socket", N_WAIT),
                                         ("tty", N_NULL), ("all", N_FILE + 2 * N_WAIT + N_NULL)])
def test_kind_keeps_one_kind(kind, count):
    obj, _ = run("tracepoint", ["--kind", kind])
    assert obj["hist"]["count"] == count and obj["kind"] == kind
