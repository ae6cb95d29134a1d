// log2.h: log2 histogram slots, shared by the latency programs (vfs_read.c,
// biolatency.c, runqlat.c). Slot k holds values v with k = 0 if v == 0, else
// floor(log2(v)) + 1 (pytools/hist.py reads them the same way).
// Needs UNIT_NS (the slot unit in ns: 1, 1000 or 1000000) and UNIT_BITS
// (its bit length) defined before it is included, or NATIVE_EDGES: then
// the slots are Prometheus's native histogram buckets instead (below).
#ifndef PYTOOLS_LOG2_H
#define PYTOOLS_LOG2_H

// shared: HIST_SLOTS   (-D flags from pytools/hist.py, slot_flags)
#ifndef HIST_SLOTS
#error "HIST_SLOTS comes from pytools/hist.py (slot_flags)"
#endif

static __always_inline u32 log2_slot(u64 v)
{
    return v ? bpf_log2l(v) : 0;  // bpf_log2l(v) = floor(log2(v)) + 1
}

// log2_slot(ns / UNIT_NS) without a 64-bit division on the hot path: the
// quotient's bit length is bits(ns) - UNIT_BITS or one more, and one
// comparison tells which (slot k holds ns in [UNIT_NS << (k-1), UNIT_NS << k)).
#ifdef NATIVE_EDGES
// The exporter's slots: the buckets of a Prometheus native histogram at
// schema 0, so that its native and classic expositions are both exact
// (pytools/hist.py, NATIVE). Slot 0 holds ns <= 2^-20 s (the zero bucket),
// slot k holds 2^(k-21) s < ns <= 2^(k-20) s: upper bounds inclusive, as
// Prometheus's are. In units of 2^-11 ns, slot k's upper bound is
// NATIVE_EDGE << k, with NATIVE_EDGE = 1e9 / 2^9 (21 bits), so the same
// bit length and one comparison as below find the slot.
#define NATIVE_EDGE 1953125ULL
#define NATIVE_EDGE_BITS 21
static __always_inline u32 unit_slot(u64 ns)
{
    if (ns > (1ULL << 52))         // 52 days: keeps ns << 11 in 64 bits
        ns = 1ULL << 52;
    u64 x = ns << 11;
    if (x <= NATIVE_EDGE)
        return 0;
    u64 q = x - 1;                 // x <= EDGE << k  <=>  q < EDGE << k
    u32 k = log2_slot(q) - NATIVE_EDGE_BITS;
    if (q >= (NATIVE_EDGE << k))
        k++;
    return k;
}
#else
static __always_inline u32 unit_slot(u64 ns)
{
#if UNIT_NS == 1
    return log2_slot(ns);
#else
    if (ns < UNIT_NS)
        return 0;
    u32 k = log2_slot(ns) - UNIT_BITS + 1;
    if (ns < ((u64)UNIT_NS << (k - 1)))
        k--;
    return k;
#endif
}
#endif

#endif
