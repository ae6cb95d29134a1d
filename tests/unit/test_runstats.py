"""pytools.runstats: fdinfo parsing and how a cost is shown."""

from pytools.self_metrics import cost_families
from pytools.runstats import Cost, as_json, describe, parse_fdinfo, total

FDINFO = """pos:\t0
flags:\t02000002
mnt_id:\t16
ino:\t2067
prog_type:\t5
prog_jited:\t1
prog_tag:\t6f2c9a4d1e3e7f0a
memlock:\t4096
prog_id:\t318
run_time_ns:\t123456
run_cnt:\t789
recursion_misses:\t0
verified_insns:\t40
"""


def test_parse_fdinfo_of_a_program_and_of_anything_else():
    assert parse_fdinfo(FDINFO) == (318, Cost(789, 123456))
    assert parse_fdinfo("pos:\t0\nflags:\t02\nmap_id:\t4\n") is None


def test_costs_add_subtract_and_show():
    a, b = Cost(10, 1000), Cost(4, 200)
    assert a - b == Cost(6, 800) and total({"x": a, "y": b}) == Cost(14, 1200)
    assert (a - b).ns_per_run == 800 / 6 and Cost(0, 0).ns_per_run is None
    assert describe(Cost(2000, 3_000_000), 1.0) == \
        "bpf cost: 2000 runs, 1500 ns/run, 3.00 ms CPU, 0.300% of a CPU"
    assert as_json(Cost(3, 30), None) == {"runs": 3, "run_ns": 30, "ns_per_run": 10.0}
    off = as_json(None, "needs CAP_SYS_ADMIN")
    assert off["runs"] is None and off["note"] == "needs CAP_SYS_ADMIN"   # never zeros


def test_cost_families_have_no_series_where_statistics_are_off():
    seconds, runs = cost_families(None)
    assert not seconds.samples and not runs.samples
    seconds, runs = cost_families({"execve": {"sys_enter_execve": Cost(5, 2_000_000_000)}})
    assert [(s.labels, s.value) for s in seconds.samples] == [
        ({"collector": "execve", "program": "sys_enter_execve"}, 2.0)]
    assert runs.samples[0].value == 5
