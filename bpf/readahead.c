// readahead: what the page cache reads ahead, per device and file.
//
// Two kinds of hook, in every probe mode:
//   request  a reader asked for readahead: sync (cache miss) or async (it hit
//            the PG_readahead marker); counts requests and pages requested.
//   window   pages actually submitted for reading: the readahead window.
//
// PROBE_TRACEPOINT (Linux 6.18+: the readahead tracepoint group)
//   readahead:page_cache_sync_ra, page_cache_async_ra     requests
//   readahead:page_cache_ra_order, page_cache_ra_unbounded windows
// PROBE_KPROBE (any kernel with kprobes; each function behind HOOK_<name>,
// the loader defines the ones this kernel has):
//   page_cache_sync_ra          5.10+  request (ractl, [ra 5.10-5.17,] req_count)
//   page_cache_async_ra         5.10+  request
//   page_cache_sync_readahead   <=5.9  request (a real function until 5.9,
//                                      an inline wrapper from 5.10)
//   page_cache_async_readahead  <=5.9  request
//   page_cache_ra_unbounded     5.10+  window (nr_to_read, lookahead_size)
//   page_cache_ra_order         5.18+  window (ra->size, ra->async_size)
//   __do_page_cache_readahead   <=5.9  window (renamed do_page_cache_ra in 5.10)
// PROBE_FENTRY (5.5+ with BTF, no lockdown): the same functions and HOOK_
// macros as PROBE_KPROBE, through fentry (cheaper, typed arguments).
// Not hooked: do_page_cache_ra (5.10+) and ra_submit (<=5.9) only wrap
// page_cache_ra_unbounded / __do_page_cache_readahead, so hooking them too
// would count each window twice.
//
// page_cache_ra_order falls back to do_page_cache_ra -> page_cache_ra_unbounded
// for files without large folios; the per-thread "window counted" mark
// below keeps that fallback from being counted twice.
//
// EFFICIENCY adds what became of the pages read ahead:
//   filemap:mm_filemap_add_to_page_cache     a folio added by a thread inside
//                                            the readahead window it just
//                                            opened (window hooks above) is a
//                                            page read ahead: marked pending
//   filemap:mm_filemap_delete_from_page_cache  a page leaves the cache
// (6.1 and 6.18 have both, with the folio's order), and the uses, from one
// of:
//   USE_TRACEPOINTS (recent kernels: 6.18 has them, 6.1 does not)
//     filemap:mm_filemap_get_pages           read(2), splice, sendfile reach
//                                            pages [index, last_index]
//     filemap:mm_filemap_map_pages, _fault   a page fault maps pages (fault-
//                                            around included)
//   USE_FEXIT (5.5+ with BTF, no lockdown): the same at the exit of
//     filemap_read (5.11+, generic_file_buffered_read before; ki_pos has
//     moved past the bytes read), filemap_map_pages (3.15+) and
//     filemap_fault (2.6.23+)
// A pending page reached by a read or a fault is used; one that leaves the
// cache first was read ahead for nothing. Pending pages sit in 64-page
// bitmaps keyed by (dev, inode, index / 64). The kernel marks only the first
// folio of each read batch accessed (filemap_read), which is why bcc's
// readahead.py, counting folio_mark_accessed, sees large reads as unused;
// the read range of mm_filemap_get_pages has no such gap.
//
// Tunables: FILTER_DEV (kernel dev_t: major << 20 | minor), FILTER_PID,
// FILTER_CGROUP_ID/LEVEL (cgroup.h), BY_CGROUP (counts per cgroup id), MAX_FILES, MAX_PENDING_CHUNKS, NO_FILES (per-device counts only: the exporter, whose maps live
// for days, has no use for per-inode counts), TRACE (send each event to user
// space too), KERNEL_VERSION_CODE.
#include <uapi/linux/ptrace.h>
#include "cgroup.h"

#if defined(PROBE_KPROBE) || defined(PROBE_FENTRY) || defined(USE_FEXIT)
#include <linux/fs.h>
#include <linux/pagemap.h>
#endif
#ifdef USE_FEXIT
#include <linux/mm.h>
#endif

#ifndef MAX_FILES
#define MAX_FILES 10240
#endif
#define TID_SLOTS 32768

// shared: KIND_SYNC KIND_ASYNC KIND_FORCED HIST_SLOTS
// shared: EVENT_SYNC_REQUEST EVENT_ASYNC_REQUEST EVENT_WINDOW
// shared: COMM_LEN   (-D flag from pytools/cdefs.py COMMON: the loader passes it to every program)
// (-D flags from pytools/tools/readahead.py, SHARED: readahead kinds, the
// window histogram's slots, and what a traced event is)
#ifndef EVENT_WINDOW
#error "compile with the flags of pytools/tools/readahead.py (SHARED)"
#endif

struct ra_dev_key {
    u32 dev;
    u32 kind;
};
struct ra_counts {
    u64 requests;      // readahead requests of this kind
    u64 req_pages;     // pages the readers asked for
    u64 windows;       // windows submitted
    u64 pages;         // pages in those windows
};
BPF_HASH(readahead_devices, struct ra_dev_key, struct ra_counts, 1024);

struct ra_file_key {
    u64 ino;
    u32 dev;
    u32 pad;
};
BPF_HASH(readahead_files, struct ra_file_key, struct ra_counts, MAX_FILES);
#ifdef BY_CGROUP
// Per cgroup id and kind (--by pod|container): who the readahead was for.
// Requests and windows run in the reading task, whose cgroup this is.
struct ra_cgroup_key {
    u64 cgroup_id;
    u32 kind;
    u32 pad;
};
BPF_HASH(readahead_cgroups, struct ra_cgroup_key, struct ra_counts, 4096);
#endif
// [0] events whose device or file found its map full.
BPF_ARRAY(readahead_overflow, u64, 1);
// log2 of window size in pages, and the exact sum of the pages counted.
BPF_PERCPU_ARRAY(readahead_window_pages_hist, u64, HIST_SLOTS);
BPF_PERCPU_ARRAY(readahead_window_pages_sum, u64, 1);

// The kind of the request each thread is serving, for its window hooks,
// indexed by thread id like vfs_read.c's start array.
struct ra_thread {
    u32 tid;
    u32 kind;
    u64 ts;            // when the request started
    u64 window_ts;     // when page_cache_ra_order counted a window, else 0
};
BPF_ARRAY(readahead_thread, struct ra_thread, TID_SLOTS);

#ifdef EFFICIENCY
#ifndef MAX_PENDING_CHUNKS
#define MAX_PENDING_CHUNKS 65536     // 64 pages each: 16 GiB of 4 KiB pages
#endif
#define CHUNK_SHIFT 6
#define CHUNK_PAGES (1ULL << CHUNK_SHIFT)
// Chunks one event may touch: 1024 pages. A read batch holds at most 31
// folios, so a read reaches at most this far past its index before its
// next mm_filemap_get_pages; a folio is at most 512 pages here (order 9).
#define MAX_SPAN_CHUNKS 16
// A window's folios are added within microseconds of its hook, by the
// thread that opened it; this bounds how stale that window may be.
#define WINDOW_NS 100000000ULL

// The last readahead window each thread opened (indexed like
// readahead_thread).
struct ra_window {
    u64 ino;
    u64 lo;            // first page index of the window
    u64 hi;            // one past its last
    u64 ts;
    u32 tid;
    u32 dev;
};
BPF_ARRAY(readahead_window, struct ra_window, TID_SLOTS);

struct ra_chunk_key {
    u64 ino;
    u64 chunk;         // page index >> CHUNK_SHIFT
    u32 dev;
    u32 pad;
};
// Bit i: page chunk * 64 + i was read ahead and neither used nor dropped.
BPF_HASH(readahead_pending, struct ra_chunk_key, u64, MAX_PENDING_CHUNKS);

struct ra_usage {
    u64 added;         // pages read ahead (and tracked)
    u64 used;          // of those, reached by a read or a fault
    u64 dropped;       // of those, left the cache unused
    u64 untracked;     // read ahead but not tracked: readahead_pending full
};
BPF_HASH(readahead_usage, u32, struct ra_usage, 1024);
#endif

#ifdef TRACE
struct ra_event {
    u64 ts;
    u64 ino;
    u64 index;
    u32 pid;
    u32 dev;
    u32 hook;          // EVENT_*: a request of each kind, or a window
    u32 kind;
    u32 size;          // request: req_count; window: pages
    u32 async_size;    // window: lookahead (async) part
    char comm[COMM_LEN];
};
BPF_PERF_OUTPUT(readahead_events);
#endif

static __always_inline int filtered(u32 dev)
{
#ifdef FILTER_DEV
    if (dev != FILTER_DEV)
        return 1;
#endif
#ifdef FILTER_PID
    if ((bpf_get_current_pid_tgid() >> 32) != FILTER_PID)
        return 1;
#endif
    return !CGROUP_ALLOWED();
}

static __always_inline void overflowed(void)
{
    int zero = 0;
    u64 *n = readahead_overflow.lookup(&zero);
    if (n)
        __sync_fetch_and_add(n, 1);
}

static __always_inline void bump(struct ra_counts *c, u64 requests, u64 req_pages,
                                 u64 windows, u64 pages)
{
    __sync_fetch_and_add(&c->requests, requests);
    __sync_fetch_and_add(&c->req_pages, req_pages);
    __sync_fetch_and_add(&c->windows, windows);
    __sync_fetch_and_add(&c->pages, pages);
}

static __always_inline void add(struct ra_dev_key *dkey, struct ra_file_key *fkey,
                                u64 requests, u64 req_pages, u64 windows, u64 pages)
{
    struct ra_counts zero = {};
    struct ra_counts *c = readahead_devices.lookup_or_try_init(dkey, &zero);
    if (c)
        bump(c, requests, req_pages, windows, pages);
    else
        overflowed();
#ifndef NO_FILES
    c = readahead_files.lookup_or_try_init(fkey, &zero);
    if (c)
        bump(c, requests, req_pages, windows, pages);
    else
        overflowed();
#endif
#ifdef BY_CGROUP
    struct ra_cgroup_key ckey = {.cgroup_id = bpf_get_current_cgroup_id(), .kind = dkey->kind};
    c = readahead_cgroups.lookup_or_try_init(&ckey, &zero);
    if (c)
        bump(c, requests, req_pages, windows, pages);
    else
        overflowed();
#endif
}

#ifdef TRACE
static __always_inline void emit(void *ctx, u32 dev, u64 ino, u64 index, u32 hook, u32 kind,
                                 u32 size, u32 async_size)
{
    struct ra_event e = {};
    e.ts = bpf_ktime_get_ns();
    e.pid = bpf_get_current_pid_tgid() >> 32;
    e.dev = dev;
    e.ino = ino;
    e.index = index;
    e.hook = hook;
    e.kind = kind;
    e.size = size;
    e.async_size = async_size;
    bpf_get_current_comm(e.comm, sizeof(e.comm));
    readahead_events.perf_submit(ctx, &e, sizeof(e));
}
#endif

static __always_inline int on_request(void *ctx, u32 dev, u64 ino, u64 index, u64 req_count,
                                      u32 kind)
{
    if (filtered(dev))
        return 0;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u32 slot = tid & (TID_SLOTS - 1);
    struct ra_thread *t = readahead_thread.lookup(&slot);
    if (t) {
        t->tid = tid;
        t->kind = kind;
        t->ts = bpf_ktime_get_ns();
        t->window_ts = 0;
    }
    struct ra_dev_key dkey = {.dev = dev, .kind = kind};
    struct ra_file_key fkey = {.ino = ino, .dev = dev};
    add(&dkey, &fkey, 1, req_count, 0, 0);
#ifdef TRACE
    emit(ctx, dev, ino, index, kind == KIND_SYNC ? EVENT_SYNC_REQUEST : EVENT_ASYNC_REQUEST,
         kind, req_count, 0);
#endif
    return 0;
}

#ifdef EFFICIENCY
static __always_inline void note_window(u32 dev, u64 ino, u64 index, u64 pages, u64 now)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u32 slot = tid & (TID_SLOTS - 1);
    struct ra_window *w = readahead_window.lookup(&slot);
    if (!w)
        return;
    w->tid = tid;
    w->dev = dev;
    w->ino = ino;
    w->lo = index;
    w->hi = index + pages;
    w->ts = now;
}

static __always_inline u64 popcount64(u64 x)
{
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (x * 0x0101010101010101ULL) >> 56;
}

// Bits for pages [lo, hi) of chunk c (the caller ensures they overlap it).
static __always_inline u64 chunk_mask(u64 c, u64 lo, u64 hi)
{
    u64 base = c << CHUNK_SHIFT;
    u64 a = lo > base ? lo - base : 0;
    u64 b = hi < base + CHUNK_PAGES ? hi - base : CHUNK_PAGES;
    u64 width = b - a;
    if (width >= CHUNK_PAGES)
        return ~0ULL;
    return ((1ULL << width) - 1) << (a & (CHUNK_PAGES - 1));
}

static __always_inline struct ra_usage *usage_of(u32 dev)
{
    struct ra_usage zero = {};
    return readahead_usage.lookup_or_try_init(&dev, &zero);
}

// Pages [lo, hi) of (dev, ino) were just read ahead.
static __always_inline void mark_pending(u32 dev, u64 ino, u64 lo, u64 hi)
{
    u64 added = 0, covered = 0;
    struct ra_chunk_key key = {.ino = ino, .dev = dev};
    u64 first = lo >> CHUNK_SHIFT;
    for (int i = 0; i < MAX_SPAN_CHUNKS; i++) {
        u64 c = first + i;
        if ((c << CHUNK_SHIFT) >= hi)
            break;
        key.chunk = c;
        u64 none = 0;
        u64 *bits = readahead_pending.lookup_or_try_init(&key, &none);
        if (!bits)
            break;
        u64 mask = chunk_mask(c, lo, hi);
        covered += popcount64(mask);
        added += popcount64(mask & ~*bits);   // a pending page is never re-added
        *bits |= mask;
    }
    struct ra_usage *u = usage_of(dev);
    if (u) {
        __sync_fetch_and_add(&u->added, added);
        if (hi - lo > covered)
            __sync_fetch_and_add(&u->untracked, hi - lo - covered);
    }
}

// Pages [lo, hi) of (dev, ino) were reached (used) or left the cache.
static __always_inline void settle(u32 dev, u64 ino, u64 lo, u64 hi, int dropped)
{
    u64 n = 0;
    struct ra_chunk_key key = {.ino = ino, .dev = dev};
    u64 first = lo >> CHUNK_SHIFT;
    for (int i = 0; i < MAX_SPAN_CHUNKS; i++) {
        u64 c = first + i;
        if ((c << CHUNK_SHIFT) >= hi)
            break;
        key.chunk = c;
        u64 *bits = readahead_pending.lookup(&key);
        if (!bits)
            continue;
        u64 hit = *bits & chunk_mask(c, lo, hi);
        if (!hit)
            continue;
        n += popcount64(hit);
        *bits &= ~hit;
        if (!*bits)
            readahead_pending.delete(&key);
    }
    if (!n)
        return;
    struct ra_usage *u = usage_of(dev);
    if (u) {
        if (dropped)
            __sync_fetch_and_add(&u->dropped, n);
        else
            __sync_fetch_and_add(&u->used, n);
    }
}

// A folio is 2^order pages (order <= MAX_ORDER, 10 or less); "& 15" keeps
// the shift below 64 where the verifier cannot know that.
#define FOLIO_PAGES(order) (1ULL << ((order) & 15))

TRACEPOINT_PROBE(filemap, mm_filemap_add_to_page_cache)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u32 slot = tid & (TID_SLOTS - 1);
    struct ra_window *w = readahead_window.lookup(&slot);
    if (!w || w->tid != tid || w->dev != args->s_dev || w->ino != args->i_ino)
        return 0;
    u64 index = args->index;
    if (index < w->lo || index >= w->hi || bpf_ktime_get_ns() - w->ts > WINDOW_NS)
        return 0;
    mark_pending(args->s_dev, args->i_ino, index, index + FOLIO_PAGES(args->order));
    return 0;
}

TRACEPOINT_PROBE(filemap, mm_filemap_delete_from_page_cache)
{
    u64 index = args->index;
    settle(args->s_dev, args->i_ino, index, index + FOLIO_PAGES(args->order), 1);
    return 0;
}

#ifdef USE_TRACEPOINTS
TRACEPOINT_PROBE(filemap, mm_filemap_get_pages)
{
    settle(args->s_dev, args->i_ino, args->index, args->last_index + 1, 0);
    return 0;
}

TRACEPOINT_PROBE(filemap, mm_filemap_map_pages)
{
    settle(args->s_dev, args->i_ino, args->index, args->last_index + 1, 0);
    return 0;
}

TRACEPOINT_PROBE(filemap, mm_filemap_fault)
{
    settle(args->s_dev, args->i_ino, args->index, args->index + 1, 0);
    return 0;
}
#endif
#endif

// A request and its window come from one call chain on one thread, within
// microseconds; 10 ms bounds how stale a thread's request state may be.
#define SAME_CALL_NS 10000000ULL

static __always_inline int on_window(void *ctx, u32 dev, u64 ino, u64 index, u64 pages,
                                     u64 async_size, int from_order)
{
    if (filtered(dev))
        return 0;
    u64 now = bpf_ktime_get_ns();
#ifdef EFFICIENCY
    note_window(dev, ino, index, pages, now);
#endif
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u32 slot = tid & (TID_SLOTS - 1);
    u32 kind = KIND_FORCED;   // fadvise(WILLNEED), readahead(2), MADV_WILLNEED
    struct ra_thread *t = readahead_thread.lookup(&slot);
    if (t && t->tid == tid && now - t->ts < SAME_CALL_NS) {
        if (!from_order && t->window_ts && now - t->window_ts < SAME_CALL_NS) {
            t->window_ts = 0;  // the fallback of a window counted at ra_order
            return 0;
        }
        kind = t->kind;
        if (from_order)
            t->window_ts = now;
    }
    struct ra_dev_key dkey = {.dev = dev, .kind = kind};
    struct ra_file_key fkey = {.ino = ino, .dev = dev};
    add(&dkey, &fkey, 0, 0, 1, pages);
    u32 hslot = pages ? bpf_log2l(pages) : 0;
    if (hslot >= HIST_SLOTS)
        hslot = HIST_SLOTS - 1;
    u64 *bucket = readahead_window_pages_hist.lookup(&hslot);
    if (bucket)
        (*bucket)++;
    int only = 0;
    u64 *sum = readahead_window_pages_sum.lookup(&only);
    if (sum)
        *sum += pages;
#ifdef TRACE
    emit(ctx, dev, ino, index, EVENT_WINDOW, kind, pages, async_size);
#endif
    return 0;
}

#ifdef PROBE_TRACEPOINT
TRACEPOINT_PROBE(readahead, page_cache_sync_ra)
{
    return on_request(args, args->s_dev, args->i_ino, args->index, args->req_count, KIND_SYNC);
}

TRACEPOINT_PROBE(readahead, page_cache_async_ra)
{
    return on_request(args, args->s_dev, args->i_ino, args->index, args->req_count, KIND_ASYNC);
}

TRACEPOINT_PROBE(readahead, page_cache_ra_order)
{
    return on_window(args, args->s_dev, args->i_ino, args->index, args->size,
                     args->async_size, 1);
}

TRACEPOINT_PROBE(readahead, page_cache_ra_unbounded)
{
    return on_window(args, args->s_dev, args->i_ino, args->index, args->nr_to_read,
                     args->lookahead_size, 0);
}
#endif

#if defined(PROBE_KPROBE) || defined(PROBE_FENTRY) || defined(USE_FEXIT)
// struct readahead_control (5.8+) gives the file; older hooks get the mapping.
static __always_inline u32 mapping_dev(struct address_space *mapping)
{
    struct inode *host = mapping->host;
    return host->i_sb->s_dev;
}

static __always_inline u64 mapping_ino(struct address_space *mapping)
{
    struct inode *host = mapping->host;
    return host->i_ino;
}

// The 5.10+ hooks (kprobe and fentry alike) all take a readahead_control.
static __always_inline int ractl_request(void *ctx, struct readahead_control *ractl, u64 req,
                                         u32 kind)
{
    return on_request(ctx, mapping_dev(ractl->mapping), mapping_ino(ractl->mapping),
                      ractl->_index, req, kind);
}

static __always_inline int ractl_window(void *ctx, struct readahead_control *ractl, u64 pages,
                                        u64 async_size, int from_order)
{
    return on_window(ctx, mapping_dev(ractl->mapping), mapping_ino(ractl->mapping),
                     ractl->_index, pages, async_size, from_order);
}
#endif

#ifdef PROBE_KPROBE
#ifdef HOOK_page_cache_sync_ra
int kp_sync_ra(struct pt_regs *ctx, struct readahead_control *ractl)
{
#if KERNEL_VERSION_CODE >= 0x051200   // KERNEL_VERSION(5, 18, 0): (ractl, req_count)
    u64 req = PT_REGS_PARM2(ctx);
#else                                 // 5.10-5.17: (ractl, ra, req_count)
    u64 req = PT_REGS_PARM3(ctx);
#endif
    return ractl_request(ctx, ractl, req, KIND_SYNC);
}
#endif

#ifdef HOOK_page_cache_async_ra
int kp_async_ra(struct pt_regs *ctx, struct readahead_control *ractl)
{
#if KERNEL_VERSION_CODE >= 0x051200   // KERNEL_VERSION(5, 18, 0): (ractl, folio, req_count)
    u64 req = PT_REGS_PARM3(ctx);
#else                                 // 5.10-5.17: (ractl, ra, page, req_count)
    u64 req = PT_REGS_PARM4(ctx);
#endif
    return ractl_request(ctx, ractl, req, KIND_ASYNC);
}
#endif

#ifdef HOOK_page_cache_sync_readahead
int kp_sync_readahead(struct pt_regs *ctx, struct address_space *mapping, void *ra,
                      void *filp, unsigned long offset, unsigned long req_size)
{
    return on_request(ctx, mapping_dev(mapping), mapping_ino(mapping), offset, req_size,
                      KIND_SYNC);
}
#endif

#ifdef HOOK_page_cache_async_readahead
int kp_async_readahead(struct pt_regs *ctx, struct address_space *mapping, void *ra,
                       void *filp, void *page, unsigned long offset)
{
    u64 req = PT_REGS_PARM6(ctx);
    return on_request(ctx, mapping_dev(mapping), mapping_ino(mapping), offset, req,
                      KIND_ASYNC);
}
#endif

#ifdef HOOK_page_cache_ra_unbounded
int kp_ra_unbounded(struct pt_regs *ctx, struct readahead_control *ractl,
                    unsigned long nr_to_read, unsigned long lookahead_size)
{
    return ractl_window(ctx, ractl, nr_to_read, lookahead_size, 0);
}
#endif

#ifdef HOOK_page_cache_ra_order
int kp_ra_order(struct pt_regs *ctx, struct readahead_control *ractl,
                struct file_ra_state *ra)
{
    return ractl_window(ctx, ractl, ra->size, ra->async_size, 1);
}
#endif

#ifdef HOOK___do_page_cache_readahead
int kp_do_readahead(struct pt_regs *ctx, struct address_space *mapping, void *filp,
                    unsigned long offset, unsigned long nr_to_read,
                    unsigned long lookahead_size)
{
    return on_window(ctx, mapping_dev(mapping), mapping_ino(mapping), offset, nr_to_read,
                     lookahead_size, 0);
}
#endif
#endif

#ifdef PROBE_FENTRY
// Argument lists as in the kprobe handlers above; fentry only names the ones
// it reads.
#ifdef HOOK_page_cache_sync_ra
#if KERNEL_VERSION_CODE >= 0x051200   // KERNEL_VERSION(5, 18, 0)
KFUNC_PROBE(page_cache_sync_ra, struct readahead_control *ractl, unsigned long req_count)
#else
KFUNC_PROBE(page_cache_sync_ra, struct readahead_control *ractl, void *ra,
            unsigned long req_count)
#endif
{
    return ractl_request(ctx, ractl, req_count, KIND_SYNC);
}
#endif

#ifdef HOOK_page_cache_async_ra
#if KERNEL_VERSION_CODE >= 0x051200   // KERNEL_VERSION(5, 18, 0)
KFUNC_PROBE(page_cache_async_ra, struct readahead_control *ractl, void *folio,
            unsigned long req_count)
#else
KFUNC_PROBE(page_cache_async_ra, struct readahead_control *ractl, void *ra, void *page,
            unsigned long req_count)
#endif
{
    return ractl_request(ctx, ractl, req_count, KIND_ASYNC);
}
#endif

#ifdef HOOK_page_cache_ra_unbounded
KFUNC_PROBE(page_cache_ra_unbounded, struct readahead_control *ractl,
            unsigned long nr_to_read, unsigned long lookahead_size)
{
    return ractl_window(ctx, ractl, nr_to_read, lookahead_size, 0);
}
#endif

#ifdef HOOK_page_cache_ra_order
KFUNC_PROBE(page_cache_ra_order, struct readahead_control *ractl, struct file_ra_state *ra)
{
    return ractl_window(ctx, ractl, ra->size, ra->async_size, 1);
}
#endif
#endif

#ifdef USE_FEXIT
// Readahead efficiency's uses, where the filemap tracepoints for them are
// missing (see EFFICIENCY at the top).
KRETFUNC_PROBE(filemap_read, struct kiocb *iocb, void *iter, ssize_t already_read, ssize_t ret)
{
    if (ret <= already_read)
        return 0;
    u64 end = iocb->ki_pos;
    u64 start = end - (ret - already_read);
    struct address_space *mapping = iocb->ki_filp->f_mapping;
    settle(mapping_dev(mapping), mapping_ino(mapping), start >> PAGE_SHIFT,
           (end + PAGE_SIZE - 1) >> PAGE_SHIFT, 0);
    return 0;
}

KRETFUNC_PROBE(filemap_fault, struct vm_fault *vmf, vm_fault_t ret)
{
    if (ret & VM_FAULT_ERROR)
        return 0;
    struct address_space *mapping = vmf->vma->vm_file->f_mapping;
    settle(mapping_dev(mapping), mapping_ino(mapping), vmf->pgoff, vmf->pgoff + 1, 0);
    return 0;
}

KRETFUNC_PROBE(filemap_map_pages, struct vm_fault *vmf, pgoff_t start_pgoff, pgoff_t end_pgoff,
               vm_fault_t ret)
{
    struct address_space *mapping = vmf->vma->vm_file->f_mapping;
    settle(mapping_dev(mapping), mapping_ino(mapping), start_pgoff, end_pgoff + 1, 0);
    return 0;
}
#endif
