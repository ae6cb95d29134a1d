"""kernel.perf_event_paranoid for the privilege kernel tests: set for a test,
and the least privileges a command runs with."""

import pytest

from pytools.privileges import LEAST_CAPABILITIES

from .workload import NOBODY


@pytest.fixture
def paranoid():
    """Set kernel.perf_event_paranoid for a test; restored after."""
    path = "/proc/sys/kernel/perf_event_paranoid"
    with open(path) as f:
        before = f.read().strip()

    def set_level(level: int):
        with open(path, "w") as f:
            f.write(str(level))
    yield set_level
    with open(path, "w") as f:
        f.write(before)


@pytest.fixture
def perf_allowed(paranoid):
    """The documented setup for the least capabilities: Debian's and
    Ubuntu's level 3 refuses perf events to all but CAP_SYS_ADMIN, so the
    README says to set 2 there; at most 2 changes nothing elsewhere."""
    with open("/proc/sys/kernel/perf_event_paranoid") as f:
        if int(f.read()) > 2:
            paranoid(2)


def least(command):
    """command as a non-root user holding exactly LEAST_CAPABILITIES."""
    flags = ",".join(f"+{c}" for c in LEAST_CAPABILITIES)
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            f"--inh-caps={flags}", f"--ambient-caps={flags}"] + command
