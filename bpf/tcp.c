// tcpretrans: TCP retransmitted segments, SYN retransmits and resets sent
// and received, counted by the socket's owner: the cgroup the socket was
// created in (sk->sk_cgrp_data, set at socket creation, copied to accepted
// sockets from their listener), never the task on the CPU, which for a
// retransmit from a timer or softirq is whoever happened to run there.
//
// PROBE_RAW_TRACEPOINT (4.17+): tcp:tcp_retransmit_skb (4.15+; `err` 6.9+,
// where it also fires for a retransmit that failed, some before the kernel
// counted it), tcp:tcp_retransmit_synack (4.16+), tcp:tcp_send_reset
// (4.15+; its sk NULL for a reset to a segment no socket took, 6.10+),
// tcp:tcp_receive_reset (4.15+); raw: their arguments, not their records.
// They hand over the struct sock (and the sk_buff, the request sock),
// read at offsets from this kernel's headers or its BTF:
//   - segments: RetransSegs adds tcp_skb_pcount(skb) per retransmitted skb,
//     the skb's tcp_skb_cb->tcp_gso_segs (skb->cb); TCP builds multi-segment
//     skbs (GSO) even with offloads off, so an skb is not a segment;
//   - the owner: sk->sk_cgrp_data.cgroup->kn->id (5.15+: the cgroup pointer;
//     before, a `val` word also used by net_prio/net_cls: not tried there);
//   - addresses, ports, family and state from sk->__sk_common.
// A SYN-ACK retransmit hands the listener (the server's socket: its owner)
// and the request sock, whose sock_common gives the addresses.
// Unattributed (cgroup 0): a reset sent for no socket, a socket with no
// cgroup: counted under cgroup 0, never dropped.
//
// Tunables: RETRANSMIT_ERR (tcp_retransmit_skb has `err`: 6.9+), KEY_ADDR
// (SIDE_REMOTE, SIDE_LOCAL: which address and port are part of a count's
// key), KEY_STATE, MAX_KEYS, TRACE (events.h: one event per retransmit or
// reset). --cgroup's FILTER_CGROUP_ID (cgroup.h) asks about the current
// task, not the socket's owner: the reader filters keys and events by the
// owner's cgroup instead, and this file ignores it.
#include <uapi/linux/ptrace.h>
// btf: SK_CGROUP SK_FAMILY SK_STATE SK_DADDR SK_SADDR SK_DPORT SK_NUM SK_V6_DADDR SK_V6_SADDR SKB_CB TCB_SEGS
// (-D flags from this kernel's BTF, pytools/tools/tcp.py FIELDS,
// where the headers are not this kernel's own; else from the headers, here)
#ifndef STRUCTS_BTF
#include <net/sock.h>
#include <net/tcp.h>
#include <linux/cgroup-defs.h>
#include <linux/kernfs.h>
#define SK_CGROUP_OFF0 (offsetof(struct sock, sk_cgrp_data) + \
                        offsetof(struct sock_cgroup_data, cgroup))
#define SK_CGROUP_OFF1 offsetof(struct cgroup, kn)
#define SK_CGROUP_OFF2 offsetof(struct kernfs_node, id)
#define SK_CGROUP_SIZE sizeof(u64)
#define SK_FAMILY_OFF0 offsetof(struct sock_common, skc_family)
#define SK_FAMILY_SIZE 2
#define SK_STATE_OFF0 offsetof(struct sock_common, skc_state)
#define SK_STATE_SIZE 1
#define SK_DADDR_OFF0 offsetof(struct sock_common, skc_daddr)
#define SK_DADDR_SIZE 4
#define SK_SADDR_OFF0 offsetof(struct sock_common, skc_rcv_saddr)
#define SK_SADDR_SIZE 4
#define SK_DPORT_OFF0 offsetof(struct sock_common, skc_dport)
#define SK_DPORT_SIZE 2
#define SK_NUM_OFF0 offsetof(struct sock_common, skc_num)
#define SK_NUM_SIZE 2
#define SK_V6_DADDR_OFF0 offsetof(struct sock_common, skc_v6_daddr)
#define SK_V6_DADDR_SIZE 16
#define SK_V6_SADDR_OFF0 offsetof(struct sock_common, skc_v6_rcv_saddr)
#define SK_V6_SADDR_SIZE 16
#define SKB_CB_OFF0 offsetof(struct sk_buff, cb)
#define TCB_SEGS_OFF0 offsetof(struct tcp_skb_cb, tcp_gso_segs)
#define TCB_SEGS_SIZE 2
#endif
#include "btf.h"          // FIELD_AT(), PTR_AT()

// shared: KIND_RETRANS KIND_SYN KIND_RST_SENT KIND_RST_RECEIVED KINDS SIDE_REMOTE SIDE_LOCAL
// shared: STATE_SYN_SENT STATE_SYN_RECV EBUSY_ EAGAIN_ ENOMEM_ EHOSTUNREACH_ MAX_KEYS
// (-D flags from pytools/tools/tcp.py, SHARED; cflags: MAX_KEYS)
#if !defined(PROBE_RAW_TRACEPOINT)
#error "compile with a candidate of pytools/tools/tcp.py (PROBE_RAW_TRACEPOINT)"
#endif
#ifndef SIDE_LOCAL
#error "compile with the flags of pytools/tools/tcp.py (SHARED)"
#endif
#ifndef AF_INET
#define AF_INET 2
#define AF_INET6 10
#endif

struct tcp_key {
    u64 cgroup;           // the socket owner's cgroup v2 id; 0: not known
    u8 addr[16];          // KEY_ADDR's address (IPv4 in the first 4 bytes)
    u16 port;             // its port, host order
    u16 family;           // AF_INET, AF_INET6 (0: no address in the key)
    u32 state;            // KEY_STATE: the TCP state at the event
};

// Per key: [KIND_*] counts. Retransmits are segments (RetransSegs' unit):
// KIND_RETRANS the others, KIND_SYN those of a SYN or SYN-ACK.
struct tcp_counts {
    u64 n[KINDS];
};
BPF_HASH(tcp_counts, struct tcp_key, struct tcp_counts, MAX_KEYS);
// The machine's totals per kind, every event (whatever its key), and
// [KINDS] events not kept per key: the map was full.
BPF_PERCPU_ARRAY(tcp_totals, u64, KINDS + 1);

#ifdef TRACE
#include "events.h"
struct tcp_event {
    u64 ts;
    u64 cgroup;
    u8 saddr[16];
    u8 daddr[16];
    u16 sport;
    u16 dport;
    u16 family;
    u8 state;
    u8 kind;
    u32 segs;
};
#endif

struct tcp_ends {
    u8 saddr[16];
    u8 daddr[16];
    u16 sport;
    u16 dport;
    u16 family;
    u16 state;
};

static __always_inline void total(u32 index, u64 n)
{
    u64 *slot = tcp_totals.lookup(&index);
    if (slot)
        *slot += n;
}

static __always_inline u64 sock_cgroup(const void *sk)
{
    if (!sk)
        return 0;
    const void *cgrp = PTR_AT(sk, SK_CGROUP_OFF0);
    const void *kn = PTR_AT(cgrp, SK_CGROUP_OFF1);
    return FIELD_AT(kn, SK_CGROUP_OFF2, SK_CGROUP_SIZE);
}

// Addresses, ports, family and state of a socket, from its sock_common.
static __always_inline void sock_ends(const void *sk, struct tcp_ends *e)
{
    if (!sk)
        return;
    e->family = FIELD_AT(sk, SK_FAMILY_OFF0, SK_FAMILY_SIZE);
    e->state = FIELD_AT(sk, SK_STATE_OFF0, SK_STATE_SIZE);
    e->sport = FIELD_AT(sk, SK_NUM_OFF0, SK_NUM_SIZE);
    e->dport = bpf_ntohs((u16)FIELD_AT(sk, SK_DPORT_OFF0, SK_DPORT_SIZE));
    if (e->family == AF_INET6) {
        bpf_probe_read_kernel(e->saddr, 16, (const char *)sk + SK_V6_SADDR_OFF0);
        bpf_probe_read_kernel(e->daddr, 16, (const char *)sk + SK_V6_DADDR_OFF0);
    } else {
        bpf_probe_read_kernel(e->saddr, 4, (const char *)sk + SK_SADDR_OFF0);
        bpf_probe_read_kernel(e->daddr, 4, (const char *)sk + SK_DADDR_OFF0);
    }
}

static __always_inline void count(void *ctx, u64 cgroup, struct tcp_ends *e, u32 kind,
                                  u64 n)
{
    total(kind, n);
    struct tcp_key key = {.cgroup = cgroup};
#if KEY_ADDR == SIDE_REMOTE
    __builtin_memcpy(key.addr, e->daddr, 16);
    key.port = e->dport;
    key.family = e->family;
#elif KEY_ADDR == SIDE_LOCAL
    __builtin_memcpy(key.addr, e->saddr, 16);
    key.port = e->sport;
    key.family = e->family;
#endif
#ifdef KEY_STATE
    key.state = e->state;
#endif
    struct tcp_counts *c = tcp_counts.lookup(&key);
    if (!c) {
        struct tcp_counts zero = {};
        if (tcp_counts.insert(&key, &zero) != 0)
            total(KINDS, 1);        // the map is full (an existing key raced: looked up below)
        c = tcp_counts.lookup(&key);
    }
    if (c && kind < KINDS)
        __sync_fetch_and_add(&c->n[kind], n);
#ifdef TRACE
    struct tcp_event ev = {.ts = bpf_ktime_get_ns(), .cgroup = cgroup, .sport = e->sport,
                           .dport = e->dport, .family = e->family, .state = e->state,
                           .kind = kind, .segs = n};
    __builtin_memcpy(ev.saddr, e->saddr, 16);
    __builtin_memcpy(ev.daddr, e->daddr, 16);
    events_submit(ctx, &ev, sizeof(ev));
#endif
}

// Each hook is a raw tracepoint: its program is skipped only when the
// same program is already running on that CPU (a tracepoint's is skipped
// whenever any BPF program is: a retransmit in a softirq that interrupted
// another tool's program), and no trace record is formatted. Skipped runs
// are counted by the kernel (recursion_misses) and read by the reader.

// (sk, skb), and err from 6.9 (RETRANSMIT_ERR)
RAW_TRACEPOINT_PROBE(tcp_retransmit_skb)
{
    const void *sk = (const void *)ctx->args[0];
    const void *skb = (const void *)ctx->args[1];
#ifdef RETRANSMIT_ERR
    // 6.9+ also fires for a retransmit that returned early, before the
    // kernel counted it: busy (still in the host's queue: TSQ), -EAGAIN,
    // -ENOMEM (fragmenting), -EHOSTUNREACH (no route to rebuild the
    // header). Those are not in RetransSegs; a later error (the transmit
    // itself failed) is, and is counted here.
    int err = (int)ctx->args[2];
    if (err == -EBUSY_ || err == -EAGAIN_ || err == -ENOMEM_ || err == -EHOSTUNREACH_)
        return 0;
#endif
    struct tcp_ends e = {};
    sock_ends(sk, &e);
    // tcp_skb_pcount(skb): the segments this skb carries (RetransSegs' unit).
    u64 segs = FIELD_AT(skb, SKB_CB_OFF0 + TCB_SEGS_OFF0, TCB_SEGS_SIZE);
    if (segs == 0)
        segs = 1;
    u32 kind = e.state == STATE_SYN_SENT ? KIND_SYN : KIND_RETRANS;
    count(ctx, sock_cgroup(sk), &e, kind, segs);
    return 0;
}

// (sk: the listener, req): a request sock begins with a sock_common too,
// so its addresses and ports are read at the same offsets as a socket's.
RAW_TRACEPOINT_PROBE(tcp_retransmit_synack)
{
    const void *sk = (const void *)ctx->args[0];
    const void *req = (const void *)ctx->args[1];
    struct tcp_ends e = {};
    sock_ends(req, &e);
    e.state = STATE_SYN_RECV;
    count(ctx, sock_cgroup(sk), &e, KIND_SYN, 1);
    return 0;
}

// (sk, skb[, reason]): sk NULL for a reset for no socket.
RAW_TRACEPOINT_PROBE(tcp_send_reset)
{
    const void *sk = (const void *)ctx->args[0];
    struct tcp_ends e = {};
    sock_ends(sk, &e);
    count(ctx, sock_cgroup(sk), &e, KIND_RST_SENT, 1);
    return 0;
}

// (sk)
RAW_TRACEPOINT_PROBE(tcp_receive_reset)
{
    const void *sk = (const void *)ctx->args[0];
    struct tcp_ends e = {};
    sock_ends(sk, &e);
    count(ctx, sock_cgroup(sk), &e, KIND_RST_RECEIVED, 1);
    return 0;
}
