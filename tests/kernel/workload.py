"""Workloads the kernel tests drive, and ways to look at the kernel's BPF state."""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Set, Tuple

from pytools.syscalls import SYS_BPF

NOBODY = 65534
SYS_EXECVEAT = {"x86_64": 322, "aarch64": 281}[os.uname().machine]
BPF_PROG_GET_NEXT_ID = 11

_libc = ctypes.CDLL(None, use_errno=True)


def bpf_program_ids() -> Set[int]:
    """IDs of every BPF program loaded in the kernel (ids are never reused,
    so a new id surviving a tool's exit is a leaked program)."""
    ids = set()
    attr = (ctypes.c_uint32 * 32)()  # union bpf_attr, zeroed; start_id, next_id
    start = 0
    while True:
        attr[0] = start
        if _libc.syscall(SYS_BPF, BPF_PROG_GET_NEXT_ID, ctypes.byref(attr),
                         ctypes.sizeof(attr)) != 0:
            return ids
        start = attr[1]
        ids.add(start)


BPF_MAP_LOOKUP_ELEM, BPF_MAP_GET_NEXT_KEY = 1, 4
BPF_MAP_GET_NEXT_ID, BPF_MAP_GET_FD_BY_ID, BPF_OBJ_GET_INFO_BY_FD = 12, 14, 15


def _bpf(cmd: int, attr) -> int:
    return _libc.syscall(SYS_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))


def bpf_map_ids() -> Set[int]:
    ids, attr, start = set(), (ctypes.c_uint32 * 32)(), 0
    while True:
        attr[0] = start
        if _bpf(BPF_MAP_GET_NEXT_ID, attr) != 0:
            return ids
        start = attr[1]
        ids.add(start)


class _MapInfo(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32),
                ("key_size", ctypes.c_uint32), ("value_size", ctypes.c_uint32),
                ("max_entries", ctypes.c_uint32), ("map_flags", ctypes.c_uint32),
                ("name", ctypes.c_char * 16), ("rest", ctypes.c_uint8 * 64)]


def bpf_map_keys(map_id: int) -> "tuple[str, List[bytes]]":
    """(name, keys) of a BPF map, read through bpf(2) as bpftool would."""
    attr = (ctypes.c_uint32 * 32)()
    attr[0] = map_id
    fd = _bpf(BPF_MAP_GET_FD_BY_ID, attr)
    if fd < 0:
        return "", []
    try:
        info = _MapInfo()
        attr = (ctypes.c_uint64 * 16)()
        attr[0] = fd | ctypes.sizeof(info) << 32
        attr[1] = ctypes.addressof(info)
        if _bpf(BPF_OBJ_GET_INFO_BY_FD, attr) != 0:
            return "", []
        keys: List[bytes] = []
        key = ctypes.create_string_buffer(info.key_size)
        next_key = ctypes.create_string_buffer(info.key_size)
        attr = (ctypes.c_uint64 * 16)()
        attr[0] = fd
        attr[1] = 0                         # NULL: the first key
        attr[2] = ctypes.addressof(next_key)
        while _bpf(BPF_MAP_GET_NEXT_KEY, attr) == 0:
            keys.append(next_key.raw)
            ctypes.memmove(key, next_key, info.key_size)
            attr[1] = ctypes.addressof(key)
        return info.name.decode(), keys
    finally:
        os.close(fd)


def programs_gone(ids: Set[int], timeout: float = 5.0) -> bool:
    """True once none of `ids` is loaded. The kernel frees a detached
    program after an RCU grace period (raw tracepoints: after the exit that
    closed their link), so a moment after the tool exits, not at once."""
    return wait_for(lambda: not (bpf_program_ids() & ids), timeout)


def make_executables(directory: str, names: List[str]) -> List[str]:
    """Copies of /bin/true that user nobody may run, with unique names."""
    os.chmod(directory, 0o755)
    paths = []
    for name in names:
        path = os.path.join(directory, name)
        shutil.copy("/bin/true", path)
        os.chmod(path, 0o755)
        paths.append(path)
    return paths


def demote():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def run_execs(path: str, times: int, as_nobody: bool = True) -> None:
    """execve(path) `times` times, each from a fresh child (one exec each)."""
    for _ in range(times):
        subprocess.run([path], check=True, preexec_fn=demote if as_nobody else None)


EXECS_AS_COMM = """
import ctypes, os, sys
ctypes.CDLL(None, use_errno=True).prctl(15, sys.argv[1].encode(), 0, 0, 0)  # PR_SET_NAME
for _ in range(int(sys.argv[3])):
    pid = os.fork()
    if pid == 0:
        os.execv(sys.argv[2], [sys.argv[2]])
    os.waitpid(pid, 0)
"""


def execs_as_comm(comm: str, path: str, times: int) -> None:
    """execve(path) `times` times from children of a process named `comm`
    (the comm an execve is counted under is the caller's, before the exec)."""
    subprocess.run([sys.executable, "-c", EXECS_AS_COMM, comm, path, str(times)], check=True)


def file_reads(n: int, path: str = __file__) -> None:
    """n reads of 64 bytes from a regular file (this one, cached), from this
    process: what vfsread-latency counts by default."""
    fd = os.open(path, os.O_RDONLY)
    try:
        for _ in range(n):
            os.pread(fd, 64, 0)
    finally:
        os.close(fd)


def zero_reads(n: int) -> None:
    """n reads of 64 bytes from /dev/zero, from this process."""
    fd = os.open("/dev/zero", os.O_RDONLY)
    try:
        for _ in range(n):
            os.read(fd, 64)
    finally:
        os.close(fd)


def run_execveat(dirfd: int, name: str, times: int) -> None:
    """execveat(dirfd, name) from forked children, as nobody."""
    argv = (ctypes.c_char_p * 2)(name.encode(), None)
    envp = (ctypes.c_char_p * 1)(None)
    for _ in range(times):
        pid = os.fork()
        if pid == 0:
            try:
                demote()
                _libc.syscall(SYS_EXECVEAT, dirfd, name.encode(), argv, envp, 0)
            finally:
                os._exit(127)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "execveat failed"


def tool_command(name: str) -> List[str]:
    """The console script installed next to this Python (the venv's bin)."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    return [path] if os.path.exists(path) else [shutil.which(name) or name]


def start_tool(args: List[str], cwd: str = "/",
               env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
    """Start a CLI and wait for its 'Tracing...' banner (probes attached)."""
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    banner = proc.stderr.readline()
    assert banner.startswith("Tracing"), f"no banner, got {banner!r}; rest: {proc.stderr.read()}"
    proc.banner = banner        # what it says it counts
    return proc


def stop_tool(proc: subprocess.Popen, timeout: float = 60) -> Tuple[str, str]:
    """Ctrl-C a CLI started by start_tool: its (stdout, stderr), once it
    exited 0 with no traceback."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0 and "Traceback" not in err, err
    return out, err


def run_tool(args: List[str], work: Callable[[], None], env: Optional[Dict[str, str]] = None,
             timeout: float = 60) -> Tuple[str, str]:
    """A CLI's (stdout, stderr) over work(): started (banner seen), work()
    run, then stopped with one Ctrl-C (killed if work() failed)."""
    proc = start_tool(args, env=env)
    try:
        work()
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    return stop_tool(proc, timeout)


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def cgroup_v2_id(pid: Optional[int] = None) -> Optional[int]:
    """The cgroup v2 id (inode of its directory) of a process, if findable."""
    with open(f"/proc/{pid or 'self'}/cgroup") as f:
        path = next((line.split(":", 2)[2].strip() for line in f if line.startswith("0::")), None)
    if path is None:
        return None
    with open("/proc/mounts") as f:
        mounts = [line.split()[1] for line in f if line.split()[2] == "cgroup2"]
    for mount in mounts:
        full = os.path.join(mount, path.lstrip("/"))
        if os.path.isdir(full):
            return os.stat(full).st_ino
    return None


# The pipe writer's sleep before each write. 22 ms sits inside the slot
# [16384, 32767] us with room on both sides: ~5 ms for the reader starting
# its read late (the read then waits less than the sleep), ~10 ms for
# scheduling delay on a loaded machine.
DELAY = 0.022
# The kernel times a read from syscall (or vfs_read) entry to exit, a little
# less than user space sees around os.read(): at most this much less. Under
# QEMU's software emulation the gap reaches several ms (a 38 ms read was
# timed at under 33 ms in the kernel), so scripts/vm-guest widens it.
SYSCALL_SLACK_NS = int(os.environ.get("PYTOOLS_SYSCALL_SLACK_NS", 2_000_000))
# Under software emulation (scripts/vm-guest) every event costs ~100x: the
# bursts that outrun a one-page event buffer are a tenth as long there
# (they still outrun it: the reader is as slow), so the VM run stays in
# CI's time.
BURST_SCALE = 10 if os.environ.get("PYTOOLS_EMULATED") == "1" else 1


def slow_pipe_reads(n: int) -> List[int]:
    """n reads that each wait at least DELAY for a writer thread; returns
    each read's duration in ns as seen from user space.

    The writer starts its DELAY only once the reader has taken its start
    time, so no read is shorter than DELAY however late either thread is
    scheduled (under QEMU, wake-ups take milliseconds)."""
    r, w = os.pipe()
    durations = []
    reading = threading.Semaphore(0)

    def writer():
        for _ in range(n):
            reading.acquire()
            time.sleep(DELAY)
            os.write(w, b"x")

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(n):
            start = time.perf_counter_ns()
            reading.release()
            assert os.read(r, 1) == b"x"
            durations.append(time.perf_counter_ns() - start)
    finally:
        t.join()
        os.close(r)
        os.close(w)
    return durations


def write_file(directory: str, size: int) -> str:
    """A file of `size` random bytes, synced to disk."""
    import tempfile
    fd, path = tempfile.mkstemp(prefix="pytools-ra-", dir=directory)
    with os.fdopen(fd, "wb") as f:
        f.write(os.urandom(size))
        f.flush()
        os.fsync(f.fileno())
    return path


def evict(path: str) -> None:
    """Drop the file's clean pages from the page cache (locked ones, under
    read I/O, stay)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def evict_and_read(path: str) -> None:
    """Drop the file from the page cache, then read it sequentially (cold)."""
    evict(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        while os.read(fd, 1 << 16):
            pass
    finally:
        os.close(fd)


# Printed from bpftrace's event loop, which it enters only once every probe
# is attached ("Attaching N probes..." comes before they are).
TICK = 'interval:ms:100 { if (@ticked == 0) { printf("tick\\n"); @ticked = 1; } }\n'


class Bpftrace:
    """bpftrace as the independent tracer a test or benchmark compares with.

    Its stdout is read with deadlines (select), never a bare readline, and
    the script says when it is done (it prints and calls exit() on a marker
    event the test makes), so a slow attach or a slow exit under emulation
    fails with what bpftrace printed instead of hanging the suite."""

    def __init__(self, script: str):
        self.proc = subprocess.Popen(["bpftrace", "-e", script], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.lines: List[str] = []
        self._partial = b""

    @classmethod
    def attached(cls, script: str, timeout: float = 180) -> "Bpftrace":
        """bpftrace running `script`, returned once every probe is attached."""
        trace = cls(script + TICK)
        trace.wait_for("tick", timeout)
        return trace

    def _read(self, deadline: float) -> bool:
        """Read what is there before the deadline; False at EOF or timeout."""
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
            return False
        chunk = os.read(self.proc.stdout.fileno(), 65536)
        if not chunk:
            return False
        *done, self._partial = (self._partial + chunk).split(b"\n")
        self.lines += [line.decode(errors="replace") for line in done]
        return True

    def wait_for(self, prefix: str, timeout: float) -> str:
        """The first line starting with prefix, read within timeout seconds."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if line.startswith(prefix):
                    return line
            seen = len(self.lines)
            if not self._read(deadline):
                self.close()
                raise AssertionError(f"bpftrace printed no {prefix!r} in {timeout:.0f} s: "
                                     f"{self.lines}")

    def close(self, timeout: float = 60) -> List[str]:
        """Wait for bpftrace to exit (SIGINT first, SIGKILL if it still
        hangs) and return every line it printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout
        while self._read(deadline):
            pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        return self.lines


STATS_SYSCTL = "/proc/sys/kernel/bpf_stats_enabled"


@contextlib.contextmanager
def stats_sysctl(value: str):
    """kernel.bpf_stats_enabled set to value for the block, then restored."""
    with open(STATS_SYSCTL) as f:
        before = f.read().strip()
    with open(STATS_SYSCTL, "w") as f:
        f.write(value)
    try:
        yield
    finally:
        with open(STATS_SYSCTL, "w") as f:
            f.write(before)


def syn_retransmits() -> None:
    """TCP retransmits owned by the caller's cgroup, on loopback, with no
    packet filter: connections to a listener whose accept queue is full
    (backlog 0, never accepted) have their SYNs dropped by the kernel, and
    each client retransmits its SYN after a second."""
    import socket
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    clients = []
    try:
        for _ in range(4):
            client = socket.socket()
            client.setblocking(False)
            try:
                client.connect(listener.getsockname())
            except BlockingIOError:
                pass
            clients.append(client)
        time.sleep(1.5)                 # the first SYN retransmit comes at 1 s
    finally:
        for client in clients:
            client.close()
        listener.close()


NAMED_CHILD = r"""
import os, sys
with open("/proc/self/comm", "w") as f:
    f.write(sys.argv[1])
print("ready", flush=True)
os.read(0, 1)                       # started before the tool attached: not counted
fd = os.open(sys.executable, os.O_RDONLY)   # a regular file: counted by default
for _ in range(int(sys.argv[2])):
    os.read(fd, 64)
print("done", flush=True)
os.read(0, 1)
"""


def hostile_names(directory):
    """Files whose names a terminal or a line-based reader would misread."""
    names = [b"new\nline", b"\x1b[2J\x1b]0;pwned\x07", b"bad-\xff\xfe-utf8", b"csi-\x9b31m"]
    paths = [os.path.join(directory.encode(), n) for n in names]
    deep = directory.encode()
    while len(deep) < 4096 - 260:             # a path of nearly 4 KiB
        deep = os.path.join(deep, b"d" * 250)
    os.makedirs(deep)
    paths.append(os.path.join(deep, b"x" * (4095 - len(deep) - 1)))
    for path in paths:
        open(path, "w").close()
    return paths
