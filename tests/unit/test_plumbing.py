"""The CLI plumbing every tool shares, tried as a new user would: bad
intervals, bad filters, missing processes and devices, 80 columns. Each bad
value is a usage error (exit 2, no traceback) or a warning, for every tool."""

import pytest
from click.testing import CliRunner

from pytools.cli import COMMANDS, bpf_exporter
from pytools.hist import Log2Hist
from pytools.tool import View
from pytools.tools import TOOLS

from .sources import opened  # noqa: F401 (a fixture)

COMMAND_NAMES = [tool.name for tool in TOOLS]


def with_option(name):
    """The tools whose command has option `name` (a parameter name)."""
    return [tool.name for tool in TOOLS
            if any(p.name == name for p in COMMANDS[tool.name].params)]


def run(name, *args):
    return CliRunner().invoke(COMMANDS[name], list(args))


@pytest.mark.parametrize("name", COMMAND_NAMES)
@pytest.mark.parametrize("interval", ["nan", "inf", "-inf", "1e12", "0", "-1", "86401",
                                      "0.001", "x", "'1'"])
def test_bad_intervals_are_usage_errors(name, interval):
    result = run(name, interval, "2")
    assert result.exit_code == 2, result.output
    assert "INTERVAL" in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("name", COMMAND_NAMES)
@pytest.mark.parametrize("count", ["0", "-3", "1.5", "nan"])
def test_bad_counts_are_usage_errors(name, count):
    result = run(name, "1", count)
    assert result.exit_code == 2 and "COUNT" in result.output


@pytest.mark.parametrize("name", with_option("pid"))
@pytest.mark.parametrize("pid", ["0", "-1", "4194305", "abc"])
def test_bad_pids_are_usage_errors(name, pid):
    result = run(name, "-p", pid)
    assert result.exit_code == 2 and "--pid" in result.output


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_help_fits_80_columns_and_ends_with_examples(name):
    result = run(name, "--help")
    assert result.exit_code == 0
    lines = result.output.rstrip().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "Examples:" in result.output
    assert lines[-1].lstrip().startswith(TOOLS[COMMAND_NAMES.index(name)].command)


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_probe_choices_are_the_plans_modes(name):
    result = run(name, "--probe", "uprobe")
    assert result.exit_code == 2
    tool = TOOLS[COMMAND_NAMES.index(name)]
    for mode in tool.modes():
        assert mode in result.output


def test_missing_process_is_a_warning_not_an_error(opened):
    """-p of a pid that does not exist now: warned once, then the tool runs
    (a process may start later)."""
    result = run("execve", "-p", "4194303", "1", "1")
    assert "warning: no process 4194303 exists now" in result.output
    assert result.exit_code == 130 and opened["pid"] == 4194303


def test_missing_device_is_a_warning(opened):
    result = run("readahead", "-d", "999:999", "1", "1")
    assert "warning: no block device 999:999 exists now" in result.output
    assert opened["device"] == 999 << 20 | 999


@pytest.mark.parametrize("device, message", [("999:x", "is not major:minor"),
                                             ("nonexistent0", "no device /dev/nonexistent0"),
                                             ("/dev/null", "is not a block device"),
                                             ("4096:0", "is not major:minor")])
def test_bad_devices_are_usage_errors(device, message):
    result = run("readahead", "-d", device)
    assert result.exit_code == 2 and message in result.output


@pytest.mark.parametrize("comm", ["", ])
def test_empty_comm_is_a_usage_error(comm):
    result = run("vfs_read", "-c", comm)
    assert result.exit_code == 2 and "1 to 15 bytes" in result.output


def test_comm_with_quotes_and_backslashes_reaches_the_filter_intact(opened):
    run("vfs_read", "-c", 'a"b\\c', "1", "1")
    assert opened["comm"] == 'a"b\\c'


def test_long_comm_is_cut_to_what_the_kernel_keeps_with_a_warning(opened):
    result = run("vfs_read", "-c", "systemd-journald", "1", "1")
    assert opened["comm"] == "systemd-journal"
    assert "warning: the kernel keeps 15 bytes" in result.output
    run("vfs_read", "-c", "é" * 8, "1", "1")          # 16 bytes: not cut mid-character
    assert opened["comm"] == "é" * 7


@pytest.mark.parametrize("value", ["nan", "-1", "1e30", "10000000000000"])
def test_bad_min_latency_is_a_usage_error(value):
    assert run("vfs_read", "--min-latency", value).exit_code == 2


@pytest.mark.parametrize("value", ["0", "-5", "2000000", "nan"])
def test_bad_max_keys_is_a_usage_error(value):
    assert run("execve", "--max-keys", value).exit_code == 2


# ------------------------------------------------------------------ estimates

def test_estimates_never_pass_the_top_slot():
    hist = Log2Hist.from_values([20_000] * 100, 1000, "usecs")   # all in [16, 31] us
    from pytools.hist import summary
    line = summary(hist, "usecs")
    assert "p99 ~31" in line and "max in [16, 31]" in line
    assert hist.estimate(0.99) <= 31 and hist.estimate(1.0) == 31


def test_a_last_interval_cut_to_milliseconds_shows_no_rate():
    from pytools.tools.execve.output import execve_json, execve_table
    from pytools.tools.execve.snapshot import ExecveSnapshot
    view = View({}, "x", "t", interval=5.0)
    snap = ExecveSnapshot("comm", {"sh": 18}, elapsed=0.055)
    assert not view.rated(0.055) and view.rated(1.0)
    total = execve_table(snap, 10, 0.055, rated=view.rated(0.055)).splitlines()[-1]
    assert total.split() == ["TOTAL", "18", "0", "-"]
    assert execve_json(snap, 10, 0.055, {}, "t", rated=False)["groups"][0]["rate"] is None
    assert View({}, "x", "t", interval=0.1).rated(0.06)   # short intervals asked for


# ------------------------------------------------------------------ exporter

@pytest.mark.parametrize("args, message", [
    (["--probe", "vfs_read=uprobe"], "MODE one of auto"),
    (["--probe", "execve=kprobe"], "for execve"),
    (["--probe", "nosuch=auto"], "COLLECTOR one of"),
    (["--execve-by", "inode"], "inode"),
])
def test_exporter_options_come_from_the_tools(args, message):
    result = CliRunner().invoke(bpf_exporter, args)
    assert result.exit_code == 2 and message in result.output
