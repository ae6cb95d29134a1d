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
// OWNER_PID (tcpretrans --by pid, -p: a plan flag, never the exporter's):
// the process too, from a per-socket map (tcp_owners, MAX_SOCKETS, a hash
// keyed by the socket's address) filled where the owner is current:
// sock:inet_sock_set_state CLOSE->SYN_SENT (connect) and CLOSE->LISTEN
// (listen), and for an accepted socket (made in softirq): with
// PROBE_ACCEPT_KRETPROBE (where kprobes are: the same raw tracepoints
// besides) a kretprobe on inet_csk_accept, in the accepting process, once
// per connection; else (PROBE_RAW_TRACEPOINT) tcp:tcp_rcv_space_adjust (a
// read that copied data: tcp_recvmsg) for a socket not in the map yet, a
// lookup per read. Cleaned at tcp:tcp_destroy_sock (every TCP socket's end) and
// when a new accepted socket takes an address (state -> SYN_RECV). A
// socket not in the map (opened before the tool started, a server socket
// that never received, the map full) counts under pid 0: shown apart.
// KEY_PID: the pid and its comm are part of a count's key;
// FILTER_OWNER_PID: only sockets this process owns are kept and counted.
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
// shared: STATE_SYN_SENT STATE_SYN_RECV STATE_CLOSE STATE_LISTEN OWNER_OVERFLOW EBUSY_ EAGAIN_ ENOMEM_ EHOSTUNREACH_
// shared: MAX_KEYS
// (-D flags from pytools/tools/tcp.py, SHARED; cflags: MAX_KEYS, and MAX_SOCKETS with OWNER_PID)
#if !defined(PROBE_RAW_TRACEPOINT) && !defined(PROBE_ACCEPT_KRETPROBE)
#error "compile with a candidate of pytools/tools/tcp.py (PROBE_RAW_TRACEPOINT)"
#endif
#ifndef SIDE_LOCAL
#error "compile with the flags of pytools/tools/tcp.py (SHARED)"
#endif
#if defined(OWNER_PID) && !defined(MAX_SOCKETS)
#error "OWNER_PID needs MAX_SOCKETS (pytools/tools/tcp.py cflags)"
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
    u32 pid;              // KEY_PID: the owner's pid (tgid); 0: not known
    char comm[16];        // KEY_PID: its comm when the map learnt it
};

// Per key: [KIND_*] counts. Retransmits are segments (RetransSegs' unit):
// KIND_RETRANS the others, KIND_SYN those of a SYN or SYN-ACK.
struct tcp_counts {
    u64 n[KINDS];
};
BPF_HASH(tcp_counts, struct tcp_key, struct tcp_counts, MAX_KEYS);
// The machine's totals per kind, every event (whatever its key) but
// those FILTER_OWNER_PID leaves out, [KINDS] events not kept per key: the
// map was full, and [OWNER_OVERFLOW] sockets tcp_owners could not take.
BPF_PERCPU_ARRAY(tcp_totals, u64, OWNER_OVERFLOW + 1);

#ifdef OWNER_PID
struct tcp_owner {
    u32 pid;
    char comm[16];
};
BPF_HASH(tcp_owners, u64, struct tcp_owner, MAX_SOCKETS);
#endif

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
    u32 pid;
    char comm[16];
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

static __always_inline void count(void *ctx, const void *sk, struct tcp_ends *e, u32 kind,
                                  u64 n)
{
    u64 cgroup = sock_cgroup(sk);
    u32 pid = 0;
#ifdef OWNER_PID
    struct tcp_owner *owner = 0;
    if (sk) {
        u64 addr = (u64)sk;
        owner = tcp_owners.lookup(&addr);
        if (owner)
            pid = owner->pid;
    }
#endif
#ifdef FILTER_OWNER_PID
    if (pid != FILTER_OWNER_PID)
        return;
#endif
    total(kind, n);
    struct tcp_key key = {.cgroup = cgroup};
#if defined(KEY_PID) && defined(OWNER_PID)
    if (owner) {
        key.pid = pid;
        __builtin_memcpy(key.comm, owner->comm, sizeof(key.comm));
    }
#endif
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
                           .kind = kind, .segs = n, .pid = pid};
#ifdef OWNER_PID
    if (owner)
        __builtin_memcpy(ev.comm, owner->comm, sizeof(ev.comm));
#endif
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
    count(ctx, sk, &e, kind, segs);
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
    count(ctx, sk, &e, KIND_SYN, 1);
    return 0;
}

// (sk, skb[, reason]): sk NULL for a reset for no socket.
RAW_TRACEPOINT_PROBE(tcp_send_reset)
{
    const void *sk = (const void *)ctx->args[0];
    struct tcp_ends e = {};
    sock_ends(sk, &e);
    count(ctx, sk, &e, KIND_RST_SENT, 1);
    return 0;
}

// (sk)
RAW_TRACEPOINT_PROBE(tcp_receive_reset)
{
    const void *sk = (const void *)ctx->args[0];
    struct tcp_ends e = {};
    sock_ends(sk, &e);
    count(ctx, sk, &e, KIND_RST_RECEIVED, 1);
    return 0;
}

#ifdef OWNER_PID
// The process owning a socket, learnt where it is current. `fill`: only
// if the socket is not known yet (a read: the first by its owner), else
// replace (connect, listen: a new socket at a freed one's address).
static __always_inline void own(const void *sk, int fill)
{
    u32 pid = bpf_get_current_pid_tgid() >> 32;
#ifdef FILTER_OWNER_PID
    if (pid != FILTER_OWNER_PID)    // -p: only its sockets are looked up and kept
        return;
#endif
    u64 addr = (u64)sk;
    if (fill && tcp_owners.lookup(&addr))
        return;
    struct tcp_owner o = {.pid = pid};
    bpf_get_current_comm(o.comm, sizeof(o.comm));
    if (tcp_owners.update(&addr, &o) != 0)
        total(OWNER_OVERFLOW, 1);           // full: counted, its events under pid 0
}

// (sk, oldstate, newstate): connect() and listen() run in the owner's
// process; an accepted socket is made in softirq (-> SYN_RECV), where the
// task on the CPU is anyone: forget what a freed socket at that address
// left, learn the owner at accept (kretprobe) or at its first read.
RAW_TRACEPOINT_PROBE(inet_sock_set_state)
{
    const void *sk = (const void *)ctx->args[0];
    int oldstate = (int)ctx->args[1];
    int newstate = (int)ctx->args[2];
    if (oldstate == STATE_CLOSE && (newstate == STATE_SYN_SENT || newstate == STATE_LISTEN)) {
        own(sk, 0);
    } else if (oldstate == STATE_LISTEN && newstate == STATE_SYN_RECV) {   // a clone
        u64 addr = (u64)sk;
        tcp_owners.delete(&addr);
    }
    return 0;
}

#ifdef PROBE_ACCEPT_KRETPROBE
// inet_csk_accept returns the accepted socket, in the accepting process.
int owner_accept(struct pt_regs *ctx)
{
    const void *sk = (const void *)PT_REGS_RC(ctx);
    if (sk)
        own(sk, 0);
    return 0;
}
#else
// (sk): tcp_recvmsg copied data: process context, the reader is current.
// The only hook here on the data path: one lookup per copy, measured in
// docs/benchmarks.md; loaded only for --by pid and -p.
RAW_TRACEPOINT_PROBE(tcp_rcv_space_adjust)
{
    own((const void *)ctx->args[0], 1);
    return 0;
}
#endif

// (sk): every TCP socket's end (tcp_v4_destroy_sock, IPv6's too).
RAW_TRACEPOINT_PROBE(tcp_destroy_sock)
{
    u64 addr = (u64)ctx->args[0];
    tcp_owners.delete(&addr);
    return 0;
}
#endif
