"""What this process may do: its capabilities, the seccomp filter it runs
under, perf_event_paranoid, and whether bcc is installed. Parsers of
/proc text are pure and unit-tested; nothing here imports bcc.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple
import ctypes
import importlib.util

from . import syscalls
from .errors import ToolError

CAP_DAC_READ_SEARCH = 2
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39

# The fewest capabilities every tool and the exporter run with on 5.8+
# (tested with setpriv as a non-root user; used by the systemd unit and the
# DaemonSet): BPF and PERFMON to load and attach, DAC_READ_SEARCH to read
# tracefs (root's, mode 0700) and open closed files by handle.
LEAST_CAPABILITIES = ("bpf", "perfmon", "dac_read_search")

BCC_PACKAGE_HINT = "install it with: apt-get install python3-bpfcc"


# ---------------------------------------------------------------- privileges

def parse_capeff(status_text: str) -> int:
    """The effective capability mask from the text of /proc/<pid>/status."""
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def missing_privilege(euid: int, capeff: int) -> Optional[str]:
    """Why this process cannot load tracing programs, or None if it can."""
    def has(cap: int) -> bool:
        return bool(capeff >> cap & 1)

    if has(CAP_SYS_ADMIN) or (has(CAP_BPF) and has(CAP_PERFMON)):
        return None
    who = "root without CAP_SYS_ADMIN" if euid == 0 else f"uid {euid}"
    return (f"running as {who}: tracing needs root, or CAP_BPF, CAP_PERFMON and "
            "CAP_DAC_READ_SEARCH")


def check_privileges() -> None:
    status = Path("/proc/self/status").read_text()
    capeff = parse_capeff(status)
    problem = missing_privilege(os.geteuid(), capeff)
    if problem:
        raise ToolError(problem, "run it with sudo")
    filtered = seccomp_refused(status)
    if filtered:
        raise ToolError(filtered, SECCOMP_FIX)
    if not capeff >> CAP_SYS_ADMIN & 1:
        refused = perf_event_refused()
        if refused:
            raise ToolError(refused, PERF_PARANOID_FIX)


# ------------------------------------------------------------------- seccomp

SECCOMP_MODES: Dict[Optional[int], str] = {0: "disabled", 1: "strict", 2: "filter"}
SECCOMP_FIX = ("run it with seccomp profile Unconfined, or the project's "
               "deploy/seccomp/bpf-pytools.json (Kubernetes: securityContext.seccompProfile, as "
               "deploy/kubernetes/base/bpf-exporter.yaml does; docker, podman: --security-opt "
               "seccomp=...)")


def parse_seccomp(status_text: str) -> Optional[int]:
    """The Seccomp: mode from /proc/<pid>/status text (0 none, 1 strict,
    2 filter), or None where the kernel does not say."""
    for line in status_text.splitlines():
        if line.startswith("Seccomp:"):
            return int(line.split()[1])
    return None


def _errno_of(number: int, *args) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    ctypes.set_errno(0)
    result = libc.syscall(number, *args)
    if result >= 0:
        os.close(result)
        return 0
    return ctypes.get_errno()


def seccomp_blocked_syscalls(errno_of: Callable[..., int] = _errno_of) -> List[str]:
    """Which of bpf(2) and perf_event_open(2) a seccomp filter refuses this
    process. Each is called with arguments the kernel itself rejects before
    any permission check (bpf: no such command, EINVAL; perf_event_open: a
    NULL attribute, EFAULT), so EPERM can only come from the filter: a
    container runtime's default profile allows both only with CAP_SYS_ADMIN."""
    blocked = []
    if errno_of(syscalls.SYS_BPF, 0x7FFFFFFF, 0, 0) == errno.EPERM:
        blocked.append("bpf")
    if errno_of(syscalls.SYS_PERF_EVENT_OPEN, 0, 0, -1, -1, 0) == errno.EPERM:
        blocked.append("perf_event_open")
    return blocked


def seccomp_refused(status_text: str,
                    blocked: Callable[[], List[str]] = seccomp_blocked_syscalls) -> Optional[str]:
    """Why seccomp keeps this process from tracing, or None."""
    if parse_seccomp(status_text) != 2:
        return None
    calls = blocked()
    if not calls:
        return None
    return (f"seccomp refuses {' and '.join(c + '()' for c in calls)} to this process (a "
            "container runtime's default profile allows them only with CAP_SYS_ADMIN)")


def seccomp_summary(status_text: str,
                    blocked: Callable[[], List[str]] = seccomp_blocked_syscalls
                    ) -> Tuple[Optional[bool], str]:
    """(ok, detail) for doctor: None where seccomp is off."""
    mode = parse_seccomp(status_text)
    if mode is None:
        return None, "unknown (no Seccomp: line in /proc/self/status)"
    if mode != 2:
        return None, SECCOMP_MODES.get(mode, str(mode))
    calls = blocked()
    if calls:
        return False, seccomp_refused(status_text, lambda: calls) or ""
    return True, "filter: allows bpf() and perf_event_open()"


PERF_TYPE_SOFTWARE, PERF_COUNT_SW_DUMMY = 1, 9
PERF_PARANOID_FIX = ("sysctl -w kernel.perf_event_paranoid=2 (the documented capabilities "
                     "then suffice), or run as root")


def read_perf_paranoid() -> Optional[int]:
    try:
        return int(Path("/proc/sys/kernel/perf_event_paranoid").read_text())
    except (OSError, ValueError):
        return None


def perf_event_refused() -> Optional[str]:
    """Why this process may open no perf event at all, or None. Debian's and
    Ubuntu's kernels add kernel.perf_event_paranoid=3 (their default), which
    refuses every perf_event_open without CAP_SYS_ADMIN, CAP_PERFMON or
    not; BCC attaches every probe through perf_event_open. Found by opening
    a dummy software event on this process, which any other level allows."""
    attr = (ctypes.c_uint32 * 32)()            # struct perf_event_attr, zeroed
    attr[0], attr[1] = PERF_TYPE_SOFTWARE, ctypes.sizeof(attr)
    attr[2] = PERF_COUNT_SW_DUMMY               # config (low half)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(syscalls.SYS_PERF_EVENT_OPEN, ctypes.byref(attr), 0, -1, -1, 0)
    if fd >= 0:
        os.close(fd)
        return None
    err = ctypes.get_errno()
    if err not in (errno.EACCES, errno.EPERM):
        return None          # something else (no perf events at all): the attach says
    level = read_perf_paranoid()
    return (f"perf_event_open is refused to this process (kernel.perf_event_paranoid is "
            f"{level}: this kernel lets only CAP_SYS_ADMIN open perf events at that level)")


def bcc_importable() -> bool:
    """Whether `import bcc` would find a module (without importing it:
    bcc picks its tracefs path at import time)."""
    return importlib.util.find_spec("bcc") is not None


