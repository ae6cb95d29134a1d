// file_opens: count open(2), openat(2) and openat2(2) calls by key (comm,
// process or cgroup), file and result; with TRACE, send each one as an
// event (bpf/events.h).
//
// Hooks (pytools/tools/file_opens.py; syscall tracepoints only, every kernel
// with CONFIG_FTRACE_SYSCALLS):
//   syscalls:sys_exit_openat, sys_exit_openat2 (5.6+), sys_exit_open (only
//   architectures that have open(2): not arm64). The result, and the filters,
//   are taken at exit: the caller is the current task there as at entry.
//   NEED_ENTER (a path or the flags are wanted) adds the sys_enter_ ones,
//   which remember the caller's path pointer and flags by thread id. The path
//   is read at exit from that user pointer: by then the kernel has copied it
//   (getname), so its page is in; a path still unreadable (another thread
//   unmapped it meanwhile) reads as empty, counted under an empty path.
//
// Tunables: MAX_KEYS (map bound), FILTER_PID (tgid), FILTER_CGROUP_ID/LEVEL
// (cgroup.h), FAILED_ONLY, NO_PATH (exporter: keys without the path, so the
// map stays bounded by pods x errnos), TRACE.
#include <uapi/linux/ptrace.h>
#include "cgroup.h"
#include "events.h"

// shared: COMM_LEN   (-D flag from pytools/cdefs.py COMMON: the loader passes it to every program)
// shared: KEY_COMM KEY_PID KEY_CGROUP CALL_OPEN CALL_OPENAT CALL_OPENAT2
// shared: PATH_KEY_LEN PATH_EVENT_LEN MAX_KEYS
// (-D flags from pytools/tools/file_opens.py, SHARED: what BY keys by, which
// call an event is, the path bytes a count key and an event hold; cflags:
// MAX_KEYS)
#ifndef KEY_CGROUP
#error "compile with the flags of pytools/tools/file_opens.py (SHARED)"
#endif

struct file_opens_key {
#if BY == KEY_COMM
    char comm[COMM_LEN];
#elif BY == KEY_PID
    u32 pid;
    u32 pad;
#else
    u64 cgroup_id;
#endif
    s32 err;                 // 0: success, else the errno
    u32 pad2;
#ifndef NO_PATH
    char path[PATH_KEY_LEN];
#endif
};

// Opens per key since attach. Never cleared: readers take deltas.
BPF_HASH(file_opens_total, struct file_opens_key, u64, MAX_KEYS);
// Opens that found file_opens_total full: [0]. Nothing is lost silently.
BPF_ARRAY(file_opens_overflow, u64, 1);

#if !defined(NO_PATH) || defined(TRACE)
#define NEED_ENTER
struct file_opens_call {
    const char *path;        // the caller's pointer, read at exit
    u32 flags;
    u32 call;
};
// The open in flight per thread id, from enter to exit.
BPF_HASH(file_opens_inflight, u32, struct file_opens_call, 10240);
#endif

#ifdef TRACE
struct file_opens_event {
    u64 ts;                  // CLOCK_MONOTONIC ns at exit
    u64 cgroup_id;
    u32 pid;                 // tgid
    u32 tid;
    s32 ret;
    u32 flags;
    u32 call;
    u32 path_len;            // bytes read, the NUL included (0: unreadable)
    char comm[COMM_LEN];
    char path[PATH_EVENT_LEN];
};
// One event being built per CPU: it does not fit the BPF stack.
BPF_PERCPU_ARRAY(file_opens_scratch, struct file_opens_event, 1);
#endif

#ifdef NEED_ENTER
static __always_inline int on_enter(const char *path, u32 flags, u32 call)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
#ifdef FILTER_PID
    if ((pid_tgid >> 32) != FILTER_PID)
        return 0;
#endif
    if (!CGROUP_ALLOWED())
        return 0;
    u32 tid = (u32)pid_tgid;
    struct file_opens_call c = {.path = path, .flags = flags, .call = call};
    file_opens_inflight.update(&tid, &c);
    return 0;
}
#endif

static __always_inline int on_exit(void *ctx, long ret)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
#ifdef NEED_ENTER
    u32 tid = (u32)pid_tgid;
    struct file_opens_call *c = file_opens_inflight.lookup(&tid);
    if (!c)
        return 0;            // filtered out at entry, or entered before attach
    const char *path = c->path;
    u32 flags = c->flags, call = c->call;
    file_opens_inflight.delete(&tid);
#else
#ifdef FILTER_PID
    if ((pid_tgid >> 32) != FILTER_PID)
        return 0;
#endif
#endif
#ifdef FAILED_ONLY
    if (ret >= 0)
        return 0;
#endif
#ifndef NEED_ENTER
    if (!CGROUP_ALLOWED())
        return 0;
#endif
    struct file_opens_key key;
    __builtin_memset(&key, 0, sizeof(key));
#if BY == KEY_COMM
    bpf_get_current_comm(key.comm, sizeof(key.comm));
#elif BY == KEY_PID
    key.pid = pid_tgid >> 32;
#else
    key.cgroup_id = bpf_get_current_cgroup_id();
#endif
    key.err = ret < 0 ? -ret : 0;
#ifndef NO_PATH
    bpf_probe_read_user_str(key.path, sizeof(key.path), path);
#endif
    u64 zero = 0;
    u64 *count = file_opens_total.lookup_or_try_init(&key, &zero);
    if (count) {
        __sync_fetch_and_add(count, 1);
    } else {
        int slot = 0;
        u64 *full = file_opens_overflow.lookup(&slot);
        if (full)
            __sync_fetch_and_add(full, 1);
    }
#ifdef TRACE
    int idx = 0;
    struct file_opens_event *e = file_opens_scratch.lookup(&idx);
    if (!e)
        return 0;
    e->ts = bpf_ktime_get_ns();
    e->cgroup_id = bpf_get_current_cgroup_id();
    e->pid = pid_tgid >> 32;
    e->tid = (u32)pid_tgid;
    e->ret = ret;
    e->flags = flags;
    e->call = call;
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    long len = bpf_probe_read_user_str(e->path, sizeof(e->path), path);
    // The bound is checked on the very register the size is made from (the
    // empty asm keeps clang from checking a copy): the verifier needs it.
    u64 n = (u64)len;
    asm volatile("" : "+r"(n));
    if (n > PATH_EVENT_LEN)
        n = 0;               // an error: the path could not be read
    e->path_len = n;
    u64 size = offsetof(struct file_opens_event, path) + n;
    events_submit(ctx, e, size);
#endif
    return 0;
}

#ifdef PROBE_TRACEPOINT
#ifdef NEED_ENTER
TRACEPOINT_PROBE(syscalls, sys_enter_openat)
{
    return on_enter(args->filename, (u32)args->flags, CALL_OPENAT);
}

#ifdef HOOK_OPENAT2
TRACEPOINT_PROBE(syscalls, sys_enter_openat2)
{
    u64 flags = 0;
    bpf_probe_read_user(&flags, sizeof(flags), args->how);   // open_how.flags
    return on_enter(args->filename, (u32)flags, CALL_OPENAT2);
}
#endif

#ifdef HOOK_OPEN
TRACEPOINT_PROBE(syscalls, sys_enter_open)
{
    return on_enter(args->filename, (u32)args->flags, CALL_OPEN);
}
#endif
#endif

TRACEPOINT_PROBE(syscalls, sys_exit_openat)
{
    return on_exit(args, args->ret);
}

#ifdef HOOK_OPENAT2
TRACEPOINT_PROBE(syscalls, sys_exit_openat2)
{
    return on_exit(args, args->ret);
}
#endif

#ifdef HOOK_OPEN
TRACEPOINT_PROBE(syscalls, sys_exit_open)
{
    return on_exit(args, args->ret);
}
#endif
#endif
