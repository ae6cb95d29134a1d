"""oomkill without a kernel: its flags (mark_victim's fields by kernel), its
plan, an event as data and as a line (both constraints, and what a 6.1
kernel's tracepoint does not say), the counts per --by key, and
oom_kills_total through a CollectorRegistry."""

import json
from types import SimpleNamespace

from pytools.series import OTHER
from pytools.tools.oomkill import spec as oomkill_spec
from pytools.tools.oomkill.spec import FIELDS, SHARED, cflags, format_flags, plan
from pytools.tools.oomkill.output import (HAVE_ADJ, HAVE_COMM, HAVE_RSS, HAVE_UID, OomSnapshot,
                                          counts_json, counts_table, decode, delta, event_line)

from .pods import Pods
from .sources import FixedSource, StubCollector, registry_with, tool_collector

V618 = {"pid", "comm", "total_vm", "anon_rss", "file_rss", "shmem_rss", "uid", "pgtables",
        "oom_score_adj"}


def test_flags_follow_mark_victims_fields_on_each_kernel():
    assert format_flags(V618) == ["-DMV_COMM", "-DMV_RSS", "-DMV_ADJ", "-DMV_UID"]
    assert format_flags({"pid"}) == []              # 6.1: the pid only
    assert format_flags(None) == []                 # format unreadable
    assert format_flags(V618 - {"pgtables"}) == ["-DMV_COMM", "-DMV_ADJ", "-DMV_UID"]
    flags = cflags(trace=False, cgroup_keys=True, max_keys=16, pages=2, fields={"pid"})
    assert {"-DCGROUP_KEYS", "-DMAX_KEYS=16", "-DEVENTS_PAGES=2"} <= set(flags)
    assert "-DTRACE" not in flags and f"-DCONSTRAINT_MEMCG={SHARED['CONSTRAINT_MEMCG']}" in flags


def test_the_plan_reads_the_victims_task_first_and_falls_back_to_the_tracepoint():
    raw, tp = plan()
    assert (raw.mode, tp.mode) == ("raw_tracepoint", "tracepoint")
    assert raw.reads_structs and raw.fields == FIELDS
    assert {h.target for h in raw.hooks} == {"oom:mark_victim", "signal:signal_generate"}
    assert [h.target for h in tp.hooks] == ["oom:mark_victim"] and not tp.reads_structs


def event(**kw):
    fields = dict(ts=2_000_000_000, cgroup_id=7, trigger_cgroup_id=9, limit_pages=8192,
                  total_vm=100_000, anon_rss=30_000, file_rss=2_048, shmem_rss=0, pgtables=120,
                  pid=4242, tid=4243, trigger_pid=4242, trigger_tid=4243, oom_score_adj=-500,
                  uid=0, constraint=SHARED["CONSTRAINT_MEMCG"], attributed=1,
                  have=HAVE_RSS | HAVE_ADJ | HAVE_UID | HAVE_COMM,
                  comm=b"hog\x1b[2J\0\0", trigger_comm=b"sh\0")
    fields.update(kw)
    return SimpleNamespace(**fields)


PODS = {7: {"namespace": "shop", "pod": "web-1", "container": "app"},
        9: {"namespace": "", "pod": "", "container": ""}}


def test_a_memcg_kill_as_data_and_as_one_line():
    e = decode(event(), 1_700_000_000.0, PODS.get, page_size=4096)
    assert e["time"] == "2023-11-14T22:13:22.000000+00:00"
    assert (e["namespace"], e["pod"], e["container"]) == ("shop", "web-1", "app")
    assert e["pid"] == 4242 and e["tid"] == 4243 and e["comm"] == "hog\\e[2J"
    assert e["constraint"] == "memcg" and e["memcg_limit_bytes"] == 32 << 20
    assert e["anon_rss_kb"] == 30_000 and e["oom_score_adj"] == -500
    assert e["trigger"] == {"pid": 4242, "tid": 4243, "comm": "sh", "cgroup_id": 9,
                            "namespace": "", "pod": "", "container": ""}
    line = event_line(e)
    assert "\x1b" not in line and line.split()[1:3] == ["shop/web-1/app", "hog\\e[2J"]
    assert "memcg 32.0MiB" in line and "29.3MiB/2.0MiB/0B" in line and "-500" in line
    assert line.endswith("sh [4242]")
    json.dumps(e)


def test_a_global_kill_and_what_an_older_kernel_does_not_say():
    e = decode(event(constraint=SHARED["CONSTRAINT_GLOBAL"], limit_pages=0), 0.0, PODS.get)
    assert e["constraint"] == "global" and e["memcg_limit_bytes"] is None
    assert " global " in event_line(e)
    # 6.1's tracepoint mode: pid only, no task read
    old = decode(event(attributed=0, have=0, constraint=SHARED["CONSTRAINT_UNKNOWN"],
                       limit_pages=0, pid=4243), 0.0, PODS.get)
    assert old["pod"] is None and old["cgroup_id"] is None and old["pid"] is None
    assert old["comm"] is None and old["anon_rss_kb"] is None and old["oom_score_adj"] is None
    assert old["constraint"] == "unknown"
    line = event_line(old)
    assert line.split()[1:3] == ["[not", "attributed]"] and "? [4243]" in line


SNAP = OomSnapshot({(7, 100, "hog", "memcg", True): 2, (8, 101, "hog", "memcg", True): 1,
                    (9, 102, "java", "global", True): 1, (0, 103, "", "unknown", False): 4},
                   overflow=1, taken_at=20.0)
WORKLOADS = Pods({7: ("shop", "web-1"), 8: ("shop", "web-1"), 9: ("batch", "job")})


def test_counts_per_pod_process_and_comm():
    got = counts_json(SNAP, "pod", WORKLOADS)
    assert [(g["key"], g["namespace"], g["pod"], g["count"]) for g in got["groups"]] == \
        [("shop/web-1", "shop", "web-1", 3), ("batch/job", "batch", "job", 1)]
    assert got["unattributed"] == 4 and got["overflow"] == 1 and got["total"] == 9
    assert [(g["key"], g["count"]) for g in counts_json(SNAP, "comm")["groups"]] == \
        [("hog", 3), ("java", 1)]
    assert counts_json(SNAP, "pid")["groups"][0] == {"key": "hog [100]", "pid": 100,
                                                    "comm": "hog", "count": 2}
    table = counts_table(SNAP, "pod", WORKLOADS).splitlines()
    assert table[0] == "OOM kills by pod" and table[2].split() == ["shop/web-1", "3"]
    assert table[-3].split() == ["[not", "attributed]", "4"] and table[-1].split() == \
        ["TOTAL", "9"]


def test_delta_is_per_key():
    before = OomSnapshot({(7, 100, "hog", "memcg", True): 1}, 0, 10.0)
    d = delta(SNAP, before)
    assert d.counts[(7, 100, "hog", "memcg", True)] == 1 and d.elapsed == 10.0


def collector_for(snapshot, pods, max_series=10):
    from pytools.self_metrics import SelfStats
    from pytools.series import CgroupSeries
    c = tool_collector("oomkill", FixedSource(snapshot), SelfStats(), "k", max_series)
    c._cgroup_series = CgroupSeries(Pods(pods), "container", 90.0, lambda ids: None)
    return c


def test_oom_kills_total_by_pod_and_unattributed_apart():
    s = OomSnapshot({(7, 0, "", "memcg", True): 2, (8, 0, "", "global", True): 1,
                     (9, 0, "", "memcg", True): 5, (0, 0, "", "unknown", False): 3}, 2)
    get = registry_with(collector_for(s, {7: ("shop", "web"), 8: ("shop", "web"),
                                          9: ("batch", "job")})).get_sample_value
    assert get("oom_kills_total", {"namespace": "shop", "pod": "web", "container": "c"}) == 3
    assert get("oom_kills_total", {"namespace": "batch", "pod": "job", "container": "c"}) == 5
    assert get("oom_kills_total", {"namespace": OTHER, "pod": OTHER, "container": OTHER}) == 2
    assert get("oom_kills_unattributed_total") == 3


def test_pods_beyond_the_cap_are_other():
    s = OomSnapshot({(7, 0, "", "memcg", True): 4, (9, 0, "", "memcg", True): 1})
    get = registry_with(collector_for(s, {7: ("a", "p1"), 9: ("a", "p2")}, 1)).get_sample_value
    assert get("oom_kills_total", {"namespace": "a", "pod": "p1", "container": "c"}) == 4
    assert get("oom_kills_total", {"namespace": OTHER, "pod": OTHER, "container": OTHER}) == 1


def test_empty_families_for_describe():
    kills, unattributed = oomkill_spec.TOOL.families(None, StubCollector())
    assert kills.name == "oom_kills" and not kills.samples and not unattributed.samples
