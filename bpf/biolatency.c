// biolatency: log2 histograms of block I/O latency, from a request's issue
// to the driver (or, with QUEUED, its insertion into the I/O scheduler) to
// its completion.
//
// PROBE_RAW_TRACEPOINT (4.17+; what libbpf-tools' tp_btf hooks are): the same
// three tracepoints, raw, whose first argument is the struct request itself
// (block_rq_issue and block_rq_insert took (q, rq) before 5.11; block_rq_complete
// has taken (rq, error, nr_bytes) since 4.x). A request is keyed by its
// address, so flushes are timed too; its disk and op are read from it
// (rq->q->disk since 5.18, rq->rq_disk before; cmd_flags), which needs this
// kernel's own headers, or (STRUCTS_BTF) the offsets and op codes from its
// BTF, and probe reads (refused by lockdown=confidentiality).
// Cheaper than the tracepoints below: no trace record is formatted. No
// kprobe or fentry candidate: the completion functions were renamed and
// inlined across 5.16 and 6.4 (blk_account_io_done, __blk_account_io_done)
// and batched completions bypass blk_update_request, while block_rq_complete
// fires for every completion on every kernel.
//
// PROBE_TRACEPOINT (every kernel with CONFIG_BLK_DEV_IO_TRACE's tracepoints;
// the fields used, dev, sector, nr_sector and rwbs, exist from 2.6 on):
//   block:block_rq_insert    a request enters the scheduler (QUEUED only)
//   block:block_rq_issue     it is handed to the driver
//   block:block_rq_complete  the driver completed it (or part of it)
// The tracepoints give no request pointer, so a request in flight is keyed
// by (device, first sector); data-less requests (flushes: nr_sector 0) have
// no sector of their own and are counted as untimed, and a completion whose
// start was not seen (in flight when the tool attached, or an LRU eviction)
// is counted as unmatched: never guessed.
//
// Tunables: UNIT_NS with UNIT_BITS (slot unit), BY_DEVICE (-D), BY_OP (-F),
// QUEUED (-Q), FILTER_DEV (kernel dev_t: major << 20 | minor), MAX_INFLIGHT,
// MAX_KEYS, KERNEL_VERSION_CODE, FILTER_CGROUP_ID/LEVEL (cgroup.h: the
// task that inserts, or issues, the request must be in that subtree; with
// it, completions whose start was filtered out cannot be told from ones
// whose start was missed, so neither is counted as unmatched, and flushes
// are not counted).
#include <uapi/linux/ptrace.h>
#include "cgroup.h"
#ifdef PROBE_RAW_TRACEPOINT
#ifdef STRUCTS_BTF
#include "btf.h"          // FIELD_AT(), PTR_AT()
// btf: RQ_MAJOR RQ_MINOR RQ_FLAGS RQ_OP_READ RQ_OP_WRITE RQ_OP_FLUSH RQ_OP_DISCARD
// btf: RQ_OP_BITS RQ_SYNC_BIT
// (-D flags from this kernel's BTF, pytools/tools/biolatency.py FIELDS:
// where the request's disk and flags are, and the op codes and flag bits)
#else
#include <linux/blkdev.h>
#include <linux/blk-mq.h>
#endif
#endif

#ifndef MAX_INFLIGHT
#define MAX_INFLIGHT 10240
#endif
#include "log2.h"         // HIST_SLOTS, unit_slot()

// shared: OP_READ OP_WRITE OP_FLUSH OP_DISCARD OP_OTHER OP_SYNC
// shared: UNTIMED_UNMATCHED UNTIMED_FLUSH UNTIMED_MAP_FULL UNTIMED_COUNT MAX_KEYS
// (-D flags from pytools/tools/biolatency.py, SHARED: the op codes, OP_SYNC
// or'ed in for REQ_SYNC ('S' in rwbs), and biolatency_untimed's indices;
// cflags: MAX_KEYS)
#ifndef UNTIMED_COUNT
#error "compile with the flags of pytools/tools/biolatency.py (SHARED)"
#endif

struct bio_start_key {
    u64 id;               // first sector (tracepoints) or the request's address
    u32 dev;
    u32 pad;
};
// Start time of each request in flight. Every request issued completes, so
// a plain hash (cheaper than an LRU's list upkeep) stays bounded by what is
// in flight. With -Q a request inserted may be merged into another and
// never issued: there an LRU ages such starts out instead of filling up.
#ifdef QUEUED
BPF_TABLE("lru_hash", struct bio_start_key, u64, biolatency_start, MAX_INFLIGHT);
#else
BPF_HASH(biolatency_start, struct bio_start_key, u64, MAX_INFLIGHT);
#endif

struct bio_hist_key {
    u32 dev;              // 0 unless BY_DEVICE
    u32 op;               // 0 unless BY_OP
};
struct bio_hist {
    u64 slots[HIST_SLOTS];
    u64 sum_ns;           // exact sum of the latencies counted
};
// Per CPU: no atomics. Keyed (-D, -F): one entry per (device, op) in use,
// made once; else a single array entry, found without hashing.
#if defined(BY_DEVICE) || defined(BY_OP)
#define KEYED 1
BPF_PERCPU_HASH(biolatency_hist, struct bio_hist_key, struct bio_hist, MAX_KEYS);
#else
BPF_PERCPU_ARRAY(biolatency_hist, struct bio_hist, 1);
#endif
#ifdef KEYED
// A zeroed bio_hist to create entries from: at 520 bytes it cannot live on
// the 512-byte BPF stack.
BPF_PERCPU_ARRAY(biolatency_zero, struct bio_hist, 1);
#endif
// Completions whose start was not seen (UNTIMED_UNMATCHED), data-less
// requests (flushes) not timed (UNTIMED_FLUSH), completions not counted:
// biolatency_hist full (UNTIMED_MAP_FULL).
BPF_PERCPU_ARRAY(biolatency_untimed, u64, UNTIMED_COUNT);

static __always_inline void count_untimed(int which)
{
    u64 *n = biolatency_untimed.lookup(&which);
    if (n)
        (*n)++;
}

// The operation from rwbs (blk_fill_rwbs: an 'F' prefix for a preflush,
// then the op letter, then flags such as 'S' for sync).
static __always_inline u32 op_of(const char *rwbs)
{
    int i = 0;
    if (rwbs[0] == 'F' && (rwbs[1] == 'W' || rwbs[1] == 'R' || rwbs[1] == 'D' ||
                           rwbs[1] == 'N'))
        i = 1;            // a preflush before the op
    u32 op = OP_OTHER;
    char c = rwbs[i];
    if (c == 'R')
        op = OP_READ;
    else if (c == 'W')
        op = OP_WRITE;
    else if (c == 'F')
        op = OP_FLUSH;
    else if (c == 'D')
        op = OP_DISCARD;
#pragma unroll
    for (int j = 1; j < 8; j++)
        if (rwbs[j] == 'S')
            op |= OP_SYNC;
    return op;
}

static __always_inline int filtered(u32 dev)
{
#ifdef FILTER_DEV
    return dev != FILTER_DEV;
#else
    return 0;
#endif
}

// A request starts: issued, or (keep_older, -Q) inserted then issued.
static __always_inline int start_request(u32 dev, u64 id, int keep_older)
{
    if (filtered(dev) || !CGROUP_ALLOWED())
        return 0;
    struct bio_start_key key = {.id = id, .dev = dev};
    u64 now = bpf_ktime_get_ns();
    if (keep_older)   // -Q: the insert's time stands; issue only fills a gap
        biolatency_start.insert(&key, &now);
    else
        biolatency_start.update(&key, &now);
    return 0;
}

// A request completes: its latency into the (dev, op) histogram. `op` is
// only read with BY_OP (OP_OF computes it where needed).
static __always_inline int complete_request(u32 dev, u64 id, u32 op)
{
    if (filtered(dev))
        return 0;
    struct bio_start_key key = {.id = id, .dev = dev};
    u64 *start = biolatency_start.lookup(&key);
    if (!start) {
#ifndef FILTER_CGROUP_ID
        count_untimed(UNTIMED_UNMATCHED);
#endif
        return 0;
    }
    u64 delta = bpf_ktime_get_ns() - *start;
    biolatency_start.delete(&key);
    int only = 0;
#ifdef KEYED
    struct bio_hist_key hkey = {};
#ifdef BY_DEVICE
    hkey.dev = dev;
#endif
#ifdef BY_OP
    hkey.op = op;
#endif
    struct bio_hist *zero = biolatency_zero.lookup(&only);
    if (!zero)
        return 0;
    struct bio_hist *hist = biolatency_hist.lookup_or_try_init(&hkey, zero);
#else
    struct bio_hist *hist = biolatency_hist.lookup(&only);
#endif
    if (!hist) {
        count_untimed(UNTIMED_MAP_FULL);
        return 0;
    }
    u32 slot = unit_slot(delta);
    if (slot >= HIST_SLOTS)
        slot = HIST_SLOTS - 1;
    // The empty asm hides what the compiler knows, so the mask stays as
    // the verifier's bound (see vfs_read.c).
    asm volatile("" : "+r"(slot));
    hist->slots[slot & (HIST_SLOTS - 1)]++;
    hist->sum_ns += delta;
    return 0;
}

#ifdef QUEUED
#define ISSUE_KEEPS_OLDER 1   // the insert's time stands
#else
#define ISSUE_KEEPS_OLDER 0
#endif
#ifdef BY_OP
#define OP_OF(expr) (expr)
#else
#define OP_OF(expr) 0
#endif
// The disk is read from the request only where something uses it.
#if defined(BY_DEVICE) || defined(FILTER_DEV)
#define DEV_OF(expr) (expr)
#else
#define DEV_OF(expr) 0
#endif

#ifdef PROBE_TRACEPOINT
// A data-less request (a flush: nr_sector 0) has no sector to be matched by:
// not started, and counted as untimed at its completion.
#ifdef QUEUED
TRACEPOINT_PROBE(block, block_rq_insert)
{
    return args->nr_sector ? start_request(args->dev, args->sector, 0) : 0;
}
#endif

TRACEPOINT_PROBE(block, block_rq_issue)
{
    return args->nr_sector ? start_request(args->dev, args->sector, ISSUE_KEEPS_OLDER) : 0;
}

TRACEPOINT_PROBE(block, block_rq_complete)
{
    if (args->nr_sector == 0) {
#ifndef FILTER_CGROUP_ID
        if (!filtered(args->dev))
            count_untimed(UNTIMED_FLUSH);
#endif
        return 0;
    }
    return complete_request(args->dev, args->sector, OP_OF(op_of(args->rwbs)));
}
#endif

#ifdef PROBE_RAW_TRACEPOINT
#ifdef STRUCTS_BTF
// The same reads as below, at offsets from this kernel's BTF: rq->q->disk's
// major and first_minor (5.15+: older kernels' BTF has no request_queue.disk
// and this mode is not offered there), rq->cmd_flags.
struct request;
static __always_inline u32 rq_dev(struct request *rq)
{
    const void *q = PTR_AT(rq, RQ_MAJOR_OFF0);
    const void *disk = PTR_AT(q, RQ_MAJOR_OFF1);
    if (!disk)
        return 0;
    u32 major = FIELD_AT(disk, RQ_MAJOR_OFF2, RQ_MAJOR_SIZE);
    u32 minor = FIELD_AT(disk, RQ_MINOR_OFF2, RQ_MINOR_SIZE);
    return major << 20 | minor;
}

static __always_inline u32 rq_op(struct request *rq)
{
    u32 flags = FIELD_AT(rq, RQ_FLAGS_OFF0, RQ_FLAGS_SIZE);
    u32 req_op = flags & ((1U << RQ_OP_BITS) - 1);
    u32 op = req_op == RQ_OP_READ ? OP_READ : req_op == RQ_OP_WRITE ? OP_WRITE :
             req_op == RQ_OP_FLUSH ? OP_FLUSH : req_op == RQ_OP_DISCARD ? OP_DISCARD :
             OP_OTHER;
    if (flags & (1U << RQ_SYNC_BIT))
        op |= OP_SYNC;
    return op;
}
#else
static __always_inline u32 rq_dev(struct request *rq)
{
#if KERNEL_VERSION_CODE >= 0x051200   // KERNEL_VERSION(5, 18, 0): rq_disk is gone
    struct gendisk *disk = rq->q->disk;
#else
    struct gendisk *disk = rq->rq_disk;
#endif
    if (!disk)
        return 0;
    return (u32)disk->major << 20 | disk->first_minor;   // the whole disk, as the
}                                                        // tracepoints report it

static __always_inline u32 rq_op(struct request *rq)
{
    u32 flags = rq->cmd_flags;
    u32 req_op = flags & REQ_OP_MASK;
    u32 op = req_op == REQ_OP_READ ? OP_READ : req_op == REQ_OP_WRITE ? OP_WRITE :
             req_op == REQ_OP_FLUSH ? OP_FLUSH : req_op == REQ_OP_DISCARD ? OP_DISCARD :
             OP_OTHER;
    if (flags & REQ_SYNC)
        op |= OP_SYNC;
    return op;
}
#endif

#if KERNEL_VERSION_CODE >= 0x050b00   // KERNEL_VERSION(5, 11, 0): (rq)
#define RQ_ARG(ctx) ((struct request *)(ctx)->args[0])
#else                                 // before: (q, rq)
#define RQ_ARG(ctx) ((struct request *)(ctx)->args[1])
#endif

#ifdef QUEUED
RAW_TRACEPOINT_PROBE(block_rq_insert)
{
    struct request *rq = RQ_ARG(ctx);
    return start_request(DEV_OF(rq_dev(rq)), (u64)rq, 0);
}
#endif

RAW_TRACEPOINT_PROBE(block_rq_issue)
{
    struct request *rq = RQ_ARG(ctx);
    return start_request(DEV_OF(rq_dev(rq)), (u64)rq, ISSUE_KEEPS_OLDER);
}

RAW_TRACEPOINT_PROBE(block_rq_complete)
{
    struct request *rq = (struct request *)ctx->args[0];
    return complete_request(DEV_OF(rq_dev(rq)), (u64)rq, OP_OF(rq_op(rq)));
}
#endif
