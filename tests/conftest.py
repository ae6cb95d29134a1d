"""Suite-wide rules.

- Tests under tests/kernel/ and tests/container/ load real BPF programs:
  they are marked `kernel` and skip only when not root (the one thing a
  kernel test cannot fix).
- Run as root on Linux, a session that collected kernel tests fails if none
  of them passed: a green run that silently exercised no BPF would be a lie.
- PYTOOLS_DESELECT_MODES=tracepoint,raw_tracepoint leaves out the tests
  parametrized by those probe modes (`mode`): .ci/run's VM run, where the
  host run has run them and CI's 90 minutes are short; deselected, listed
  as such by pytest, never skipped as if the kernel lacked them.
"""

import os
import sys

import pytest

KERNEL_DIR = os.path.join(os.path.dirname(__file__), "kernel")
# The image and the DaemonSet, run with podman: real BPF too, as root.
CONTAINER_DIR = os.path.join(os.path.dirname(__file__), "container")


_kernel_collected = set()


def deselected_modes():
    return {m for m in os.environ.get("PYTOOLS_DESELECT_MODES", "").split(",") if m}


def pytest_collection_modifyitems(config, items):
    leave = deselected_modes()
    if leave:
        gone = [item for item in items
                if getattr(item, "callspec", None) and item.callspec.params.get("mode") in leave]
        if gone:
            config.hook.pytest_deselected(items=gone)
            items[:] = [item for item in items if item not in gone]
    for item in items:
        if str(item.fspath).startswith((KERNEL_DIR, CONTAINER_DIR)):
            _kernel_collected.add(item.nodeid)
            item.add_marker(pytest.mark.kernel)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason="kernel tests need root"))


def pytest_deselected(items):
    _kernel_collected.difference_update(item.nodeid for item in items)


_kernel_passed = []


def pytest_runtest_logreport(report):
    if report.when == "call" and report.passed and "kernel" in report.keywords:
        _kernel_passed.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if sys.platform.startswith("linux") and os.geteuid() == 0 and _kernel_collected \
            and exitstatus == 0 and not _kernel_passed:
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(
            "ERROR: running as root on Linux but no kernel test passed", red=True)
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    if _kernel_passed:
        terminalreporter.write_line(f"kernel tests passed: {len(_kernel_passed)}")
