// execve: count execve(2) and execveat(2) calls, keyed by what the
// user asked for (-DBY_FILENAME, -DBY_COMM, -DBY_UID or -DBY_CGROUP).
//
// Hooks (selected by the loader, see pytools/tools/execve.py):
//   PROBE_TRACEPOINT  syscalls:sys_enter_execve   (all kernels with
//                     syscalls:sys_enter_execveat  CONFIG_FTRACE_SYSCALLS;
//                                                  execveat since 3.19)
//                   syscalls:sys_exit_execve{,at}: which calls failed.
//
// Tunables: MAX_KEYS (map bound), FILTER_PID (tgid), FILTER_UID,
// FILTER_CGROUP_ID/LEVEL (cgroup.h), TRACE (each exec as an event:
// execve_trace.h; the counts never depend on it).
#include <uapi/linux/ptrace.h>
#include "cgroup.h"

#ifdef PARENT
// The trace's parent pid (pytools/tools/execve_trace.py parent_feature):
// the caller's real_parent->tgid.
#include "btf.h"          // FIELD_AT(), PTR_AT()
// btf: PARENT_TGID
// (-D flags from this kernel's BTF, execve_trace.py PARENT_FIELDS, where the
// headers are not this kernel's own; else offsetof, here)
#ifndef STRUCTS_BTF
#include <linux/sched.h>
#define PARENT_TGID_OFF0 offsetof(struct task_struct, real_parent)
#define PARENT_TGID_OFF1 offsetof(struct task_struct, tgid)
#define PARENT_TGID_SIZE sizeof(pid_t)
#endif
#define PARENT_TGID(task) \
    ((u32)FIELD_AT(PTR_AT(task, PARENT_TGID_OFF0), PARENT_TGID_OFF1, PARENT_TGID_SIZE))
#endif

// Kernel headers are slow to parse (linux/sched.h alone costs ~0.8 s of
// start-up): the comm's length comes as COMM_LEN instead (the kernel's
// TASK_COMM_LEN is an enum there, which a -D of that name would break).
// shared: COMM_LEN   (-D flag from pytools/cdefs.py COMMON: the loader passes it to every program)
// shared: MAX_KEYS   (-D flag from pytools/tools/execve.py, cflags)
#ifndef MAX_KEYS
#error "compile with the flags of pytools/tools/execve.py (cflags)"
#endif
#define FILENAME_LEN 128

#ifdef TRACE
#include "events.h"
#include "execve_trace.h"
#endif

struct execve_key {
#if defined(BY_FILENAME)
    char filename[FILENAME_LEN];
#elif defined(BY_COMM)
    char comm[COMM_LEN];
#elif defined(BY_UID)
    u32 uid;
#elif defined(BY_CGROUP)
    u64 cgroup_id;
#else
#error "define one of BY_FILENAME, BY_COMM, BY_UID, BY_CGROUP"
#endif
};

// Calls per key since attach. Never cleared: readers take deltas.
BPF_HASH(execve_total, struct execve_key, u64, MAX_KEYS);
// Calls that found execve_total full: [0] attempts, [1] failures.
// Counted here so that nothing is lost silently.
BPF_ARRAY(execve_overflow, u64, 2);

BPF_HASH(execve_failed, struct execve_key, u64, MAX_KEYS);
// Key of each exec in flight, by thread id, for the exit tracepoint. LRU
// because a successful exec from a non-leader thread changes its thread id.
BPF_TABLE("lru_hash", u32, struct execve_key, execve_inflight, 10240);

static __always_inline void count_overflow(int slot)
{
    u64 *slot_count = execve_overflow.lookup(&slot);
    if (slot_count)
        __sync_fetch_and_add(slot_count, 1);
}

static __always_inline int on_exec_enter(const char *filename, const char *const *argv)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
#ifdef FILTER_PID
    if ((pid_tgid >> 32) != FILTER_PID)
        return 0;
#endif
#ifdef FILTER_UID
    if ((u32)bpf_get_current_uid_gid() != FILTER_UID)
        return 0;
#endif
    if (!CGROUP_ALLOWED())
        return 0;
    struct execve_key key;
    __builtin_memset(&key, 0, sizeof(key));
#if defined(BY_FILENAME)
    bpf_probe_read_user_str(key.filename, sizeof(key.filename), filename);
#elif defined(BY_COMM)
    bpf_get_current_comm(key.comm, sizeof(key.comm));
#elif defined(BY_UID)
    key.uid = (u32)bpf_get_current_uid_gid();
#elif defined(BY_CGROUP)
    key.cgroup_id = bpf_get_current_cgroup_id();
#endif
    u64 zero = 0;
    u64 *count = execve_total.lookup_or_try_init(&key, &zero);
    if (count)
        __sync_fetch_and_add(count, 1);
    else
        count_overflow(0);
    u32 tid = (u32)pid_tgid;
    execve_inflight.update(&tid, &key);
#ifdef TRACE
    trace_enter(filename, argv);
#endif
    return 0;
}

static __always_inline int on_exec_exit(void *ctx, long ret)
{
#ifdef TRACE
    trace_exit(ctx, ret);
#endif
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct execve_key *key = execve_inflight.lookup(&tid);
    if (!key)
        return 0;
    if (ret < 0) {
        u64 zero = 0;
        u64 *count = execve_failed.lookup_or_try_init(key, &zero);
        if (count)
            __sync_fetch_and_add(count, 1);
        else
            count_overflow(1);
    }
    execve_inflight.delete(&tid);
    return 0;
}

#ifdef PROBE_TRACEPOINT
TRACEPOINT_PROBE(syscalls, sys_enter_execve)
{
    return on_exec_enter(args->filename, args->argv);
}

TRACEPOINT_PROBE(syscalls, sys_enter_execveat)
{
    return on_exec_enter(args->filename, args->argv);
}

TRACEPOINT_PROBE(syscalls, sys_exit_execve)
{
    return on_exec_exit(args, args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_execveat)
{
    return on_exec_exit(args, args->ret);
}
#endif
