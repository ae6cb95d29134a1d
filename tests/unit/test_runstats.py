"""pytools.runstats: fdinfo parsing and how a cost is shown."""

from pytools.self_metrics import cost_families
from pytools.runstats import Cost, as_json, describe, holders, parse_fdinfo, total
from pytools.selfcost import Estimate, Estimator, SelfCost

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
    seconds, runs, share = cost_families(None)
    assert not seconds.samples and not runs.samples and not share.samples
    seconds, runs, _ = cost_families({("execve", "sys_enter_execve"): Cost(5, 2_000_000_000)})
    assert [(s.labels, s.value) for s in seconds.samples] == [
        ({"collector": "execve", "program": "sys_enter_execve"}, 2.0)]
    assert runs.samples[0].value == 5


def test_cost_families_carry_the_estimate_and_the_share_of_time_measured():
    seconds, runs, share = cost_families({("vfs_read", "sys_exit_read"): Estimate(30.0, 6e9)},
                                         duty=1 / 60, window=0.5, period=30)
    assert [(s.labels, s.value) for s in seconds.samples] == [
        ({"collector": "vfs_read", "program": "sys_exit_read"}, 6.0)]
    assert runs.samples[0].value == 30.0 and share.samples[0].value == 1 / 60
    assert "estimate" in seconds.documentation and "0.5 s in every 30 s" in seconds.documentation
    assert "kernel.bpf_stats_enabled=1" in seconds.documentation


def test_a_window_stands_for_its_cycle_scaled_by_its_share_of_it():
    e = Estimator()
    assert e.duty is None
    a, b = ("c", "p1"), ("c", "p2")
    # The first window stands for itself: 0.5 s on, 0.5 s long.
    e.add({a: Cost(100, 1000)}, {a: Cost(600, 6000)}, 0.5, 0.5)
    assert e.totals[a] == Estimate(500.0, 5000.0)
    # The next: 0.5 s on in a 30 s cycle: 60 times what grew in it. A
    # program first seen at the window's end counts from the next one.
    e.add({a: Cost(700, 7000)}, {a: Cost(800, 9000), b: Cost(5, 5)}, 0.5, 30.0)
    assert e.totals[a] == Estimate(500.0 + 6000.0, 5000.0 + 120000.0) and b not in e.totals
    assert e.duty == 1.0 / 30.5
    # Counters that went back (a program reloaded) add nothing; no window, nothing.
    e.add({a: Cost(900, 9000)}, {a: Cost(10, 10)}, 0.5, 30.0)
    e.add({a: Cost(0, 0)}, {a: Cost(10, 10)}, 0.0, 30.0)
    assert e.totals[a] == Estimate(6500.0, 125000.0)


def test_stats_holders_are_found_by_their_anonymous_inode(tmp_path):
    for pid, link, comm in ((12, "anon_inode:bpf-stats", "bpf-exporter"),
                            (13, "anon_inode:bpf-prog", "other"), (14, "/dev/null", "x")):
        (tmp_path / str(pid) / "fd").mkdir(parents=True)
        (tmp_path / str(pid) / "fd" / "3").symlink_to(link)
        (tmp_path / str(pid) / "comm").write_text(comm + "\n")
    (tmp_path / "self").mkdir()
    assert holders(str(tmp_path)) == [(12, "bpf-exporter")]


def test_self_cost_off_turns_nothing_on_and_reports_nothing():
    cost = SelfCost(lambda: {("c", "p"): Cost(1, 1)}, "off")
    assert cost.how == "off" and cost.costs() is None
    assert "--self-cost off" in cost.describe()
    cost.close()
