"""biolatency's pure parts: cflags, plan, op names, delta, text, JSON and
its metric families."""

import json

from prometheus_client import CollectorRegistry

from pytools.self_metrics import SelfStats
from pytools.hist import Log2Hist
from pytools.names import kernel_dev
from pytools.kernel import kernel_version_code
from pytools.tools.biolatency import output as bio_output
from pytools.tools.biolatency import plan as bio_plan
from pytools.tools.biolatency.snapshot import BioSnapshot, delta

from .sources import FixedSource, tool_collector

VDA, LOOP0 = kernel_dev(254, 0), kernel_dev(7, 0)


def hist(*values_ns):
    return Log2Hist.from_values(list(values_ns), 1000, "usecs")


def names(dev):
    return {VDA: "vda", LOOP0: "loop0"}[dev]


def test_cflags_and_plan():
    shared = [f"-D{name}={value}" for name, value in bio_plan.SHARED.items()]
    assert bio_plan.cflags("msecs", by_device=True, by_op=True, queued=True, dev=LOOP0) == [
        "-DHIST_SLOTS=64", "-DUNIT_NS=1000000", "-DUNIT_BITS=20", *shared, "-DMAX_KEYS=1024",
        f"-DKERNEL_VERSION_CODE={kernel_version_code():#x}", "-DBY_DEVICE", "-DBY_OP",
        "-DQUEUED", f"-DFILTER_DEV={7 << 20}"]
    raw, tracepoint = bio_plan.plan()
    assert (raw.mode, raw.reads_structs, tracepoint.mode) == ("raw_tracepoint", True,
                                                              "tracepoint")
    for candidate in (raw, tracepoint):
        assert [h.target for h in candidate.hooks] == ["block:block_rq_issue",
                                                       "block:block_rq_complete"]
    assert all(c.hooks[0].target == "block:block_rq_insert" for c in bio_plan.plan(queued=True))


def test_op_names_follow_the_kernels_enum():
    assert [bio_plan.op_name(i) for i in range(5)] == ["read", "write", "flush", "discard", "other"]
    assert bio_plan.op_name(1 | bio_plan.OP_SYNC) == "sync-write" and bio_plan.op_name(7) == "other"


def test_delta_keeps_keys_that_changed():
    prev = BioSnapshot({(VDA, "read"): hist(1000), (LOOP0, "read"): hist(5000)}, 1, 2, 0, 1.0)
    cur = BioSnapshot({(VDA, "read"): hist(1000, 3000), (LOOP0, "read"): hist(5000),
                       (VDA, "write"): hist(9000)}, 4, 2, 0, 3.0)
    d = delta(cur, prev)
    assert {k: h.count for k, h in d.hists.items()} == {(VDA, "read"): 1, (VDA, "write"): 1}
    assert (d.unmatched, d.untimed, d.elapsed) == (3, 0, 2.0)
    assert d.total().count == 2 and BioSnapshot({}).total() is None


def test_text_labels_each_histogram_and_counts_what_was_not_timed():
    snap = BioSnapshot({(VDA, "sync-read"): hist(150_000), (LOOP0, "write"): hist(900)},
                       unmatched=3, untimed=2, elapsed=1.0)
    lines = bio_output.biolatency_text(snap, "block I/O via tracepoints", 1.0, "usecs", names,
                                "12:00:00").splitlines()
    assert lines[0] == "12:00:00 block I/O via tracepoints, 1.0s"
    assert "loop0 write" in lines and "vda sync-read" in lines
    assert lines.index("loop0 write") < lines.index("vda sync-read")
    assert lines[-1] == ("[3 completions unmatched (in flight at start); 2 flushes not timed "
                         "(no sector)]")
    assert max(len(line) for line in lines) <= 80
    empty = bio_output.biolatency_text(BioSnapshot({}), "x", 1.0, "msecs", names)
    assert "(no events)" in empty and "msecs" in empty


def test_json():
    snap = BioSnapshot({(VDA, None): hist(2000, 3000)}, unmatched=1, elapsed=1.0)
    obj = json.loads(json.dumps(bio_output.biolatency_json(snap, {"mode": "tracepoint"}, 1.0,
                                                    names, "t", by="disk")))
    (h,) = obj["groups"]
    assert h["key"] == "vda" and h["dev"] == "254:0" and h["device"] == "vda"
    assert h["op"] is None and obj["by"] == "disk" and obj["other"]["keys"] == 0
    assert h["hist"]["count"] == 2 and h["hist"]["sum_ns"] == 5000
    assert obj["hist"] == h["hist"]                # the total, as every tool has
    assert obj["unmatched"] == 1 and obj["untimed_flushes"] == 0
    unkeyed = bio_output.biolatency_json(BioSnapshot({(None, None): hist(1)}), {}, 1.0, names, "t")
    assert unkeyed["hist"]["count"] == 1 and "groups" not in unkeyed


def test_families_by_device_and_op_with_exact_sums_and_the_cap():
    snap = BioSnapshot({(VDA, "read"): hist(1500, 3000, 3000), (LOOP0, "read"): hist(500),
                        (LOOP0, "write"): hist(40_000_000)}, unmatched=2, untimed=5)
    collector = tool_collector("biolatency", FixedSource(snap), SelfStats(), "k", 1)
    collector.device = names
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    get = registry.get_sample_value
    # the cap admits one device, the busiest (vda); loop0 is summed into other
    assert get("block_io_latency_seconds_count", {"device": "vda", "op": "read"}) == 3
    assert get("block_io_latency_seconds_sum", {"device": "vda", "op": "read"}) == 7.5e-06
    assert get("block_io_latency_seconds_bucket",
               {"device": "vda", "op": "read", "le": "1.999e-06"}) == 1
    assert get("block_io_latency_seconds_count", {"device": "~other", "op": "write"}) == 1
    assert get("block_io_latency_seconds_bucket",
               {"device": "~other", "op": "write", "le": "+Inf"}) == 1
    assert get("block_io_unmatched_total") == 2 and get("block_io_untimed_flushes_total") == 5
    assert get("biolatency_probe_info", {"mode": "tracepoint", "probe": "via tracepoints",
                                         "kernel": "k"}) == 1
