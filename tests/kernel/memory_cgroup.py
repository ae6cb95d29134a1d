"""A memory cgroup limited to a few tens of MiB and a child that allocates
past it until the kernel's OOM killer kills it, counted by the cgroup's
own oom_kill counter: cgroup v1's memory controller where it is bound to
v1 (this host), else the container's own cgroup v2 (the VM). Used by
test_oomkill_kernel.py and by the dashboard tests (a kill for the OOM
panel)."""

import os
import signal
import subprocess
import sys

from pytools.workloads import find_cgroup2

MOUNT = find_cgroup2()
MEMORY_LIMIT = 32 << 20
V1_MEMORY = "/sys/fs/cgroup/memory"
HOG = "oom-hog"
# Names itself, then allocates (and touches) 1 MiB at a time until killed.
ALLOCATOR = f"""
import ctypes
ctypes.CDLL(None).prctl(15, b"{HOG}", 0, 0, 0)
held = []
while True:
    held.append(b"\\x01" * (1 << 20))
"""


def write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


class MemoryCgroup:
    """A memory cgroup limited to `limit` bytes (set on `limited`, itself or
    its parent), with its oom_kill counter: v1 where the memory controller
    is bound to v1, else the container's own v2 cgroup."""

    def __init__(self, container_cgroup: str, name: str, limit: int, on_parent: bool = False):
        self.v1 = os.path.exists(os.path.join(V1_MEMORY, "memory.limit_in_bytes"))
        if self.v1:
            self.top = os.path.join(V1_MEMORY, name)
            self.path = os.path.join(self.top, "child") if on_parent else self.top
            os.makedirs(self.path)
            limited = self.top
            write(os.path.join(limited, "memory.limit_in_bytes"), str(limit))
            for d in {self.top, self.path}:
                write(os.path.join(d, "memory.swappiness"), "0")
        else:
            self.top = None
            self.path = container_cgroup
            enable_memory_down_to(container_cgroup)
            limited = os.path.dirname(container_cgroup) if on_parent else container_cgroup
            write(os.path.join(limited, "memory.max"), str(limit))
            self.limited = limited
            for d in (limited, container_cgroup):
                if os.path.exists(os.path.join(d, "memory.swap.max")):
                    write(os.path.join(d, "memory.swap.max"), "0")
        self.container = container_cgroup

    def oom_kills(self) -> int:
        name = "memory.oom_control" if self.v1 else "memory.events"
        with open(os.path.join(self.path, name)) as f:
            return int(dict(line.split() for line in f)["oom_kill"])

    def run_hog(self) -> int:
        """The allocator in the container's cgroup and this memory cgroup;
        its exit status (-SIGKILL once killed)."""
        procs = [os.path.join(self.container, "cgroup.procs")]
        if self.v1:
            procs.append(os.path.join(self.path, "cgroup.procs"))

        def place():
            for path in procs:
                write(path, str(os.getpid()))
        return subprocess.run([sys.executable, "-c", ALLOCATOR], preexec_fn=place,
                              timeout=120).returncode

    def close(self) -> None:
        if not self.v1:
            write(os.path.join(self.limited, "memory.max"), "max")
        if self.top:
            for d in (os.path.join(self.top, "child"), self.top):
                if os.path.isdir(d):
                    os.rmdir(d)


def enable_memory_down_to(cgroup: str) -> None:
    """cgroup v2: the memory controller enabled from the mount down to
    `cgroup`'s parent, so that `cgroup` has memory.max."""
    parts = os.path.relpath(cgroup, MOUNT).split(os.sep)
    path = MOUNT
    for part in parts:
        write(os.path.join(path, "cgroup.subtree_control"), "+memory")
        path = os.path.join(path, part)




def kill_n(memory: MemoryCgroup, n: int) -> int:
    """Run the allocator n times, each killed; how much the cgroup's own
    oom_kill counter went up."""
    before = memory.oom_kills()
    for _ in range(n):
        assert memory.run_hog() == -signal.SIGKILL
    return memory.oom_kills() - before


def oom_kill_in(container_cgroup: str) -> None:
    """One OOM kill of a process in this container (the dashboard's panel)."""
    memory = MemoryCgroup(container_cgroup, f"pytools-oom-panel-{os.getpid()}", MEMORY_LIMIT)
    try:
        assert kill_n(memory, 1) == 1
    finally:
        memory.close()
