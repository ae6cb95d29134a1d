"""Struct fields read at offsets from the kernel's BTF (pytools/structs.py)
are the kernel's own values: a task of this test's own (a thread in a
child in a cgroup made here) has its tid, tgid, comm and cgroup v2 id read
through runqlat's FIELDS, compared with /proc, the cgroup directory's inode
and the kernel's own helpers; and, where this kernel also has its own
headers (the VM), the same reads through the headers' offsetof give the
same offsets and values."""

import importlib.resources
import os
import subprocess
import sys

import pytest

from pytools import headers, kernel, loader, structs
from pytools.tools.runqlat.plan import FIELDS

from .modes import need_feature
from .pods import MOUNT

MAGIC = 0x5E7B7F    # the pid the workload asks getpgid about: marks its calls

PROGRAM = r"""
#include <uapi/linux/ptrace.h>
BTF_H
#ifdef FROM_HEADERS
#include <linux/sched.h>
#include <linux/cgroup-defs.h>
#include <linux/kernfs.h>
#define TASK_PID_OFF0 offsetof(struct task_struct, pid)
#define TASK_PID_SIZE sizeof(pid_t)
#define TASK_TGID_OFF0 offsetof(struct task_struct, tgid)
#define TASK_TGID_SIZE sizeof(pid_t)
#define TASK_COMM_OFF0 offsetof(struct task_struct, comm)
#define TASK_CGROUP_OFF0 offsetof(struct task_struct, cgroups)
#define TASK_CGROUP_OFF1 offsetof(struct css_set, dfl_cgrp)
#define TASK_CGROUP_OFF2 offsetof(struct cgroup, kn)
#define TASK_CGROUP_OFF3 offsetof(struct kernfs_node, id)
#define TASK_CGROUP_SIZE sizeof(u64)
#endif
struct seen {
    u64 pid_tgid;         // the kernel's helper
    u64 cgroup_helper;    // bpf_get_current_cgroup_id()
    u64 cgroup;           // read through the offsets
    u32 pid, tgid;
    char comm[16];
    u64 offsets[4];       // where tgid, comm and the chain's first two hops are
};
BPF_HASH(seen, u32, struct seen);

TRACEPOINT_PROBE(syscalls, sys_enter_getpgid)
{
    if (args->pid != MAGIC)
        return 0;
    const void *task = (const void *)bpf_get_current_task();
    struct seen s = {};
    s.pid_tgid = bpf_get_current_pid_tgid();
    s.cgroup_helper = bpf_get_current_cgroup_id();
    s.pid = FIELD_AT(task, TASK_PID_OFF0, TASK_PID_SIZE);
    s.tgid = FIELD_AT(task, TASK_TGID_OFF0, TASK_TGID_SIZE);
    bpf_probe_read_kernel(s.comm, sizeof(s.comm), (const char *)task + TASK_COMM_OFF0);
    const void *cgroups = PTR_AT(task, TASK_CGROUP_OFF0);
    const void *cgrp = PTR_AT(cgroups, TASK_CGROUP_OFF1);
    const void *kn = PTR_AT(cgrp, TASK_CGROUP_OFF2);
    s.cgroup = FIELD_AT(kn, TASK_CGROUP_OFF3, TASK_CGROUP_SIZE);
    s.offsets[0] = TASK_TGID_OFF0;
    s.offsets[1] = TASK_COMM_OFF0;
    s.offsets[2] = TASK_CGROUP_OFF0;
    s.offsets[3] = TASK_CGROUP_OFF1;
    u32 key = s.pid;
    seen.update(&key, &s);
    return 0;
}
"""

# A child named btf-known whose second thread, named btf-thread, asks
# getpgid(MAGIC) once told to: a tid other than its tgid.
WORKLOAD = r"""
import ctypes, os, sys, threading
libc = ctypes.CDLL(None)
libc.prctl(15, b"btf-known", 0, 0, 0)           # PR_SET_NAME
def ask():
    libc.prctl(15, b"btf-thread", 0, 0, 0)
    print(threading.get_native_id(), flush=True)
    sys.stdin.readline()
    try:
        os.getpgid(%d)
    except OSError:
        pass
t = threading.Thread(target=ask)
t.start()
t.join()
""" % MAGIC


def compile_program(flags):
    import bcc
    btf_h = importlib.resources.files("pytools.bpf").joinpath("btf.h").read_text()
    text = PROGRAM.replace("BTF_H", btf_h).replace("MAGIC", str(MAGIC))
    return bcc.BPF(text=text.encode(), cflags=list(flags))


def btf_flags():
    flags, problem = structs.BtfFields(cache_dir=None).lookup(FIELDS)
    need_feature("btf", problem)
    return flags


@pytest.fixture
def known_task():
    """(tgid, tid, cgroup dir) of the workload, in a cgroup of its own,
    stopped before its getpgid; run(proc) lets it call."""
    if MOUNT is None:
        pytest.skip("no cgroup2 mount: the kernel or host has no cgroup v2 hierarchy")
    cgroup = os.path.join(MOUNT, f"pytools-btf-{os.getpid()}")
    os.mkdir(cgroup)
    proc = subprocess.Popen([sys.executable, "-c", WORKLOAD], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
            f.write(str(proc.pid))
        tid = int(proc.stdout.readline())
        yield proc, tid, cgroup
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.rmdir(cgroup)


def read_known(bpf, proc, tid):
    proc.stdin.write("go\n")
    proc.stdin.flush()
    proc.wait(timeout=30)
    table = bpf.get_table(b"seen")
    return table[table.Key(tid)]


def test_a_known_tasks_tid_tgid_comm_and_cgroup_read_through_btf_equal_procs(known_task):
    loader.prepare()
    proc, tid, cgroup = known_task
    bpf = compile_program(btf_flags() + ["-DSTRUCTS_BTF"])
    try:
        with open(f"/proc/{proc.pid}/task/{tid}/comm") as f:
            comm = f.read().strip()
        got = read_known(bpf, proc, tid)
    finally:
        bpf.cleanup()
    assert comm == "btf-thread" and tid != proc.pid
    assert (got.pid, got.tgid) == (tid, proc.pid)
    assert got.pid_tgid == proc.pid << 32 | tid
    assert got.comm.decode() == comm
    # cgroup v2: a cgroup's id is its kernfs node's id, its directory's inode.
    assert got.cgroup == os.stat(cgroup).st_ino == got.cgroup_helper


def test_btf_and_this_kernels_own_headers_agree_on_offsets_and_values(known_task):
    found = loader.prepare().headers
    need_feature("exact_headers", headers.struct_layout_problem(found, kernel.kernel_release()))
    proc, tid, _ = known_task
    from_btf = compile_program(btf_flags() + ["-DSTRUCTS_BTF"])
    from_headers = compile_program(["-DFROM_HEADERS"])
    try:
        proc.stdin.write("go\n")
        proc.stdin.flush()
        proc.wait(timeout=30)
        a = from_btf.get_table(b"seen")[from_btf.get_table(b"seen").Key(tid)]
        b = from_headers.get_table(b"seen")[from_headers.get_table(b"seen").Key(tid)]
    finally:
        from_btf.cleanup()
        from_headers.cleanup()
    assert list(a.offsets) == list(b.offsets)
    assert (a.pid, a.tgid, a.comm, a.cgroup) == (b.pid, b.tgid, b.comm, b.cgroup)
    assert (a.pid, a.tgid) == (tid, proc.pid) and a.cgroup == a.cgroup_helper
