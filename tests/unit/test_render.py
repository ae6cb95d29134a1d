import json

from pytools import render
from pytools.tools.execve.output import execve_json, execve_table
from pytools.tools.execve.snapshot import ExecveSnapshot


def test_top_entries_orders_by_count_then_key_and_sums_rest():
    shown, other_keys, other_count = render.top_entries({"b": 2, "a": 2, "c": 9, "d": 1}, 2)
    assert shown == [("c", 9), ("a", 2)]
    assert (other_keys, other_count) == (2, 3)


def test_shorten_keeps_the_end_of_paths():
    assert render.shorten("/usr/bin/true", 20) == "/usr/bin/true"
    short = render.shorten("/very/long/directory/name/bin/true", 12)
    assert len(short) == 12 and short.endswith("bin/true") and short.startswith("…")


def test_execve_table_rows_rates_and_total():
    snap = ExecveSnapshot("filename", {"/bin/true": 23, "/bin/ls": 2, "/x": 1}, overflow=4)
    text = execve_table(snap, top=2, seconds=2.0, timestamp="12:00:00")
    lines = text.splitlines()
    assert lines[0] == "12:00:00 execve calls over 2.0s"
    assert lines[1].split() == ["FILENAME", "RAN", "FAILED", "CALLS/s"]
    assert lines[2].split() == ["/bin/true", "23", "0", "11.5"]
    assert lines[3].split() == ["/bin/ls", "2", "0", "1.0"]
    assert "[1 other keys]" in lines[4] and lines[4].split()[-3:] == ["1", "0", "0.5"]
    assert "[map full: not keyed]" in lines[5] and lines[5].split()[-3:] == ["4", "0", "2.0"]
    assert set(lines[6]) == {"-"}
    assert lines[7].split() == ["TOTAL", "30", "0", "15.0"]
    assert max(len(line) for line in lines) <= render.WIDTH


def env_walk() -> ExecveSnapshot:
    """What `env true` made with three $PATH entries before /usr/bin: three
    failed calls, one that ran; and a second program that ran twice."""
    misses = {f"/dir{i}/true": 1 for i in range(3)}
    return ExecveSnapshot("filename", {**misses, "/usr/bin/true": 1, "/bin/ls": 2},
                          failed=dict(misses))


def test_execve_table_shows_what_ran_and_what_failed_apart():
    lines = execve_table(env_walk(), top=10, seconds=1.0).splitlines()
    assert lines[1].split() == ["FILENAME", "RAN", "FAILED", "CALLS/s"]
    # what ran first: a missing file never heads the table
    assert [line.split() for line in lines[2:4]] == [["/bin/ls", "2", "0", "2.0"],
                                                     ["/usr/bin/true", "1", "0", "1.0"]]
    assert lines[4].split() == ["/dir0/true", "0", "1", "1.0"]
    assert lines[-1].split() == ["TOTAL", "3", "3", "6.0"]


def test_execve_failed_and_ok_filter_the_keys():
    failed = execve_table(env_walk(), 10, 1.0, outcome="failed").splitlines()
    assert [line.split()[0] for line in failed[2:-2]] == [f"/dir{i}/true" for i in range(3)]
    ok = execve_table(env_walk(), 10, 1.0, outcome="ok").splitlines()
    assert [line.split()[0] for line in ok[2:-2]] == ["/bin/ls", "/usr/bin/true"]
    assert ok[-1].split() == ["TOTAL", "3", "3", "6.0"]     # the total stays the total


def test_execve_table_fits_80_columns_with_long_names():
    snap = ExecveSnapshot("filename", {"/" + "x" * 200: 1})
    assert all(len(line) <= 80 for line in execve_table(snap, 10, 1.0).splitlines())


def test_execve_json_is_serialisable_and_complete():
    snap = ExecveSnapshot("uid", {0: 4, 1000: 1}, overflow=0)
    obj = execve_json(snap, top=1, seconds=2.0, probe={"mode": "tracepoint"},
                             when="2026-01-01T00:00:00.000+00:00")
    again = json.loads(json.dumps(obj))
    assert again["groups"] == [{"key": 0, "count": 4, "ran": 4, "failed": 0, "rate": 2.0}]
    assert again["other"] == {"keys": 1, "count": 1, "ran": 1, "failed": 0}
    assert again["total"] == 5 and again["probe"]["mode"] == "tracepoint"
    assert (again["ran"], again["failed"]) == (5, 0)


def test_execve_json_has_ran_and_failed_per_group_and_in_total():
    obj = execve_json(env_walk(), 10, 1.0, {}, "t")
    assert obj["groups"][0] == {"key": "/bin/ls", "count": 2, "ran": 2, "failed": 0,
                                "rate": 2.0}
    assert obj["groups"][2] == {"key": "/dir0/true", "count": 1, "ran": 0, "failed": 1,
                                "rate": 1.0}
    assert (obj["total"], obj["ran"], obj["failed"]) == (6, 3, 3)
