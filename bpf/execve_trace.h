// execve_trace.h: with TRACE, each exec as one event (bpf/events.h) at its
// exit, when its result is known: the caller (pid, tid, parent's pid, uid,
// comm, cgroup), the file name and argv[0..ARGV_MAX), read at entry from
// the caller's memory as bcc's execsnoop does on sys_enter_execve. Included
// by execve.c only with TRACE, so counting pays nothing for it.
//
// Each string is read with room for ARG_LEN bytes (FILE_LEN for the file
// name) and its NUL; one that filled it is cut exactly when the byte after
// is not NUL (a second one-byte read), and marked in `cut`. `more` says argv
// had entries beyond those read. TRACE_FAILED / TRACE_OK send only execs
// that failed / ran (the counts keep both).
//
// shared: ARG_LEN ARGV_MAX FILE_LEN COMM_LEN
// (-D flags from pytools/tools/execve_trace.py, SHARED)
// The parent's pid is real_parent->tgid with PARENT (execve.c: from BTF
// offsets or this kernel's own headers); else 0, shown as unknown.
// execve.c includes events.h first (the loader puts in only the main
// file's own includes).

#define ARG_SLOT (ARG_LEN + 1)
#define FILE_SLOT (FILE_LEN + 1)
#define DATA_LEN (FILE_SLOT + ARGV_MAX * ARG_SLOT)

struct execve_event {
    u64 ts;                  // CLOCK_MONOTONIC ns at exit
    u64 cgroup_id;
    u32 pid;                 // tgid
    u32 tid;
    u32 ppid;                // the caller's parent's tgid (0: unknown)
    u32 uid;
    s32 ret;
    u32 argc;                // argv entries read (at most ARGV_MAX)
    u32 cut;                 // bit 0: the file name; bit i+1: argv[i]
    u32 more;                // 1: argv goes on past ARGV_MAX entries
    u32 data_len;            // bytes of data sent
    u32 pad;
    char comm[COMM_LEN];    // the caller's, before the exec
    char data[DATA_LEN];     // the file name, then argv[0..argc), each NUL-ended
};

// The event being built at entry, per CPU: it does not fit the BPF stack.
BPF_PERCPU_ARRAY(execve_scratch, struct execve_event, 1);
// Events from entry to exit, by thread id. LRU: an exec killed on its way
// never reaches its exit.
BPF_TABLE("lru_hash", u32, struct execve_event, execve_traced, 512);
// A successful exec from a thread other than the leader returns with the
// leader's id (de_thread): the thread it entered as, by tgid.
BPF_TABLE("lru_hash", u32, u32, execve_threads, 512);

// Read a NUL-ended string of at most `len` bytes into dst (room len + 1);
// returns the bytes stored with the NUL (negative: unreadable; 0 for "" on
// kernels whose helper does not count the NUL, 6.1 among them); sets *cut when
// the string went on.
static __always_inline long read_cut(char *dst, u32 room, const char *src, u32 *cut)
{
    long n = bpf_probe_read_user_str(dst, room, src);
    if (n == room) {
        char next = 0;
        bpf_probe_read_user(&next, 1, src + room - 1);
        *cut = next != 0;
    }
    return n;
}

static __always_inline void trace_enter(const char *filename, const char *const *argv)
{
    int zero = 0;
    struct execve_event *e = execve_scratch.lookup(&zero);
    if (!e)
        return;
    u64 pid_tgid = bpf_get_current_pid_tgid();
    e->pid = pid_tgid >> 32;
    e->tid = (u32)pid_tgid;
    e->uid = (u32)bpf_get_current_uid_gid();
    e->cgroup_id = bpf_get_current_cgroup_id();
#ifdef PARENT
    e->ppid = PARENT_TGID((const void *)bpf_get_current_task());
#else
    e->ppid = 0;
#endif
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    e->argc = 0;
    e->more = 0;
    u32 cut = 0;
    long n = read_cut(e->data, FILE_SLOT, filename, &cut);
    e->cut = cut;
    if (n <= 0) {            // an unreadable name (EFAULT): shown empty
        e->data[0] = 0;
        n = 1;
    }
    u64 off = n;
#pragma unroll
    for (int i = 0; i < ARGV_MAX; i++) {
        const char *arg = NULL;
        if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) || !arg)
            goto done;
        // The bound is checked on the very register the offset is in (the
        // empty asm keeps clang from checking a copy): the verifier needs it.
        asm volatile("" : "+r"(off));
        if (off > DATA_LEN - ARG_SLOT)
            goto done;
        cut = 0;
        long m = read_cut(&e->data[off], ARG_SLOT, arg, &cut);
        if (m < 0)
            goto done;       // unreadable: argv ends here
        if (m == 0) {        // "": before 6.x the helper returns 0, not 1, for it
            e->data[off] = 0;
            m = 1;
        }
        e->cut |= cut << (i + 1);
        off += m;
        e->argc = i + 1;
    }
    {
        const char *arg = NULL;
        bpf_probe_read_user(&arg, sizeof(arg), &argv[ARGV_MAX]);
        e->more = arg != NULL;
    }
done:
    e->data_len = off;
    u32 tid = e->tid, tgid = e->pid;
    execve_traced.update(&tid, e);
    if (tid != tgid)
        execve_threads.update(&tgid, &tid);
}

static __always_inline void trace_exit(void *ctx, long ret)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tid = (u32)pid_tgid, tgid = pid_tgid >> 32;
    struct execve_event *e = execve_traced.lookup(&tid);
    if (!e && tid == tgid) {         // perhaps a thread's exec that ran
        u32 *thread = execve_threads.lookup(&tgid);
        if (thread) {
            tid = *thread;
            e = execve_traced.lookup(&tid);
        }
    }
    if (!e)
        return;                      // filtered out at entry, or entered before attach
    if (e->tid != tgid)
        execve_threads.delete(&tgid);
#if defined(TRACE_FAILED)
    if (ret >= 0)
        goto out;
#elif defined(TRACE_OK)
    if (ret < 0)
        goto out;
#endif
    e->ret = ret;
    e->ts = bpf_ktime_get_ns();
    u64 size = e->data_len;
    asm volatile("" : "+r"(size));
    if (size > DATA_LEN)
        size = DATA_LEN;
    events_submit(ctx, e, offsetof(struct execve_event, data) + size);
out:
    execve_traced.delete(&tid);
}
