// log2.h: log2 histogram slots, shared by the latency programs (vfs_read.c,
// biolatency.c). Slot k holds values v with k = 0 if v == 0, else
// floor(log2(v)) + 1 (pytools/hist.py reads them the same way).
// Needs UNIT_NS (the slot unit in ns: 1, 1000 or 1000000) and UNIT_BITS
// (its bit length) defined before it is included.
#ifndef PYTOOLS_LOG2_H
#define PYTOOLS_LOG2_H

#define HIST_SLOTS 64

static __always_inline u32 log2_slot(u64 v)
{
    return v ? bpf_log2l(v) : 0;  // bpf_log2l(v) = floor(log2(v)) + 1
}

// log2_slot(ns / UNIT_NS) without a 64-bit division on the hot path: the
// quotient's bit length is bits(ns) - UNIT_BITS or one more, and one
// comparison tells which (slot k holds ns in [UNIT_NS << (k-1), UNIT_NS << k)).
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
