// events.h: one stream of events from a program to its reader, with nothing
// lost silently (pytools/events.py reads it; any tool may include it).
//
// EVENTS_RINGBUF (5.8+, set by the reader where the kernel has BPF ring
// buffers): one ring buffer shared by all CPUs, EVENTS_PAGES pages. Else a
// perf buffer per CPU (the reader opens it with EVENTS_PAGES pages each).
// An event the kernel could not deliver (the buffer full) is counted in
// events_lost, a per-CPU counter: the reader sums it, so lost events are
// counted exactly whichever buffer is used.
//
// shared: EVENTS_PAGES   (-D flag from pytools/events.py, page_flags)
#ifdef EVENTS_RINGBUF
BPF_RINGBUF_OUTPUT(events, EVENTS_PAGES);
#else
BPF_PERF_OUTPUT(events);
#endif
BPF_PERCPU_ARRAY(events_lost, u64, 1);

// Send `size` bytes at `data` (a map value: events can be larger than the
// BPF stack); `size` must be bounded for the verifier by the caller.
static __always_inline void events_submit(void *ctx, void *data, u32 size)
{
#ifdef EVENTS_RINGBUF
    long err = events.ringbuf_output(data, size, 0);
#else
    long err = events.perf_submit(ctx, data, size);
#endif
    if (err) {
        int zero = 0;
        u64 *lost = events_lost.lookup(&zero);
        if (lost)
            (*lost)++;
    }
}
