"""`pytools doctor`: check up front everything the tools need, with fixes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple
import textwrap

from . import headers, kernel, privileges
from .errors import ToolError
from . import runstats
from . import tools as registry


@dataclass(frozen=True)
class Check:
    name: str
    ok: Optional[bool]      # None: information only, never fails the run
    detail: str
    fix: str = ""


def environment_checks() -> List[Check]:
    checks: List[Check] = []
    checks.append(Check("kernel", None, kernel.kernel_release()))

    status = Path("/proc/self/status").read_text()
    capeff = privileges.parse_capeff(status)
    problem = privileges.missing_privilege(os.geteuid(), capeff)
    checks.append(Check("privileges", problem is None, problem or "can load tracing programs",
                        "run with sudo" if problem else ""))

    # Whether a filter refuses bpf() is only told apart with the
    # capabilities to call it (an unprivileged caller gets EPERM anyway).
    ok, detail = privileges.seccomp_summary(status) if problem is None else \
        (None, privileges.SECCOMP_MODES.get(privileges.parse_seccomp(status), "unknown"))
    checks.append(Check("seccomp", ok, detail, privileges.SECCOMP_FIX if ok is False else ""))

    if problem is None and ok is not False and not capeff >> privileges.CAP_SYS_ADMIN & 1:
        refused = privileges.perf_event_refused()
        checks.append(Check("perf events", refused is None,
                            refused or f"allowed (kernel.perf_event_paranoid "
                                       f"{privileges.read_perf_paranoid()})",
                            privileges.PERF_PARANOID_FIX if refused else ""))

    try:
        # bcc is imported only to load: --help, --version and non-root runs work without it.
        import bcc
        checks.append(Check("bcc", True, f"python module bcc {getattr(bcc, '__version__', '?')}"))
    except ImportError:
        checks.append(Check("bcc", False, "python module bcc not importable",
                            "apt-get install python3-bpfcc"))

    tracefs = kernel.find_tracefs()
    unreadable = tracefs and kernel.tracefs_unreadable(tracefs, kernel.can_read)
    if unreadable:
        checks.append(Check("tracefs", False, unreadable, "add CAP_DAC_READ_SEARCH to "
                            "CAP_BPF and CAP_PERFMON, or run as root"))
    else:
        checks.append(Check("tracefs", tracefs is not None or problem is None,
                            f"mounted on {tracefs}" if tracefs
                            else "not mounted (the tools mount it as root)",
                            "" if tracefs else "mount -t tracefs nodev /sys/kernel/tracing"))

    try:
        found = headers.find_headers()
        checks.append(Check("kernel headers", True, f"{found.path} ({found.how})"))
    except ToolError as e:
        checks.append(Check("kernel headers", False, e.message, e.hint))

    mode, source = kernel.lockdown_mode()
    checks.append(Check("lockdown", None, f"{mode} ({source})" if mode else f"unknown: {source}"))
    checks.append(Check("BTF", None, "yes (/sys/kernel/btf/vmlinux): struct offsets where "
                        "the headers are not this kernel's own" if kernel.btf_available()
                        else "no: fentry/fexit unavailable, and struct reads need this "
                             "kernel's own headers"))
    kprobe_problem = kernel.kprobes_supported(tracefs)
    checks.append(Check("kprobes", None, kprobe_problem or "supported"))
    checks.append(Check("BPF statistics", None,
                        stats_detail(runstats.sysctl_value(), runstats.holders())))
    return checks


def stats_detail(sysctl: Optional[str], holders: List[Tuple[int, str]]) -> str:
    """Whether the kernel's BPF run-time statistics are on, and who holds
    them: the sysctl, and the processes with a BPF_ENABLE_STATS fd."""
    who = [f"{comm} (pid {pid})" for pid, comm in holders]
    if sysctl == "1":
        detail = "on: kernel.bpf_stats_enabled=1 (the node's sysctl)"
        if who:
            detail += ", and held by " + ", ".join(who)
    elif who:
        detail = f"on: held by {', '.join(who)} (BPF_ENABLE_STATS)"
    else:
        return (f"off (kernel.bpf_stats_enabled={sysctl if sysctl is not None else '?'}, "
                "no process holds them)")
    return detail + ": every BPF program on the node pays two clock reads per run"


def headers_how() -> str:
    # the loader (headers, tempfiles) only where a program is loaded: --help starts without it.
    from .loader import prepare
    return prepare().headers.how


def tool_checks(options_of: Callable[[Any], Any], verbose: bool = True) -> List[Check]:
    """Each tool with its default options (options_of(tool): what its
    command line gives with no arguments; the CLI passes it down), really
    attached and detached; a row per optional feature it asked for
    (readahead efficiency). verbose: also the headers each compiled
    against (the kernel headers row names them), why each mode before the
    one that attached failed, and why the modes are in their order."""

    checks = []
    for tool in registry.TOOLS:
        opts = options_of(tool)
        try:
            with tool.open(opts) as reader:
                program = reader.program
                failed = [f"{a.mode}: {a.error}" for a in program.attempts if a.error]
                detail = program.candidate.label
                if verbose:
                    detail += f", compiled against {headers_how()}"
                if program.structs:
                    detail += f", structs from {program.structs}"
                if failed and verbose:
                    detail += f" (not: {'; '.join(failed)})"
                elif failed:
                    refused = ", ".join(a.mode for a in program.attempts if a.error)
                    detail += f" (not {refused}: -v says why)"
                checks.append(Check(tool.command, True, detail))
                if tool.order_reason and verbose:
                    checks.append(Check(f"{tool.command} order", None, tool.order_reason))
                for feature in program.features:
                    problem = program.missing_features.get(feature.name)
                    kinds = sorted({h.kind for h in feature.hooks})
                    hooks = (", ".join(h.describe() for h in feature.hooks) if verbose else
                             f"{len(feature.hooks)} {'/'.join(kinds)} hooks")
                    checks.append(Check(f"{tool.command} {feature.name}",
                                        None if problem else True,
                                        f"not measured: {problem}" if problem
                                        else feature.detail or f"measured via {hooks}"))
        except ToolError as e:
            checks.append(Check(tool.command, False, e.message, e.hint))
    return checks


def run(options_of: Callable[[Any], Any], verbose: bool = True) -> List[Check]:
    return environment_checks() + tool_checks(options_of, verbose)


def passed(checks: List[Check]) -> bool:
    return all(c.ok is not False for c in checks)


STATUS = {True: "ok", False: "FAIL", None: "info"}


def render(checks: List[Check], width: int = 80) -> str:
    """One row per check in `width` columns: name, status, then the detail
    wrapped on words, the fix after it. A path is never cut in two: a detail
    with a word too long for its column starts on a line of its own."""
    name_width = max([len("CHECK")] + [len(c.name) for c in checks])
    indent = " " * (name_width + 8)     # name, space, status (6), space
    lines = [f"{'CHECK':<{name_width}} STATUS DETAIL"]
    for c in checks:
        head = f"{c.name:<{name_width}} {STATUS[c.ok]:<6} "
        text = c.detail + (f"; fix: {c.fix}" if c.fix and c.ok is False else "")
        column = width - len(indent)
        if any(len(word) > column for word in text.split()):
            lines.append(head.rstrip())
            lines += textwrap.wrap(text, width, initial_indent="    ",
                                   subsequent_indent="    ", break_long_words=False,
                                   break_on_hyphens=False)
            continue
        wrapped = textwrap.wrap(text, column, break_long_words=False,
                                break_on_hyphens=False) or [""]
        lines.append(head + wrapped[0])
        lines += [indent + line for line in wrapped[1:]]
    return "\n".join(lines)
