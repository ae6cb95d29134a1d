"""Partial privileges, for real: a non-root user holding CAP_BPF and
CAP_PERFMON (what the not-root message offers) but not the right to read
tracefs, which is root's and mode 0700. Each tool and the exporter must name
that cause in one line with the fix, not claim a tracepoint is missing."""

import os
import subprocess

import pytest

from pytools.tools import TOOLS

from .test_exporter_kernel import free_port
from .workload import NOBODY, tool_command


def as_nobody_with(caps, command):
    flags = ",".join(f"+{c}" for c in caps)
    return subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         f"--inh-caps={flags}", f"--ambient-caps={flags}"] + command,
        cwd="/", capture_output=True, text=True, timeout=120)


def tracefs_is_closed_to_others() -> bool:
    return not os.stat("/sys/kernel/tracing").st_mode & 0o005


COMMANDS = [[t.command, "1", "1"] for t in TOOLS] + [
    ["bpf-exporter", "--listen", "127.0.0.1:0"], ["pytools", "doctor"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_cap_bpf_and_perfmon_without_tracefs_access_is_one_line_naming_it(command):
    if not tracefs_is_closed_to_others():
        pytest.skip("tracefs here is open to other users: nothing to refuse")
    if command[0] == "bpf-exporter":
        command = command[:2] + [f"127.0.0.1:{free_port()}"]
    result = as_nobody_with(["bpf", "perfmon"], tool_command(command[0]) + command[1:])
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "no tracepoint" not in result.stderr
    if command[0] == "pytools":        # doctor: a FAIL row with the fix
        assert "cannot read tracepoint ids in /sys/kernel/tracing" in result.stdout
        assert "CAP_DAC_READ_SEARCH" in result.stdout
        return
    lines = result.stderr.strip().splitlines()
    assert lines == [f"{command[0]}: error: cannot read tracepoint ids in /sys/kernel/tracing "
                     "(mode 0700, root's) (add CAP_DAC_READ_SEARCH to CAP_BPF and CAP_PERFMON, "
                     "or run as root)"], result.stderr
