import json

from click.testing import CliRunner

from pytools.names import kernel_dev
from pytools.cli import readahead_stats
from pytools.hist import Log2Hist
from pytools.tools.readahead import spec as ra_spec
from pytools.tools.readahead import efficiency as eff
from pytools.tools.readahead import output as ro
from pytools.tools.readahead import snapshot as rs
from pytools.tools.readahead.snapshot import Counts, ReadaheadSnapshot


def test_kernel_version_code():
    assert ra_spec.kernel_version_code("6.1.0-13-amd64") == 0x060100
    assert ra_spec.kernel_version_code("5.18.2") == 0x051202
    assert ra_spec.kernel_version_code("6.18.44-fc-v669") == 0x061200 | 44


def snap(devices, files, slots=(), overflow=0, t=0.0):
    s = list(slots) + [0] * (64 - len(slots))
    return ReadaheadSnapshot(devices, files, Log2Hist(tuple(s), 1, 0, "pages"), overflow, t)


def test_delta_and_groupings():
    dev = kernel_dev(254, 0)
    a = snap({(dev, "sync"): Counts(1, 16, 1, 64)}, {(dev, 5): Counts(1, 16, 1, 64)}, t=1)
    b = snap({(dev, "sync"): Counts(2, 32, 2, 128), (dev, "async"): Counts(3, 48, 3, 3000)},
             {(dev, 5): Counts(5, 80, 5, 3128)}, slots=[0, 0, 1], t=3)
    d = rs.delta(b, a)
    assert d.by_kind() == {"sync": Counts(1, 16, 1, 64), "async": Counts(3, 48, 3, 3000),
                           "forced": Counts()}
    assert d.by_device() == {dev: Counts(4, 64, 4, 3064)}
    assert d.files == {(dev, 5): Counts(4, 64, 4, 3064)} and d.elapsed == 2


def test_readahead_text_and_json():
    dev = kernel_dev(254, 0)
    s = snap({(dev, "async"): Counts(2, 32, 2, 512)}, {(dev, 7): Counts(2, 32, 2, 512)},
             slots=[0, 0, 0, 0, 0, 0, 0, 0, 0, 2])
    problem = "readahead efficiency ... is not measured: this kernel lacks tracepoint x"
    text = ro.readahead_text(s, "readahead via tracepoints", 1.0, 10,
                                 lambda d: "vda", lambda k: "/data/f", None, problem)
    lines = text.splitlines()
    assert lines[0] == "readahead via tracepoints, 1.0s"
    assert ["async", "2", "32", "2", "512"] in [line.split() for line in lines]
    assert ["vda", "2", "32", "2", "512"] in [line.split() for line in lines]
    assert ["/data/f", "2", "32", "2", "512"] in [line.split() for line in lines]
    assert any("256 -> 511" in line for line in lines)
    obj = json.loads(json.dumps(ro.readahead_json(s, {}, 1.0, 10, lambda d: "vda",
                                                      lambda k: "/data/f", "t", problem)))
    assert obj["files"] == [{"dev": "254:0", "ino": 7, "name": "/data/f", "requests": 2,
                             "req_pages": 32, "windows": 2, "pages": 512}]
    assert obj["efficiency"] is None and obj["efficiency_note"] == problem
    assert f"efficiency: not measured: {problem}" in lines


FORMAT = """name: mm_filemap_get_pages
ID: 512
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:int common_pid;	offset:4;	size:4;	signed:1;

	field:unsigned long i_ino;	offset:8;	size:8;	signed:0;
	field:dev_t s_dev;	offset:16;	size:4;	signed:0;
	field:char comm[16];	offset:20;	size:16;	signed:0;

print fmt: "dev=%d:%d", REC->s_dev
"""


def test_parse_format_fields():
    from pytools.kernel import parse_format_fields
    assert parse_format_fields(FORMAT) == {"i_ino", "s_dev", "comm"}


FULL = {name: frozenset(fields)
        for name, fields in {**eff.PAGE_TRACEPOINTS, **eff.USE_TRACEPOINTS}.items()}


def fexit_ok(function):
    return None


def fexit_refused(function):
    return "EPERM (lockdown)"


def test_efficiency_plan_prefers_the_use_tracepoints():
    plan = eff.efficiency_plan(FULL.get, fexit_refused)
    assert plan.problem is None
    assert plan.defines == ("-DEFFICIENCY", "-DUSE_TRACEPOINTS")
    assert [h.describe() for h in plan.hooks] == [
        "tracepoint filemap:mm_filemap_add_to_page_cache",
        "tracepoint filemap:mm_filemap_delete_from_page_cache",
        "tracepoint filemap:mm_filemap_get_pages", "tracepoint filemap:mm_filemap_map_pages",
        "tracepoint filemap:mm_filemap_fault"]


def test_efficiency_plan_falls_back_to_fexit_where_use_tracepoints_are_missing():
    older = {name: FULL[name] for name in eff.PAGE_TRACEPOINTS}        # like 6.1
    plan = eff.efficiency_plan(older.get, fexit_ok)
    assert plan.problem is None and plan.defines == ("-DEFFICIENCY", "-DUSE_FEXIT")
    assert [h.describe() for h in plan.hooks][2:] == [
        "fexit filemap_read", "fexit filemap_map_pages", "fexit filemap_fault"]
    problem = eff.efficiency_plan(older.get, fexit_refused).problem
    assert problem.startswith("readahead efficiency (pages read ahead but never used) is not "
                              "measured: this kernel lacks tracepoint filemap:mm_filemap_get_pages")
    assert "fexit filemap_read: EPERM (lockdown)" in problem


def test_efficiency_plan_names_missing_fields():
    no_order = dict(FULL)
    no_order["filemap:mm_filemap_add_to_page_cache"] = frozenset({"s_dev", "i_ino", "index"})
    problem = eff.efficiency_plan(no_order.get, fexit_ok).problem
    assert problem.endswith("lacks tracepoint filemap:mm_filemap_add_to_page_cache fields order")


def test_usage_delta_counts_the_interval_and_keeps_unused_now():
    dev, other = kernel_dev(254, 0), kernel_dev(8, 0)
    a = ReadaheadSnapshot({}, {}, Log2Hist((0,) * 64, 1, 0, "pages"), 0, 1.0, 0.0,
                          {dev: rs.Usage(100, 60, 0, 0)}, {dev: 40})
    b = ReadaheadSnapshot({}, {}, Log2Hist((0,) * 64, 1, 0, "pages"), 0, 2.0, 0.0,
                          {dev: rs.Usage(164, 100, 30, 0), other: rs.Usage(8, 8, 0, 2)},
                          {dev: 34, other: 0})
    d = rs.delta(b, a)
    assert d.usage == {dev: rs.Usage(64, 40, 30, 0), other: rs.Usage(8, 8, 0, 2)}
    assert d.unused_now == {dev: 34, other: 0}
    assert d.total_usage() == rs.Usage(72, 48, 30, 2)
    assert rs.Usage(164, 100, 30).unused_now == 34 and rs.Usage(1, 2, 0).unused_now == 0
    unmeasured = snap({}, {})
    assert rs.delta(unmeasured, unmeasured).usage is None


def test_efficiency_text_and_json():
    dev = kernel_dev(254, 0)
    s = ReadaheadSnapshot({}, {}, Log2Hist((0,) * 64, 1, 0, "pages"), 0, 2.0, 1.0,
                          {dev: rs.Usage(64, 40, 16, 3)}, {dev: 8})
    assert ro.efficiency_line(s, None) == (
        "efficiency: 64 pages read ahead; used 40, dropped unused 16; unused now 8\n"
        "  [3 not followed: map full]")     # 83 columns on one line: wrapped
    obj = ro.readahead_json(s, {}, 1.0, 10, lambda d: "vda", lambda k: "f", "t", None)
    assert obj["efficiency"] == {
        "read_ahead_pages": 64, "used_pages": 40, "dropped_unused_pages": 16,
        "unused_now_pages": 8, "untracked_pages": 3,
        "devices": [{"dev": "254:0", "name": "vda", "read_ahead_pages": 64, "used_pages": 40,
                     "dropped_unused_pages": 16, "unused_now_pages": 8,
                     "untracked_pages": 3}]}
    assert obj["efficiency_note"] == eff.EFFICIENCY_MEANING


def test_cli_bad_device_is_usage_error():
    result = CliRunner().invoke(readahead_stats, ["-d", "nonexistent0"])
    assert result.exit_code == 2 and "no device" in result.output


def test_plan_lists_every_kernel_name():
    kprobe = [c for c in ra_spec.plan() if c.mode == "kprobe"][0]
    names = {h.target for h in kprobe.hooks}
    assert {"page_cache_sync_ra", "__do_page_cache_readahead", "page_cache_ra_order",
            "page_cache_sync_readahead"} <= names and kprobe.any_of


def test_exporter_efficiency_families_only_where_measured():
    from pytools.tools.readahead.metrics import readahead_efficiency_families
    from pytools.tools.readahead.snapshot import Counts, ReadaheadSnapshot, Usage
    from pytools.hist import Log2Hist
    pages = Log2Hist.from_values([32], 1, "pages")
    measured = ReadaheadSnapshot({(8 << 20, "sync"): Counts(1, 1, 1, 32)}, {}, pages,
                                 usage={8 << 20: Usage(32, 30, 1, 2)})
    from .sources import StubCollector
    families = readahead_efficiency_families(measured, StubCollector(names=lambda dev: "sda"))
    values = {f.name: [(s.labels, s.value) for s in f.samples] for f in families}
    assert values["readahead_used_pages"] == [({"device": "sda"}, 30)]
    assert values["readahead_untracked_pages"] == [({"device": "sda"}, 2)]
    unmeasured = ReadaheadSnapshot({}, {}, pages, usage=None)
    assert all(not f.samples for f in readahead_efficiency_families(unmeasured,
                                                                     StubCollector()))
