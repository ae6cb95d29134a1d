"""vfsread-latency's pure parts: cflags, start-slot sizing, per-process
histograms and their delta, the text and JSON renderers."""

import json

import pytest

from pytools.hist import Log2Hist
from pytools.tools.vfs_read import kinds as vfs_read_kinds
from pytools.tools.vfs_read import output as vfs_read_output
from pytools.tools.vfs_read import plan as vfs_read_plan
from pytools.tools.vfs_read import spec as vfs_read_spec
from pytools.names import comm_words
from pytools.kernel import start_slots
from pytools.keyed_hists import key_hists
from pytools.tools.vfs_read.snapshot import LatencySnapshot, delta


def test_cflags_for_every_option():
    flags = vfs_read_plan.cflags("msecs", pid=42, comm="ab", min_latency_ns=5000,
                            per="comm", max_procs=8, pid_max=4_194_304,
                            machine="x86_64")
    shared = [f"-D{k}={v}" for k, v in vfs_read_plan.SHARED.items()]
    assert flags == ["-DHIST_SLOTS=64", "-DUNIT_NS=1000000", "-DUNIT_BITS=20"] + shared + [
                     "-DSTART_SLOTS=4194304",
                     "-DNR_read=0", "-DNR_pread64=17", "-DNR_readv=19", "-DNR_preadv=295",
                     "-DNR_preadv2=327", "-DFILTER_PID=42", "-DFILTER_COMM_LO=0x6261ULL",
                     "-DFILTER_COMM_HI=0x0ULL",
                     "-DMIN_LATENCY_NS=5000ULL", "-DPER_PROCESS=2", "-DMAX_PROCS=8"]
    assert "-DNR_read=63" in vfs_read_plan.cflags(machine="aarch64")
    assert not any(f.startswith("-DNR_") for f in vfs_read_plan.cflags(machine="riscv64"))
    assert vfs_read_plan.cflags(floor="clock")[-1] == "-DFLOOR_CLOCK"


def test_comm_words_carry_any_byte_of_up_to_15_and_the_padding():
    assert comm_words(b'a"\\', "little") == (0x5C2261, 0)
    assert comm_words(b"fifteen-bytes-x", "little") == (
        int.from_bytes(b"fifteen-", "little"), int.from_bytes(b"bytes-x\0", "little"))
    assert comm_words(b"ab", "big") == (0x6162 << 48, 0)
    with pytest.raises(ValueError):
        vfs_read_plan.cflags(comm="")
    with pytest.raises(ValueError):
        vfs_read_plan.cflags(comm="x" * 16)
    with pytest.raises(ValueError):
        vfs_read_plan.cflags(per="tid")


def test_raw_tracepoints_are_planned_only_where_syscall_numbers_are_known():
    assert "raw_tracepoint" in [c.mode for c in vfs_read_plan.plan("x86_64")]
    assert [c.mode for c in vfs_read_plan.plan("riscv64")] == ["fentry", "kprobe", "tracepoint"]


def test_the_plan_is_ordered_by_cost_to_the_whole_machine():
    """fentry, kprobe, the per-syscall tracepoints; the raw syscall
    tracepoints (a program on every syscall) only when forced."""
    from pytools.probes import order_for
    plan = vfs_read_plan.plan("x86_64")
    assert [c.mode for c in order_for(plan, "auto")] == ["fentry", "kprobe", "tracepoint"]
    assert [c.mode for c in order_for(plan, "raw_tracepoint")] == ["raw_tracepoint"]
    assert "raw_tracepoint" in vfs_read_spec.TOOL.modes()
    assert "every syscall" in vfs_read_spec.TOOL.order_reason


@pytest.mark.parametrize("pid_max, slots", [(1, 1), (32768, 32768), (32769, 65536),
                                            (4_194_304, 4_194_304), (1 << 30, 1 << 22)])
def test_start_slots_cover_every_thread_id_up_to_a_cap(pid_max, slots):
    assert start_slots(pid_max) == slots


def test_per_process_histograms_from_the_flat_map():
    counts = {((10, "cat"), 3): 2, ((10, "cat"), 5): 1, ((0, "dd"), 1): 4}
    sums = {(10, "cat"): 20_000, (0, "dd"): 4_000}
    hists = key_hists(counts, sums, 1000, "usecs")
    assert hists[(10, "cat")].slots[3] == 2 and hists[(10, "cat")].slots[5] == 1
    assert hists[(10, "cat")].count == 3 and hists[(10, "cat")].total == 20_000
    assert hists[(0, "dd")].count == 4


def test_delta_per_process_drops_idle_processes_and_keeps_new_ones():
    def h(*values):
        return Log2Hist.from_values(list(values), 1000, "usecs")
    prev = LatencySnapshot(h(1000), 1, {(1, "a"): h(1000), (2, "b"): h(2000)}, taken_at=1.0)
    cur = LatencySnapshot(h(1000, 5000, 9000), 3,
                          {(1, "a"): h(1000, 5000), (2, "b"): h(2000), (3, "c"): h(9000)},
                          taken_at=3.5)
    d = delta(cur, prev)
    assert d.hist.count == 2 and d.start_clashes == 2 and d.elapsed == 2.5
    assert set(d.per_process) == {(1, "a"), (3, "c")}
    assert d.per_process[(1, "a")].total == 5000
    assert delta(LatencySnapshot(h()), LatencySnapshot(h())).per_process is None


def snapshot():
    hist = Log2Hist.from_values([500, 1500, 20_000_000], 1000, "usecs")
    procs = {(7, "cat"): Log2Hist.from_values([1500], 1000, "usecs"),
             (8, "dd"): Log2Hist.from_values([500, 20_000_000], 1000, "usecs")}
    return LatencySnapshot(hist, 2, procs, elapsed=1.0)


def test_latency_text():
    text = vfs_read_output.latency_text(snapshot(), "read syscalls via tracepoints", 1.0, 1,
                                        "12:00:00", by="pid")
    lines = text.splitlines()
    assert lines[0] == "12:00:00 read syscalls via tracepoints, 1.0s"
    assert "16384 -> 32767" in text and "(2 reads not timed: thread id slot clash)" in text
    assert "dd [8]" in lines and "cat [7]" not in lines and lines[-1] == "[1 more processes]"
    assert max(len(line) for line in lines) <= 80


def test_latency_json():
    obj = json.loads(json.dumps(vfs_read_output.latency_json(snapshot(), {"mode": "x"}, 1.0, 5, "t",
                                                      by="pid")))
    assert obj["hist"]["count"] == 3 and obj["hist"]["sum_ns"] == 20_002_000
    assert obj["hist"]["estimates"]["p99"] <= 32767
    assert [(p["key"], p["pid"], p["comm"]) for p in obj["groups"]] == [("dd [8]", 8, "dd"),
                                                                       ("cat [7]", 7, "cat")]
    assert obj["other"]["keys"] == 0 and obj["start_clashes"] == 2


def test_the_kind_of_file_is_told_by_the_inode_type_bits_pythons_stat_knows():
    import stat
    shared = vfs_read_plan.SHARED
    assert [shared[f"KIND_{k.upper()}"] for k in vfs_read_kinds.KINDS] == list(range(5))
    assert shared["KIND_COUNT"] == len(vfs_read_kinds.KINDS)
    for name, test in (("MODE_REG", stat.S_ISREG), ("MODE_FIFO", stat.S_ISFIFO),
                       ("MODE_SOCK", stat.S_ISSOCK), ("MODE_CHR", stat.S_ISCHR)):
        assert test(shared[name] | 0o644) and stat.S_IFMT(shared[name]) == shared[name]
    assert "-DKIND_FILTER=1" in vfs_read_plan.cflags(kind="pipe")
    assert "-DPER_KIND" in vfs_read_plan.cflags(per="kind")
    assert not any("KIND_FILTER" in f for f in vfs_read_plan.cflags(kind="all"))


@pytest.mark.parametrize("opts, kind, wanted", [
    ({"kind": None}, "file", True),              # the command's default
    ({"kind": "all"}, "all", False),             # every read, no struct read
    ({"kind": "socket"}, "socket", True),
    ({"kind": None, "by": "kind"}, "all", True),     # the command's --by kind
    ({}, "all", False),                          # a reader's (the exporter's) default
])
def test_what_is_counted_by_default_and_when_struct_reads_are_needed(opts, kind, wanted):
    options = vfs_read_plan.VfsReadOptions(**opts)
    assert vfs_read_kinds.kind_of(options.by, options.kind) == kind
    assert vfs_read_kinds.wants_kind(options.by, options.kind) == wanted


def test_the_banner_says_what_is_counted():
    assert vfs_read_kinds.counted("file", None) == "reads on regular files only"
    assert vfs_read_kinds.counted("all", None) == "reads on every kind of file"
    assert vfs_read_kinds.counted("file", "no BTF") == \
        "reads on every kind of file (the kind is unknown here: no BTF)"


def test_per_kind_histograms_in_text_json_and_delta():
    slow = Log2Hist((0,) * 14 + (3,) + (0,) * 49, 1000, 3 * 20_000_000, "usecs")
    fast = Log2Hist((5,) + (0,) * 63, 1000, 5000, "usecs")
    snap = LatencySnapshot(fast + slow, per_kind={"pipe": slow, "file": fast})
    text = vfs_read_output.latency_text(snap, "read syscalls via tracepoints", 1.0, 5, by="kind",
                                 histograms=True)
    assert text.index("file") < text.index("pipe")
    obj = vfs_read_output.latency_json(snap, {"mode": "x"}, 1.0, 5, "t", by="kind")
    assert [(g["kind"], g["hist"]["count"]) for g in obj["groups"]] == [("file", 5),
                                                                        ("pipe", 3)]
    later = LatencySnapshot(fast + slow + fast, per_kind={"pipe": slow, "file": fast + fast})
    assert delta(later, snap).per_kind == {"file": fast}
