// vfs_read: log2 histogram of read latency (vfsread-latency).
//
// One of these is compiled in by the loader (pytools/tools/vfs_read.py):
//   PROBE_KPROBE      kprobe + kretprobe on vfs_read    (all kernels with
//                     CONFIG_KPROBES; vfs_read exists in every 2.6+ kernel)
//   PROBE_FENTRY      fentry + fexit on vfs_read        (5.5+, BTF, and no
//                     lockdown=confidentiality)
//   PROBE_RAW_TRACEPOINT  raw_syscalls:sys_enter filtered by syscall number
//                     (NR_read, NR_pread64, ..., from the loader) and sys_exit: the
//                     read syscalls, at about half the floor cost of the
//                     per-syscall tracepoints (4.17+). sys_exit carries no
//                     syscall number, so a thread's next syscall exit after
//                     a read entry is that read's exit (a thread makes one
//                     syscall at a time). Not exact for 32-bit processes,
//                     whose syscall numbers differ.
//   PROBE_TRACEPOINT  syscalls:sys_{enter,exit}_{read,pread64,readv,preadv,
//                     preadv2}: the read syscalls, not vfs_read itself (all
//                     kernels with CONFIG_FTRACE_SYSCALLS; preadv2 since 4.6)
// FLOOR compiles the same hooks with empty bodies, for the benchmark;
// FLOOR_CLOCK with bodies that only read the clock (see read_clock).
//
// Tunables: UNIT_NS (slot unit: 1, 1000, 1000000) with UNIT_BITS (its bit
// length), FILTER_PID (tgid),
// FILTER_COMM_LO/HI (the comm's 16 bytes as two u64s), MIN_LATENCY_NS,
// PER_PROCESS (PER_PID or PER_COMM), PER_CGROUP (by cgroup id: pods,
// containers, services, named in user space), MAX_PROCS, START_SLOTS (power
// of two >= pid_max), KIND with KIND_FILTER and PER_KIND (the kind of file).
#include <uapi/linux/ptrace.h>
#ifdef KIND
// The kind of file a read is on (regular file, pipe, socket, char device,
// other), from its inode's mode: file->f_inode->i_mode. The kprobe and
// fentry modes have the file (vfs_read's first argument); the syscall
// tracepoints only the fd, looked up as current->files->fdt->fd[fd] (five
// probe reads more per read). KIND_FILTER keeps one kind (--kind),
// PER_KIND keeps a histogram per kind.
#include "btf.h"          // FIELD_AT(), PTR_AT()
// btf: FD_ARRAY MAX_FDS FILE_MODE
// (-D flags from this kernel's BTF, pytools/tools/read_kinds.py KIND_FIELDS,
// where the headers are not this kernel's own; else offsetof, here)
#ifndef STRUCTS_BTF
#include <linux/sched.h>
#include <linux/fdtable.h>
#include <linux/fs.h>
#define FD_ARRAY_OFF0 offsetof(struct task_struct, files)
#define FD_ARRAY_OFF1 offsetof(struct files_struct, fdt)
#define FD_ARRAY_OFF2 offsetof(struct fdtable, fd)
#define MAX_FDS_OFF2 offsetof(struct fdtable, max_fds)
#define MAX_FDS_SIZE sizeof(unsigned int)
#define FILE_MODE_OFF0 offsetof(struct file, f_inode)
#define FILE_MODE_OFF1 offsetof(struct inode, i_mode)
#define FILE_MODE_SIZE sizeof(umode_t)
#endif
#endif

// Kernel headers are slow to parse (linux/sched.h alone costs ~0.8 s of
// start-up): the comm's length comes as COMM_LEN instead (the kernel's
// TASK_COMM_LEN is an enum there, which a -D of that name would break).
// shared: COMM_LEN   (-D flag from pytools/cdefs.py COMMON: the loader passes it to every program)
typedef int rwf_t;  // type of a field of sys_enter_preadv2 (linux/types.h)

#ifndef MAX_PROCS
#define MAX_PROCS 1024
#endif
// shared: PER_PID PER_COMM NR_read NR_pread64 NR_readv NR_preadv NR_preadv2
// shared: KIND_FILE KIND_PIPE KIND_SOCKET KIND_TTY KIND_OTHER KIND_COUNT
// shared: MODE_FMT MODE_REG MODE_FIFO MODE_SOCK MODE_CHR START_SLOTS
// (-D flags from pytools/tools/vfs_read.py, SHARED and cflags: START_SLOTS, what
// PER_PROCESS keys by, the read syscalls' numbers on this machine, which
// the raw tracepoint mode matches (pytools/syscalls.py), the kinds of file
// and the inode mode bits that tell them)
#ifndef PER_COMM
#error "compile with the flags of pytools/tools/vfs_read.py (SHARED)"
#endif
#include "log2.h"         // HIST_SLOTS, unit_slot()
#include "cgroup.h"       // CGROUP_ALLOWED() (--cgroup)

// Start time of the read in flight, per thread. An array indexed by thread
// id instead of a hash: no insert/delete on the hot path. START_SLOTS is
// sized from pid_max, so two threads share a slot only when pid_max is
// larger than the array; such clashes are counted, never mis-timed.
struct read_start {
    u32 tid;
    u32 kind;              // KIND_*, with KIND
    u64 ts;
};
BPF_ARRAY(vfs_read_start, struct read_start, START_SLOTS);

// Per-CPU, one element: the histogram and its sum in one lookup, and no
// atomic operations; the reader sums the CPUs.
struct latency_hist {
    u64 slots[HIST_SLOTS];
    u64 sum_ns;            // exact sum of the latencies counted
    u64 clashes;           // reads not timed: their start slot was taken
};
BPF_PERCPU_ARRAY(vfs_read_latency_hist, struct latency_hist, 1);

#ifdef PER_PROCESS
struct proc_slot {
    u32 tgid;              // 0 when keyed by comm
    u32 slot;
    char comm[COMM_LEN];
};
struct proc_key {
    u32 tgid;
    char comm[COMM_LEN];
};
// One entry per (process, slot) in use: reads of one process spread over
// about 16 log2 slots in practice (1 us to 32 ms), hence MAX_PROCS * 16.
BPF_HASH(vfs_read_latency_proc_hist, struct proc_slot, u64, MAX_PROCS * 16);
BPF_HASH(vfs_read_latency_proc_sum, struct proc_key, u64, MAX_PROCS);
#endif

#ifdef PER_CGROUP
// By cgroup id, one entry per cgroup holding its whole histogram and sum:
// one lookup per read and two atomic additions. Not per CPU: a scrape
// reads every entry, and per-CPU values would make that read (and the
// map's memory) grow with the CPUs: 520 bytes per cgroup, on any node.
struct cgroup_hist {
    u64 slots[HIST_SLOTS];
    u64 sum_ns;
};
BPF_HASH(vfs_read_latency_cgroup_hist, u64, struct cgroup_hist, MAX_PROCS);
// A new cgroup's first value (the stack is too small for a zeroed one).
BPF_ARRAY(vfs_read_cgroup_zero, struct cgroup_hist, 1);
#endif

#ifdef KIND
#ifdef PER_KIND
BPF_PERCPU_ARRAY(vfs_read_kind_hist, struct latency_hist, KIND_COUNT);
#endif

static __always_inline u32 file_kind(const void *file)
{
    const void *inode = PTR_AT(file, FILE_MODE_OFF0);
    if (!inode)
        return KIND_OTHER;
    u32 fmt = FIELD_AT(inode, FILE_MODE_OFF1, FILE_MODE_SIZE) & MODE_FMT;
    return fmt == MODE_REG ? KIND_FILE : fmt == MODE_FIFO ? KIND_PIPE :
           fmt == MODE_SOCK ? KIND_SOCKET : fmt == MODE_CHR ? KIND_TTY : KIND_OTHER;
}

// The file behind the current task's descriptor fd: current->files->fdt->fd[fd].
static __always_inline u32 fd_kind(u64 fd)
{
    const void *task = (const void *)bpf_get_current_task();
    const void *fdt = PTR_AT(PTR_AT(task, FD_ARRAY_OFF0), FD_ARRAY_OFF1);
    if (!fdt || fd >= FIELD_AT(fdt, MAX_FDS_OFF2, MAX_FDS_SIZE))
        return KIND_OTHER;
    const void *fds = PTR_AT(fdt, FD_ARRAY_OFF2);
    const void *file = PTR_AT(fds, fd * sizeof(void *));
    return file ? file_kind(file) : KIND_OTHER;
}
#define FILE_KIND(file) file_kind(file)
#define FD_KIND(fd) fd_kind(fd)
#else
#define FILE_KIND(file) 0
#define FD_KIND(fd) 0
#endif

#ifdef FLOOR_CLOCK
// Benchmark only: the least any latency tool must do, read the clock at a
// read's entry and at its exit, kept so the compiler cannot drop it. On the
// per-syscall tracepoints, where exit hooks fire for reads only, this is a
// lower bound on the cost of timing reads at all.
BPF_PERCPU_ARRAY(vfs_read_floor_clock, u64, 1);
static __always_inline int read_clock(void)
{
    int only = 0;
    u64 *t = vfs_read_floor_clock.lookup(&only);
    if (t)
        *t = bpf_ktime_get_ns();
    return 0;
}
#endif

static __always_inline int on_read_enter(u32 kind)
{
#ifdef FLOOR_CLOCK
    return read_clock();
#endif
#ifndef FLOOR
#if defined(KIND) && defined(KIND_FILTER)
    if (kind != KIND_FILTER)
        return 0;
#endif
    u64 pid_tgid = bpf_get_current_pid_tgid();
#ifdef FILTER_PID
    if ((pid_tgid >> 32) != FILTER_PID)
        return 0;
#endif
#ifdef FILTER_COMM_LO
    // The comm as the kernel fills it (NUL-padded to 16 bytes), compared
    // as two words with the wanted name's (vfs_read.py comm_words).
    union { char c[COMM_LEN]; u64 w[2]; } comm = {};
    bpf_get_current_comm(comm.c, sizeof(comm.c));
    if (comm.w[0] != FILTER_COMM_LO || comm.w[1] != FILTER_COMM_HI)
        return 0;
#endif
    if (!CGROUP_ALLOWED())
        return 0;
    u32 tid = (u32)pid_tgid;
    u32 index = tid & (START_SLOTS - 1);
    struct read_start *start = vfs_read_start.lookup(&index);
    if (!start)
        return 0;
    if (start->ts && start->tid != tid) {
        int only = 0;
        struct latency_hist *hist = vfs_read_latency_hist.lookup(&only);
        if (hist)
            hist->clashes++;
    }
    start->tid = tid;
    start->kind = kind;
    start->ts = bpf_ktime_get_ns();
#endif
    return 0;
}

static __always_inline int on_read_exit(void)
{
#ifdef FLOOR_CLOCK
    return read_clock();
#endif
#ifndef FLOOR
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tid = (u32)pid_tgid;
    u32 index = tid & (START_SLOTS - 1);
    struct read_start *start = vfs_read_start.lookup(&index);
    if (!start || !start->ts || start->tid != tid)
        return 0;
    // The clock is read only for a read in flight: the raw sys_exit hook
    // sees every syscall's exit, and most are not reads.
    u64 delta = bpf_ktime_get_ns() - start->ts;
    start->ts = 0;
#if defined(KIND) && defined(PER_KIND)
    u32 kind = start->kind;
#endif
#ifdef MIN_LATENCY_NS
    if (delta < MIN_LATENCY_NS)
        return 0;
#endif
    u32 slot = unit_slot(delta);
    if (slot >= HIST_SLOTS)
        slot = HIST_SLOTS - 1;
#ifdef PER_PROCESS
    struct proc_slot pkey = {.slot = slot};
    struct proc_key skey = {};
    bpf_get_current_comm(pkey.comm, sizeof(pkey.comm));
#if PER_PROCESS == PER_PID
    pkey.tgid = pid_tgid >> 32;
#endif
    skey.tgid = pkey.tgid;
    __builtin_memcpy(skey.comm, pkey.comm, sizeof(skey.comm));
    u64 zero = 0;
    u64 *sum = vfs_read_latency_proc_sum.lookup_or_try_init(&skey, &zero);
    if (sum) {
        __sync_fetch_and_add(sum, delta);
        u64 *count = vfs_read_latency_proc_hist.lookup_or_try_init(&pkey, &zero);
        if (count)
            __sync_fetch_and_add(count, 1);
    }
    // Processes beyond MAX_PROCS are left out of the per-process maps only;
    // every read is counted in the global histogram below.
#endif
#ifdef PER_CGROUP
    u64 cgroup_id = bpf_get_current_cgroup_id();
    struct cgroup_hist *ch = vfs_read_latency_cgroup_hist.lookup(&cgroup_id);
    if (!ch) {
        int first = 0;
        struct cgroup_hist *zero = vfs_read_cgroup_zero.lookup(&first);
        if (zero) {
            vfs_read_latency_cgroup_hist.insert(&cgroup_id, zero);
            ch = vfs_read_latency_cgroup_hist.lookup(&cgroup_id);
        }
    }
    if (ch) {       // else the map is full: counted in the global histogram only
        u32 cslot = slot;
        asm volatile("" : "+r"(cslot));
        __sync_fetch_and_add(&ch->slots[cslot & (HIST_SLOTS - 1)], 1);
        __sync_fetch_and_add(&ch->sum_ns, delta);
    }
#endif
#if defined(KIND) && defined(PER_KIND)
    struct latency_hist *khist = vfs_read_kind_hist.lookup(&kind);
    if (khist) {
        asm volatile("" : "+r"(slot));
        khist->slots[slot & (HIST_SLOTS - 1)]++;
        khist->sum_ns += delta;
    }
#endif
    int only = 0;
    struct latency_hist *hist = vfs_read_latency_hist.lookup(&only);
    if (hist) {
        // The compiler drops a mask it can prove redundant; the empty asm
        // hides what it knows, so the mask stays as the verifier's bound.
        asm volatile("" : "+r"(slot));
        hist->slots[slot & (HIST_SLOTS - 1)]++;
        hist->sum_ns += delta;
    }
#endif
    return 0;
}

#ifdef PROBE_KPROBE
int vfs_read_entry(struct pt_regs *ctx)
{
    return on_read_enter(FILE_KIND((const void *)PT_REGS_PARM1(ctx)));
}
int vfs_read_return(struct pt_regs *ctx) { return on_read_exit(); }
#endif

#ifdef PROBE_FENTRY
KFUNC_PROBE(vfs_read) { return on_read_enter(FILE_KIND((const void *)ctx[0])); }
KRETFUNC_PROBE(vfs_read) { return on_read_exit(); }
#endif

#ifdef PROBE_RAW_TRACEPOINT
RAW_TRACEPOINT_PROBE(sys_enter)
{
    long id = ctx->args[1];
    if (id != NR_read && id != NR_pread64 && id != NR_readv && id != NR_preadv &&
        id != NR_preadv2)
        return 0;
#ifdef KIND
    // The syscall's first argument, the fd, from the user registers.
    struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
    unsigned long fd = 0;
    bpf_probe_read_kernel(&fd, sizeof(fd), &PT_REGS_PARM1(regs));
    return on_read_enter(fd_kind(fd));
#else
    return on_read_enter(0);
#endif
}
RAW_TRACEPOINT_PROBE(sys_exit) { return on_read_exit(); }
#endif

#ifdef PROBE_TRACEPOINT
TRACEPOINT_PROBE(syscalls, sys_enter_read) { return on_read_enter(FD_KIND(args->fd)); }
TRACEPOINT_PROBE(syscalls, sys_exit_read) { return on_read_exit(); }
TRACEPOINT_PROBE(syscalls, sys_enter_pread64) { return on_read_enter(FD_KIND(args->fd)); }
TRACEPOINT_PROBE(syscalls, sys_exit_pread64) { return on_read_exit(); }
TRACEPOINT_PROBE(syscalls, sys_enter_readv) { return on_read_enter(FD_KIND(args->fd)); }
TRACEPOINT_PROBE(syscalls, sys_exit_readv) { return on_read_exit(); }
TRACEPOINT_PROBE(syscalls, sys_enter_preadv) { return on_read_enter(FD_KIND(args->fd)); }
TRACEPOINT_PROBE(syscalls, sys_exit_preadv) { return on_read_exit(); }
TRACEPOINT_PROBE(syscalls, sys_enter_preadv2) { return on_read_enter(FD_KIND(args->fd)); }
TRACEPOINT_PROBE(syscalls, sys_exit_preadv2) { return on_read_exit(); }
#endif
