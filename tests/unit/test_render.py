import json

from pytools import render
from pytools.tools.execve import ExecveSnapshot, execve_json, execve_table


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
    assert lines[1].split() == ["FILENAME", "COUNT", "RATE/s"]
    assert lines[2].split() == ["/bin/true", "23", "11.5"]
    assert lines[3].split() == ["/bin/ls", "2", "1.0"]
    assert "[1 other keys]" in lines[4] and lines[4].split()[-2:] == ["1", "0.5"]
    assert "[map full: not keyed]" in lines[5] and lines[5].split()[-2:] == ["4", "2.0"]
    assert set(lines[6]) == {"-"}
    assert lines[7].split() == ["TOTAL", "30", "15.0"]
    assert max(len(line) for line in lines) <= render.WIDTH


def test_execve_table_with_failures_has_a_failed_column():
    snap = ExecveSnapshot("comm", {"sh": 3}, failed={"sh": 1})
    lines = execve_table(snap, top=10, seconds=1.0).splitlines()
    assert lines[1].split() == ["COMM", "COUNT", "RATE/s", "FAILED"]
    assert lines[2].split() == ["sh", "3", "3.0", "1"]
    assert lines[-1].split() == ["TOTAL", "3", "3.0", "1"]


def test_execve_table_fits_80_columns_with_long_names():
    snap = ExecveSnapshot("filename", {"/" + "x" * 200: 1})
    assert all(len(line) <= 80 for line in execve_table(snap, 10, 1.0).splitlines())


def test_execve_json_is_serialisable_and_complete():
    snap = ExecveSnapshot("uid", {0: 4, 1000: 1}, overflow=0)
    obj = execve_json(snap, top=1, seconds=2.0, probe={"mode": "tracepoint"},
                             when="2026-01-01T00:00:00.000+00:00")
    again = json.loads(json.dumps(obj))
    assert again["entries"] == [{"key": 0, "count": 4, "rate": 2.0}]
    assert again["other"] == {"keys": 1, "count": 1}
    assert again["total"] == 5 and again["probe"]["mode"] == "tracepoint"
    assert "failed_total" not in again
