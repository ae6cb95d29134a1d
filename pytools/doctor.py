"""`pytools doctor`: check up front everything the tools need, with fixes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

from . import system
from .errors import ToolError


@dataclass(frozen=True)
class Check:
    name: str
    ok: Optional[bool]      # None: information only, never fails the run
    detail: str
    fix: str = ""


def _tool_factories() -> Dict[str, Callable]:
    """Each tool with its default options; opening one really attaches it."""
    from .tools import execve, readahead, vfsread
    return {
        "execve-counter": lambda: execve.ExecveCounter(),
        "vfsread-latency": lambda: vfsread.VfsReadLatency(),
        "readahead-stats": lambda: readahead.Readahead(),
    }


def environment_checks() -> List[Check]:
    checks: List[Check] = []
    checks.append(Check("kernel", None, system.kernel_release()))

    problem = system.missing_privilege(
        os.geteuid(), system.parse_capeff(Path("/proc/self/status").read_text()))
    checks.append(Check("privileges", problem is None, problem or "can load tracing programs",
                        "run with sudo" if problem else ""))

    try:
        import bcc
        checks.append(Check("bcc", True, f"python module bcc {getattr(bcc, '__version__', '?')}"))
    except ImportError:
        checks.append(Check("bcc", False, "python module bcc not importable",
                            "apt-get install python3-bpfcc"))

    tracefs = system.find_tracefs()
    checks.append(Check("tracefs", tracefs is not None or problem is None,
                        f"mounted on {tracefs}" if tracefs else "not mounted (the tools mount it as root)",
                        "" if tracefs else "mount -t tracefs nodev /sys/kernel/tracing"))

    try:
        headers = system.find_headers()
        checks.append(Check("kernel headers", True, f"{headers.path} ({headers.how})"))
    except ToolError as e:
        checks.append(Check("kernel headers", False, e.message, e.hint))

    mode = system.lockdown_mode()
    checks.append(Check("lockdown", None, mode or "unknown (securityfs not mounted)",
                        ""))
    checks.append(Check("BTF", None, "yes (/sys/kernel/btf/vmlinux)" if system.btf_available()
                        else "no: fentry/fexit unavailable"))
    kprobe_problem = system.kprobes_supported(tracefs)
    checks.append(Check("kprobes", None, kprobe_problem or "supported"))
    return checks


def tool_checks() -> List[Check]:
    checks = []
    for name, factory in _tool_factories().items():
        try:
            with factory() as tool:
                program = tool.program
                failed = [f"{a.mode}: {a.error}" for a in program.attempts if a.error]
                detail = program.candidate.label
                if failed:
                    detail += f" (not: {'; '.join(failed)})"
                checks.append(Check(name, True, detail))
        except ToolError as e:
            checks.append(Check(name, False, e.message, e.hint))
    return checks


def run() -> List[Check]:
    return environment_checks() + tool_checks()


def passed(checks: List[Check]) -> bool:
    return all(c.ok is not False for c in checks)


def render(checks: List[Check]) -> str:
    from tabulate import tabulate
    status = {True: "ok", False: "FAIL", None: "info"}
    rows = [[c.name, status[c.ok], c.detail + (f"\n  fix: {c.fix}" if c.fix and c.ok is False else "")]
            for c in checks]
    return tabulate(rows, headers=["CHECK", "STATUS", "DETAIL"], tablefmt="plain",
                    disable_numparse=True, maxcolwidths=[None, None, 60])
