"""bpf-exporter's argument and address errors: one line, exit != 0, and no
BPF compiled (the socket is bound before any program is loaded)."""

import socket

import pytest
from click.testing import CliRunner

from pytools.cli import bpf_exporter
from pytools.exporter_config import parse_collectors, parse_listen, parse_probe_modes


def run(*args):
    return CliRunner().invoke(bpf_exporter, list(args))


@pytest.mark.parametrize("text, expected", [
    (":19435", ("", 19435)), ("19435", ("", 19435)), ("127.0.0.1:80", ("127.0.0.1", 80)),
    ("[::1]:9000", ("::1", 9000)), ("localhost:1", ("localhost", 1)),
])
def test_parse_listen(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1:", "host:http", ":0", ":65536", "::1:9000"])
def test_bad_listen_is_a_usage_error(text):
    result = run("--listen", text)
    assert result.exit_code == 2 and "--listen" in result.output


@pytest.mark.parametrize("text, says", [
    ("[::1]", "the port is missing, e.g. [::1]:19435"),
    ("[::1]:", "the port is missing, e.g. [::1]:19435"),
    ("::1", "write an IPv6 address in brackets"),
])
def test_listen_says_what_is_wrong(text, says):
    result = run("--listen", text)
    assert result.exit_code == 2 and says in result.output


def test_collectors_are_checked_and_deduplicated():
    assert parse_collectors("vfs_read, execve,vfs_read") == ["vfs_read", "execve"]
    result = run("--collectors", "execve,nosuch")
    assert result.exit_code == 2 and "unknown collector nosuch" in result.output


def test_probe_modes():
    assert parse_probe_modes(["vfs_read=kprobe", "readahead=auto"]) == {
        "vfs_read": "kprobe", "readahead": "auto"}
    result = run("--probe", "vfs_read=uprobe")
    assert result.exit_code == 2 and "COLLECTOR=MODE" in result.output


def test_port_in_use_is_one_line_before_any_bpf():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("--listen", f"127.0.0.1:{port}")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines == [f"bpf-exporter: error: cannot listen on 127.0.0.1:{port}: Address "
                     f"already in use (another process has port {port}; pick another with "
                     "--listen)"]


def test_unresolvable_address_is_one_line():
    result = run("--listen", "no-such-host.invalid:9000")
    assert result.exit_code == 1
    assert result.output.startswith("bpf-exporter: error: cannot listen on no-such-host.invalid")


def test_self_cost_is_sampled_by_default_or_off_and_nothing_else():
    ctx = bpf_exporter.make_context("bpf-exporter", [])
    assert ctx.params["self_cost"] == "sampled"
    ctx = bpf_exporter.make_context("bpf-exporter", ["--self-cost", "off"])
    assert ctx.params["self_cost"] == "off"
    result = run("--self-cost", "always")
    assert result.exit_code == 2 and "--self-cost" in result.output
