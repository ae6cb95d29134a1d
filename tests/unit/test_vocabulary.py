"""One vocabulary for every tool (issue 29): --by with the same choices,
-P as --by pid, duration options with units, old spellings read for one
release with one warning line each."""

import pytest
from click.testing import CliRunner

from pytools.cli import COMMANDS

from .sources import opened  # noqa: F401 (fixtures)


def run(name, *args):
    return CliRunner().invoke(COMMANDS[name], list(args))


def by_choices(name):
    (param,) = [p for p in COMMANDS[name].params if p.name == "by"]
    return set(param.type.choices)


def test_by_has_the_same_choices_wherever_they_make_sense():
    assert {"comm", "cgroup", "pod", "container"} <= by_choices("execve")
    assert {"pid", "comm", "pod", "container"} <= by_choices("vfs_read")
    assert {"pid", "tid", "pod", "container"} <= by_choices("runqlat")
    assert {"disk", "op"} <= by_choices("biolatency")


@pytest.mark.parametrize("name, args, key, value", [
    ("execve", ["-b", "comm"], "by", "comm"),
    ("vfs_read", ["--per", "comm"], "by", "comm"),
    ("vfs_read", ["--per-comm"], "by", "comm"),
    ("vfs_read", ["--per-pid"], "by", "pid"),
    ("vfs_read", ["-P", "pod"], "by", "pod"),
    ("runqlat", ["--pids"], "by", "pid"),
    ("runqlat", ["--tids"], "by", "tid"),
    ("readahead", ["-b", "pod"], "table", "pod"),
    ("readahead", ["--by", "container"], "table", "container"),
])
def test_old_spellings_still_work_with_one_warning_line(opened, name, args, key, value):
    result = run(name, *args, "1", "1")
    assert result.exit_code == 130, result.output + result.stderr
    assert opened[key] == value
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "deprecated" in lines[0] and "use --" in lines[0], lines


@pytest.mark.parametrize("name, args, value", [
    ("vfs_read", ["-P"], "pid"), ("vfs_read", ["--by", "comm"], "comm"),
    ("runqlat", ["-P"], "pid"), ("runqlat", ["-L"], "tid"), ("execve", ["--by", "uid"], "uid"),
])
def test_new_spellings_and_shortcuts_say_nothing(opened, name, args, value):
    result = run(name, *args, "1", "1")
    assert result.exit_code == 130 and opened["by"] == value
    assert result.stderr == ""


@pytest.mark.parametrize("name", ["vfs_read", "runqlat"])
def test_dash_P_groups_by_process_and_leaves_the_interval_alone(name):
    from pytools.cli import tool_options
    ctx = COMMANDS[name].make_context(name, ["-P", "1", "3"])
    assert (ctx.params["interval"], ctx.params["count"]) == (1.0, 3)
    assert tool_options(COMMANDS[name], ["-P", "1", "3"])["by"] == "pid"


def test_an_alias_that_contradicts_the_option_is_a_usage_error(opened):
    assert run("runqlat", "-P", "--by", "pod").exit_code == 2
    assert run("runqlat", "-P", "-L").exit_code == 2


@pytest.mark.parametrize("text, unit, ns", [
    ("1ms", "-u", 1_000_000), ("250us", "-u", 250_000), ("2s", "-m", 2_000_000_000),
    ("1000", "-u", 1_000_000), ("3", "-m", 3_000_000), ("500", "-n", 500), ("1.5ms", "-u",
                                                                           1_500_000),
])
def test_min_latency_takes_units_or_the_display_unit(opened, text, unit, ns):
    result = run("vfs_read", unit, "--min-latency", text, "1", "1")
    assert result.exit_code == 130, result.output
    assert opened["min_latency"] == ns


@pytest.mark.parametrize("text", ["1parsec", "-1ms", "ms", "2d", "nan"])
def test_bad_durations_are_usage_errors(text):
    result = run("vfs_read", "--min-latency", text)
    assert result.exit_code == 2 and "--min-latency" in result.stderr


def test_intervals_take_units_too(opened):
    assert run("execve", "500ms", "1").exit_code == 130 and opened["top"] == 10
    ctx = COMMANDS["execve"].make_context("execve-counter", ["500ms", "2"])
    assert ctx.params["interval"] == 0.5


def test_exporter_label_options_are_collector_by_and_execve_takes_container():
    from pytools.cli import bpf_exporter, collector_options
    from pytools.tools.execve.metrics import execve_families

    from .sources import StubCollector

    class Stub(StubCollector):
        def cgroup_series(self, by):
            self.series_by = by
            return object()
    names = {p.opts[0] for p in bpf_exporter.params if p.opts[0].endswith("-by")}
    assert names == {"--execve-by", "--vfs-read-by", "--readahead-by", "--runqlat-by"}
    params = bpf_exporter.make_context("bpf-exporter", ["--execve-by", "container"]).params
    opts = collector_options(params)["execve"]
    assert opts["by"] == "container"
    stub = Stub(**opts)
    calls, failed = execve_families(None, stub)
    assert calls.label_names == failed.label_names == ["namespace", "pod", "container"]
    assert stub.series_by == "container"


def test_runqlat_help_says_by_pod_shows_who_waits_not_who_hogs():
    text = " ".join(run("runqlat", "--help").output.split())
    assert "who waits, not who keeps the CPU busy" in text
    assert "--by pod # who waits, per Kubernetes pod (not who hogs)" in text
