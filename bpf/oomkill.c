// oomkill: each process the kernel's OOM killer kills, which cgroup (pod)
// it was in, whether a memory cgroup's limit or the machine ran out, and
// which task's allocation set it off; counted by victim in a map (the
// exporter's oom_kills_total) and, with TRACE, sent as an event
// (bpf/events.h). Tracepoints only: no kprobe on oom_kill_process.
//
// Hooks (pytools/tools/oomkill.py):
//   oom:mark_victim (4.19+; its fields by the kernel: pid only up to 6.7,
//   then comm, total_vm, anon/file/shmem RSS, uid, pgtables and
//   oom_score_adj: each MV_<FIELD> is defined by the reader where this
//   kernel's format has the field). It fires in __oom_kill_process, in the
//   context of the task whose allocation failed (current is the trigger),
//   once per kill; the kernel's oom_kill counters (vmstat, memcg events)
//   count the same kills.
//   PROBE_RAW_TRACEPOINT adds signal:signal_generate, raw (2.6.33+; raw
//   tracepoints 4.17+): __oom_kill_process sends SIGKILL with SEND_SIG_PRIV
//   to the victim just before mark_victim, from the same task, and the raw
//   tracepoint hands over the victim's task_struct. Its cgroup, process,
//   comm and oom_score_adj are read there and kept by the trigger's thread
//   id; mark_victim takes them when its pid is that task's. A kill whose
//   victim was not seen so (the tracepoint mode) is counted as not
//   attributed (key.attributed 0), never dropped.
//   Constraint: from the victim's memory cgroup up, a page counter within
//   MEMCG_MARGIN_PAGES of its limit is the limit that ran out
//   (CONSTRAINT_MEMCG); none: the machine (CONSTRAINT_GLOBAL, which takes in
//   cpuset and mempolicy constraints). Tracepoint mode: CONSTRAINT_UNKNOWN.
//
// Tunables: MAX_KEYS, TRACE, CGROUP_KEYS (the exporter: keys without the
// process, so the map stays bounded by pods), FILTER_CGROUP_ID (--cgroup: the victim's
// cgroup v2 subtree, checked on the victim's ancestors up to CGROUP_LEVELS;
// not attributed kills are still counted apart).
#include <uapi/linux/ptrace.h>
#include "events.h"

// shared: COMM_LEN   (-D flag from pytools/cdefs.py COMMON: the loader passes it to every program)
// shared: CONSTRAINT_UNKNOWN CONSTRAINT_MEMCG CONSTRAINT_GLOBAL
// shared: MEMCG_MARGIN_PAGES MEMCG_LEVELS CGROUP_LEVELS MAX_KEYS
// (-D flags from pytools/tools/oomkill.py, SHARED; cflags: MAX_KEYS)
#ifndef CONSTRAINT_GLOBAL
#error "compile with the flags of pytools/tools/oomkill.py (SHARED)"
#endif

#define SIGKILL_NR 9
#define SEND_SIG_PRIV_PTR 1      // (struct kernel_siginfo *)1: sent by the kernel

#ifdef PROBE_RAW_TRACEPOINT
#include "task.h"         // TASK_PID, TASK_TGID, TASK_COMM, TASK_CGROUP; btf.h
// btf: TASK_SUBSYS TASK_OOM_ADJ
// btf: CGROUP_SELF CGROUP_PARENT CGROUP_ID MEMORY_CGRP_ID MEMCG_CSS MEMCG_MEMORY
// btf: PC_USAGE PC_MAX PC_PARENT
// (-D flags from this kernel's BTF, pytools/tools/oomkill.py FIELDS, where
// the headers are not this kernel's own; else from the headers, here)
#ifndef STRUCTS_BTF
#include <linux/sched/signal.h>
#include <linux/kernfs.h>
#include <linux/memcontrol.h>
#define TASK_SUBSYS_OFF0 offsetof(struct task_struct, cgroups)
#define TASK_SUBSYS_OFF1 offsetof(struct css_set, subsys)
#define TASK_OOM_ADJ_OFF0 offsetof(struct task_struct, signal)
#define TASK_OOM_ADJ_OFF1 offsetof(struct signal_struct, oom_score_adj)
#define TASK_OOM_ADJ_SIZE sizeof(short)
#define CGROUP_SELF_OFF0 offsetof(struct cgroup, self)
#define CGROUP_PARENT_OFF0 (offsetof(struct cgroup, self) + \
                            offsetof(struct cgroup_subsys_state, parent))
#define CGROUP_ID_OFF0 offsetof(struct cgroup, kn)
#define CGROUP_ID_OFF1 offsetof(struct kernfs_node, id)
#define CGROUP_ID_SIZE sizeof(u64)
#define MEMORY_CGRP_ID memory_cgrp_id
#define MEMCG_CSS_OFF0 offsetof(struct mem_cgroup, css)
#define MEMCG_MEMORY_OFF0 offsetof(struct mem_cgroup, memory)
#define PC_USAGE_OFF0 offsetof(struct page_counter, usage)
#define PC_USAGE_SIZE sizeof(long)
#define PC_MAX_OFF0 offsetof(struct page_counter, max)
#define PC_MAX_SIZE sizeof(long)
#define PC_PARENT_OFF0 offsetof(struct page_counter, parent)
#endif
#endif

struct oomkill_key {
    u64 cgroup_id;           // the victim's cgroup v2 id (0: not attributed)
    u32 tgid;                // the victim's process (its tid if not attributed)
    u32 constraint;
    u32 attributed;          // 1: the victim's task was read
    u32 pad;
    char comm[COMM_LEN];
};

// Kills per victim since attach. Never cleared: readers take deltas.
BPF_HASH(oomkill_total, struct oomkill_key, u64, MAX_KEYS);
// Kills that found oomkill_total full: [0]. Nothing is lost silently.
BPF_ARRAY(oomkill_overflow, u64, 1);

struct oomkill_victim {      // the victim's task as signal_generate read it
    u64 cgroup_id;
    u64 limit_pages;         // the memcg limit within reach (0: none)
    u32 tid;
    u32 tgid;
    s32 oom_score_adj;
    u32 constraint;
    u32 allowed;             // in --cgroup's subtree (1 without --cgroup)
    u32 pad;
    char comm[COMM_LEN];
};
// A SIGKILL the kernel sent, by the sending thread id, until its mark_victim.
BPF_HASH(oomkill_pending, u32, struct oomkill_victim, 1024);

struct oomkill_event {
    u64 ts;                  // CLOCK_MONOTONIC ns
    u64 cgroup_id;           // victim's (0: not attributed)
    u64 trigger_cgroup_id;
    u64 limit_pages;
    u64 total_vm;            // kB, the tracepoint's (have & HAVE_RSS)
    u64 anon_rss;
    u64 file_rss;
    u64 shmem_rss;
    u64 pgtables;
    u32 pid;                 // victim's tgid (its tid if not attributed)
    u32 tid;                 // victim's tid (the tracepoint's pid)
    u32 trigger_pid;
    u32 trigger_tid;
    s32 oom_score_adj;
    u32 uid;
    u32 constraint;
    u32 attributed;
    u32 have;                // HAVE_* bits: which fields were known
    u32 pad;
    char comm[COMM_LEN];
    char trigger_comm[COMM_LEN];
};
#define HAVE_RSS 1
#define HAVE_ADJ 2
#define HAVE_UID 4
#define HAVE_COMM 8
// The event being built, per CPU.
BPF_PERCPU_ARRAY(oomkill_scratch, struct oomkill_event, 1);

#ifdef PROBE_RAW_TRACEPOINT
static __always_inline u64 cgroup_id_of(const void *cgrp)
{
    return FIELD_AT(PTR_AT(cgrp, CGROUP_ID_OFF0), CGROUP_ID_OFF1, CGROUP_ID_SIZE);
}

static __always_inline u32 in_filter(const void *cgrp)
{
#ifdef FILTER_CGROUP_ID
#pragma unroll
    for (int i = 0; i < CGROUP_LEVELS; i++) {
        if (!cgrp)
            return 0;
        if (cgroup_id_of(cgrp) == FILTER_CGROUP_ID)
            return 1;
        const char *parent = PTR_AT(cgrp, CGROUP_PARENT_OFF0);   // its css
        cgrp = parent ? parent - CGROUP_SELF_OFF0 : 0;
    }
    return 0;
#else
    return 1;
#endif
}

// The limit (pages) of the first memory cgroup from the victim's up whose
// usage is within MEMCG_MARGIN_PAGES of it, else 0.
static __always_inline u64 memcg_limit_reached(const void *cgroups)
{
    const char *css = PTR_AT(cgroups, TASK_SUBSYS_OFF1 + MEMORY_CGRP_ID * sizeof(void *));
    if (!css)
        return 0;
    const char *pc = css - MEMCG_CSS_OFF0 + MEMCG_MEMORY_OFF0;
#pragma unroll
    for (int i = 0; i < MEMCG_LEVELS; i++) {
        if (!pc)
            return 0;
        u64 usage = FIELD_AT(pc, PC_USAGE_OFF0, PC_USAGE_SIZE);
        u64 max = FIELD_AT(pc, PC_MAX_OFF0, PC_MAX_SIZE);
        if (usage + MEMCG_MARGIN_PAGES >= max)
            return max;
        pc = PTR_AT(pc, PC_PARENT_OFF0);
    }
    return 0;
}

// signal_generate(sig, info, task, group, result)
RAW_TRACEPOINT_PROBE(signal_generate)
{
    if ((int)ctx->args[0] != SIGKILL_NR || ctx->args[1] != SEND_SIG_PRIV_PTR)
        return 0;
    const char *task = (const char *)ctx->args[2];
    struct oomkill_victim v;
    __builtin_memset(&v, 0, sizeof(v));
    v.tid = (u32)FIELD_AT(task, TASK_PID_OFF0, TASK_PID_SIZE);
    v.tgid = (u32)FIELD_AT(task, TASK_TGID_OFF0, TASK_TGID_SIZE);
    bpf_probe_read_kernel(v.comm, sizeof(v.comm), task + TASK_COMM_OFF0);
    v.oom_score_adj = (s16)FIELD_AT(PTR_AT(task, TASK_OOM_ADJ_OFF0), TASK_OOM_ADJ_OFF1,
                                    TASK_OOM_ADJ_SIZE);
    const void *cgroups = PTR_AT(task, TASK_CGROUP_OFF0);
    const void *cgrp = PTR_AT(cgroups, TASK_CGROUP_OFF1);
    v.cgroup_id = cgroup_id_of(cgrp);
    v.allowed = in_filter(cgrp);
    v.limit_pages = memcg_limit_reached(cgroups);
    v.constraint = v.limit_pages ? CONSTRAINT_MEMCG : CONSTRAINT_GLOBAL;
    u32 sender = (u32)bpf_get_current_pid_tgid();
    oomkill_pending.update(&sender, &v);
    return 0;
}
#endif

#if defined(PROBE_TRACEPOINT) || defined(PROBE_RAW_TRACEPOINT)
TRACEPOINT_PROBE(oom, mark_victim)
{
    int zero = 0;
    struct oomkill_event *e = oomkill_scratch.lookup(&zero);
    if (!e)
        return 0;
    __builtin_memset(e, 0, sizeof(*e));
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 trigger_tid = (u32)pid_tgid;
    e->ts = bpf_ktime_get_ns();
    e->tid = e->pid = (u32)args->pid;
    e->constraint = CONSTRAINT_UNKNOWN;
#ifdef PROBE_RAW_TRACEPOINT
    struct oomkill_victim *v = oomkill_pending.lookup(&trigger_tid);
    if (v && v->tid == (u32)args->pid) {
        if (!v->allowed) {
            oomkill_pending.delete(&trigger_tid);
            return 0;        // outside --cgroup's subtree
        }
        e->attributed = 1;
        e->cgroup_id = v->cgroup_id;
        e->pid = v->tgid;
        e->constraint = v->constraint;
        e->limit_pages = v->limit_pages;
        e->oom_score_adj = v->oom_score_adj;
        e->have |= HAVE_ADJ | HAVE_COMM;
        __builtin_memcpy(e->comm, v->comm, sizeof(e->comm));
    }
    if (v)
        oomkill_pending.delete(&trigger_tid);
#endif
#ifdef MV_COMM
    if (!(e->have & HAVE_COMM)) {
        TP_DATA_LOC_READ_STR(e->comm, comm, sizeof(e->comm));
        e->have |= HAVE_COMM;
    }
#endif
#ifdef MV_RSS
    e->total_vm = args->total_vm;
    e->anon_rss = args->anon_rss;
    e->file_rss = args->file_rss;
    e->shmem_rss = args->shmem_rss;
    e->pgtables = args->pgtables;
    e->have |= HAVE_RSS;
#endif
#ifdef MV_ADJ
    e->oom_score_adj = args->oom_score_adj;
    e->have |= HAVE_ADJ;
#endif
#ifdef MV_UID
    e->uid = args->uid;
    e->have |= HAVE_UID;
#endif
    e->trigger_pid = pid_tgid >> 32;
    e->trigger_tid = trigger_tid;
    e->trigger_cgroup_id = bpf_get_current_cgroup_id();
    bpf_get_current_comm(e->trigger_comm, sizeof(e->trigger_comm));

    struct oomkill_key key;
    __builtin_memset(&key, 0, sizeof(key));
    key.cgroup_id = e->cgroup_id;
    key.constraint = e->constraint;
    key.attributed = e->attributed;
#ifndef CGROUP_KEYS
    key.tgid = e->pid;
    __builtin_memcpy(key.comm, e->comm, sizeof(key.comm));
#endif
    u64 none = 0;
    u64 *count = oomkill_total.lookup_or_try_init(&key, &none);
    if (count) {
        __sync_fetch_and_add(count, 1);
    } else {
        u64 *full = oomkill_overflow.lookup(&zero);
        if (full)
            __sync_fetch_and_add(full, 1);
    }
#ifdef TRACE
    events_submit(args, e, sizeof(*e));
#endif
    return 0;
}
#endif
