// runqlat: log2 histograms of run-queue latency, the time a task waits
// runnable for a CPU: from its wakeup (sched_wakeup, sched_wakeup_new) or
// from being switched out still runnable (preempted, or yielding), to the
// sched_switch that runs it.
//
// PROBE_RAW_TRACEPOINT (4.17+): sched:sched_wakeup(p), sched_wakeup_new(p)
// and sched_switch(preempt, prev, next), raw: the task_structs themselves,
// so the wakee's tgid and cgroup are read from it where it waits, exact for
// every task, short-lived ones included. Reading task_struct needs where
// its fields are on this kernel: from its own headers (offsetof), else from
// its BTF (STRUCTS_BTF: -D offsets, no kernel header parsed at all), and
// probe reads. No trace record is formatted. prev's state is the
// tracepoint's own prev_state argument (5.18+), else prev->__state (5.14+;
// ->state before).
//
// PROBE_TRACEPOINT (every kernel): the same three tracepoints' own fields
// (pid, comm; prev_pid, prev_state, next_pid, next_comm). They carry no
// tgid and no cgroup: at sched_switch the current task is prev, the one
// leaving the CPU, so its tgid and cgroup id are remembered by tid there
// (only where -P, a pod grouping, -p or --cgroup needs them) and used when
// that tid next waits. What that loses: a task's first wait (a new thread
// that never ran yet) has no remembered tgid or cgroup (counted in
// runqlat_unattributed, and left out under -p or --cgroup), and a task that
// moved cgroup is attributed to its old one until it next leaves a CPU.
// prev_state is runnable when no state bit but the preemption one
// (TASK_REPORT_MAX, told by the tracepoint's own print format) is set.
//
// Both run on every context switch and wakeup of the machine: the hot path
// is two array slots indexed by tid (no hash insert), a clock read, and a
// per-CPU histogram add.
//
// Tunables: UNIT_NS with UNIT_BITS, START_SLOTS (a power of two: pytools
// passes pid_max's, capped at 65,536; 4,194,304, PID_MAX_LIMIT, where none is
// passed; waiting threads share them by tid, a clash counted as lost),
// STATE_MASK (tracepoint mode: prev_state bits that mean "not runnable"),
// FILTER_PID (tgid), FILTER_COMM_LO/HI (the comm's 16 bytes as two u64s),
// PER_KEY (KEY_TGID, KEY_TID, KEY_CGROUP: pods, containers), MAX_KEYS,
// FILTER_CGROUP_ID/LEVEL (cgroup.h: CGROUP_ALLOWED() asks about the current
// task, so it is asked at switch-out, where the task is current, and the
// verdict kept for its next wait, in both modes), KERNEL_VERSION_CODE.
#include <uapi/linux/ptrace.h>
#ifdef PROBE_RAW_TRACEPOINT
#include "task.h"         // TASK_PID, TASK_TGID, TASK_COMM, TASK_CGROUP (its first steps)
// btf: TASK_STATE
// (-D flags from this kernel's BTF, pytools/tools/runqlat.py FIELDS, where
// the headers are not this kernel's own; else from the headers, here)
#ifndef STRUCTS_BTF
#include <linux/kernfs.h>
#if KERNEL_VERSION_CODE >= 0x050e00   // KERNEL_VERSION(5, 14, 0): state became __state
#define TASK_STATE_OFF0 offsetof(struct task_struct, __state)
#define TASK_STATE_SIZE sizeof(unsigned int)
#else
#define TASK_STATE_OFF0 offsetof(struct task_struct, state)
#define TASK_STATE_SIZE sizeof(long)
#endif
#define TASK_CGROUP_OFF2 offsetof(struct cgroup, kn)
#define TASK_CGROUP_OFF3 offsetof(struct kernfs_node, id)
#define TASK_CGROUP_SIZE sizeof(u64)
#endif
#endif

// shared: COMM_LEN   (-D flag from pytools/cdefs.py COMMON: the loader passes it to every program)
// shared: KEY_TGID KEY_TID KEY_CGROUP WAIT_UNATTRIBUTED WAIT_MAP_FULL WAIT_LOST WAIT_COUNTS
// shared: MAX_KEYS STATE_MASK START_SLOTS
// (-D flags from pytools/tools/runqlat.py, SHARED: what PER_KEY keys by, and
// runqlat_unattributed's indices; cflags: MAX_KEYS, STATE_MASK, the
// prev_state bits that mean "not runnable" on this kernel, START_SLOTS)
#ifndef KEY_CGROUP
#error "compile with the flags of pytools/tools/runqlat.py (SHARED)"
#endif
#include "log2.h"         // HIST_SLOTS, unit_slot()
#include "cgroup.h"       // CGROUP_ALLOWED()

struct runq_start {
    u64 ts;               // when it became runnable; 0: not waiting
    u32 tid;              // whose slot this is (tids share a slot mod START_SLOTS)
    u32 tgid;
#if PER_KEY == KEY_CGROUP || defined(FILTER_CGROUP_ID)
    u64 cgroup;           // its cgroup v2 id (0: not known)
#endif
};
BPF_ARRAY(runqlat_start, struct runq_start, START_SLOTS);

#if (defined(PROBE_TRACEPOINT) && \
     (PER_KEY == KEY_TGID || PER_KEY == KEY_CGROUP || defined(FILTER_PID))) \
    || defined(FILTER_CGROUP_ID)
#define REMEMBER 1
// What a task was when it last left a CPU, read while it was current: its
// tgid and cgroup id (tracepoint mode has no other way to know them), and
// whether it is in the --cgroup subtree (CGROUP_ALLOWED() asks about the
// current task only, and at the end of a wait the wakee is not current).
struct runq_task {
    u32 tid;
    u32 tgid;
    u64 cgroup;
    u32 allowed;
    u32 pad;
};
BPF_ARRAY(runqlat_task, struct runq_task, START_SLOTS);
#endif

struct runq_hist {
    u64 slots[HIST_SLOTS];
    u64 sum_ns;
};
#ifdef PER_KEY
struct runq_key {
    u64 id;               // tgid, tid or cgroup id
    u32 slot;
    u32 pad;
};
BPF_HASH(runqlat_key_hist, struct runq_key, u64, MAX_KEYS * 16);
BPF_HASH(runqlat_key_sum, u64, u64, MAX_KEYS);
#if PER_KEY == KEY_TGID || PER_KEY == KEY_TID
// The name a thread had at its last wait (-L), or a process's main thread
// (-P; another thread's until the main one waits), kept as it was seen: a
// short-lived thread is gone from /proc by the time it is shown, and a
// thread names itself after its first wait. One more lookup and a 16-byte
// copy per wait, under -P and -L only.
#define KEEP_NAMES 1
struct runq_name {
    char comm[COMM_LEN];
};
BPF_HASH(runqlat_key_comm, u64, struct runq_name, MAX_KEYS);
#endif
#endif
BPF_PERCPU_ARRAY(runqlat_hist, struct runq_hist, 1);
// [WAIT_UNATTRIBUTED] waits of tasks with no remembered tgid/cgroup
// (tracepoint mode's first waits), [WAIT_MAP_FULL] waits not counted per
// key: the key maps were full, [WAIT_LOST] waits lost: another waiting
// thread took their start slot (threads share the START_SLOTS slots by tid).
BPF_PERCPU_ARRAY(runqlat_unattributed, u64, WAIT_COUNTS);

static __always_inline void count_unattributed(int which)
{
    u64 *n = runqlat_unattributed.lookup(&which);
    if (n)
        (*n)++;
}

static __always_inline int comm_allowed(const char *comm)
{
#ifdef FILTER_COMM_LO
    union { char c[COMM_LEN]; u64 w[COMM_LEN / 8]; } name = {};
    bpf_probe_read_kernel(name.c, sizeof(name.c), comm);
    return name.w[0] == FILTER_COMM_LO && name.w[1] == FILTER_COMM_HI;
#else
    return 1;
#endif
}

// A task becomes runnable. tgid and cgroup: 0 where not known here.
static __always_inline void enqueue(u32 tid, u32 tgid, u64 cgroup, u64 now)
{
    if (tid == 0)
        return;           // the idle task
    u32 index = tid & (START_SLOTS - 1);
    struct runq_start *s = runqlat_start.lookup(&index);
    if (!s)
        return;
    if (s->ts && s->tid != tid)
        count_unattributed(WAIT_LOST);      // another thread's wait, still open, is lost
    s->ts = now;
    s->tid = tid;
    s->tgid = tgid;
#if PER_KEY == KEY_CGROUP || defined(FILTER_CGROUP_ID)
    s->cgroup = cgroup;
#endif
}

// comm: the waiting task's name; named: whether it names the key (the
// thread itself, or a process's main thread).
static __always_inline void record(u64 id, u64 delta, const char *comm, int named)
{
    u32 zero = 0;
    u32 slot = unit_slot(delta);
    if (slot >= HIST_SLOTS)
        slot = HIST_SLOTS - 1;
    // Keep the compiler from folding the bound below into the clamp above
    // (it did, and the verifier then saw an unbounded index).
    asm volatile("" : "+r"(slot));
    struct runq_hist *h = runqlat_hist.lookup(&zero);
    if (h) {
        h->slots[slot & (HIST_SLOTS - 1)]++;     // a bound the verifier sees
        h->sum_ns += delta;
    }
#ifdef PER_KEY
    struct runq_key key = {.id = id, .slot = slot};
    u64 one = 1, *n = runqlat_key_hist.lookup(&key);
    if (n)
        __sync_fetch_and_add(n, 1);
    else if (runqlat_key_hist.insert(&key, &one) != 0)
        count_unattributed(WAIT_MAP_FULL);
    u64 *sum = runqlat_key_sum.lookup(&id);
    if (sum)
        __sync_fetch_and_add(sum, delta);
    else
        runqlat_key_sum.insert(&id, &delta);
#ifdef KEEP_NAMES
    struct runq_name *known = runqlat_key_comm.lookup(&id);
    if (known) {
        if (named)
            bpf_probe_read_kernel(known->comm, sizeof(known->comm), comm);
    } else {
        struct runq_name name = {};
        bpf_probe_read_kernel(name.comm, sizeof(name.comm), comm);
        runqlat_key_comm.insert(&id, &name);
    }
#endif
#endif
}

// A task gets the CPU: its wait, if one was started, ends. tgid and cgroup
// as read now (raw mode) or 0 (tracepoint mode: taken from its start slot).
static __always_inline void dequeue(u32 tid, u64 cgroup_now, const char *comm, u64 now)
{
    if (tid == 0)
        return;
    u32 index = tid & (START_SLOTS - 1);
    struct runq_start *s = runqlat_start.lookup(&index);
    if (!s || s->tid != tid || s->ts == 0)
        return;
    u64 delta = now - s->ts;
    s->ts = 0;
    if (!comm_allowed(comm))
        return;
    u32 tgid = s->tgid;
    u64 cgroup = cgroup_now;
#if PER_KEY == KEY_CGROUP || defined(FILTER_CGROUP_ID)
    if (!cgroup)
        cgroup = s->cgroup;
#endif
#ifdef FILTER_PID
    if (tgid != FILTER_PID)
        return;
#endif
#ifdef FILTER_CGROUP_ID
    // In the subtree when it last left a CPU (a task never switched out yet
    // is not known to be, and is left out).
    struct runq_task *t = runqlat_task.lookup(&index);
    if (!t || t->tid != tid || !t->allowed)
        return;
#endif
#if PER_KEY == KEY_TGID
    if (!tgid) {
        count_unattributed(WAIT_UNATTRIBUTED);
        return;
    }
    record(tgid, delta, comm, tid == tgid);
#elif PER_KEY == KEY_TID
    record(tid, delta, comm, 1);
#elif PER_KEY == KEY_CGROUP
    if (!cgroup) {
        count_unattributed(WAIT_UNATTRIBUTED);
        return;
    }
    record(cgroup, delta, comm, 0);
#else
    record(0, delta, comm, 0);
#endif
}

// prev leaves the CPU and is the current task: remember what it is for its
// next wait; its tgid and cgroup id as read now (0s where not needed).
static __always_inline void remember_current(u32 prev, u32 *tgid, u64 *cgroup)
{
#ifdef REMEMBER
    if (!prev)
        return;
    *tgid = bpf_get_current_pid_tgid() >> 32;
    *cgroup = bpf_get_current_cgroup_id();
    u32 index = prev & (START_SLOTS - 1);
    struct runq_task *t = runqlat_task.lookup(&index);
    if (t) {
        t->tid = prev;
        t->tgid = *tgid;
        t->cgroup = *cgroup;
        t->allowed = CGROUP_ALLOWED();
    }
#endif
}

#ifdef PROBE_TRACEPOINT
// The tgid and cgroup a tid had when it last left a CPU; 0s if not known.
static __always_inline void remembered(u32 tid, u32 *tgid, u64 *cgroup)
{
#ifdef REMEMBER
    u32 index = tid & (START_SLOTS - 1);
    struct runq_task *t = runqlat_task.lookup(&index);
    if (t && t->tid == tid) {
        *tgid = t->tgid;
        *cgroup = t->cgroup;
    }
#endif
}

// A task is woken: its wait starts, with what it was when it last ran.
static __always_inline int woken(u32 tid)
{
    u32 tgid = 0;
    u64 cgroup = 0;
    remembered(tid, &tgid, &cgroup);
    enqueue(tid, tgid, cgroup, bpf_ktime_get_ns());
    return 0;
}

TRACEPOINT_PROBE(sched, sched_wakeup)
{
    return woken(args->pid);
}

TRACEPOINT_PROBE(sched, sched_wakeup_new)
{
    return woken(args->pid);
}

TRACEPOINT_PROBE(sched, sched_switch)
{
    u64 now = bpf_ktime_get_ns();
    u32 prev = args->prev_pid;
    u32 tgid = 0;
    u64 cgroup = 0;
    remember_current(prev, &tgid, &cgroup);
    if ((args->prev_state & STATE_MASK) == 0)      // still runnable: it waits again
        enqueue(prev, tgid, cgroup, now);
    dequeue(args->next_pid, 0, args->next_comm, now);
    return 0;
}
#endif

#ifdef PROBE_RAW_TRACEPOINT
// The task's fields, read at offsets from this kernel's headers or its BTF
// (the same code either way: only where the offsets come from differs).
#define TASK_PID(p) ((u32)FIELD_AT(p, TASK_PID_OFF0, TASK_PID_SIZE))
#define TASK_TGID(p) ((u32)FIELD_AT(p, TASK_TGID_OFF0, TASK_TGID_SIZE))

static __always_inline u64 task_cgroup(const void *p)
{
#if PER_KEY == KEY_CGROUP || defined(FILTER_CGROUP_ID)
    const void *cgroups = PTR_AT(p, TASK_CGROUP_OFF0);
    const void *cgrp = PTR_AT(cgroups, TASK_CGROUP_OFF1);
    const void *kn = PTR_AT(cgrp, TASK_CGROUP_OFF2);
    return FIELD_AT(kn, TASK_CGROUP_OFF3, TASK_CGROUP_SIZE);
#else
    return 0;
#endif
}

RAW_TRACEPOINT_PROBE(sched_wakeup)
{
    const void *p = (const void *)ctx->args[0];
    enqueue(TASK_PID(p), TASK_TGID(p), task_cgroup(p), bpf_ktime_get_ns());
    return 0;
}

RAW_TRACEPOINT_PROBE(sched_wakeup_new)
{
    const void *p = (const void *)ctx->args[0];
    enqueue(TASK_PID(p), TASK_TGID(p), task_cgroup(p), bpf_ktime_get_ns());
    return 0;
}

RAW_TRACEPOINT_PROBE(sched_switch)
{
    u64 now = bpf_ktime_get_ns();
    bool preempt = (bool)ctx->args[0];
    const void *prev = (const void *)ctx->args[1];
    const void *next = (const void *)ctx->args[2];
#if KERNEL_VERSION_CODE >= 0x051200   // KERNEL_VERSION(5, 18, 0): prev_state passed
    // The state the scheduler switched prev out with: prev->__state may
    // have been changed since by a wakeup on another CPU.
    u64 state = (unsigned int)ctx->args[3];
#else
    u64 state = FIELD_AT(prev, TASK_STATE_OFF0, TASK_STATE_SIZE);
#endif
    u32 prev_tid = TASK_PID(prev), tgid = 0;
    u64 cgroup = 0;
    remember_current(prev_tid, &tgid, &cgroup);
    if (preempt || state == 0)                     // TASK_RUNNING
        enqueue(prev_tid, TASK_TGID(prev), task_cgroup(prev), now);
    dequeue(TASK_PID(next), task_cgroup(next), (const char *)next + TASK_COMM_OFF0, now);
    return 0;
}
#endif
