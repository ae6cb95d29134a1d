"""Compile a bpf/*.c program with BCC and attach it from a probe plan.

This module and pytools/tools/*.py are the only ones that touch bcc. It:
  1. checks privileges, mounts tracefs, finds kernel headers (before bcc is
     imported, since bcc fixes its tracefs path at import);
  2. walks the probe plan in order, really compiling, loading and attaching
     each candidate, and records why each one that failed did so;
  3. hands back a Program that detaches everything on close().
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.resources
import json
import os
import re
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from . import cdefs, headers, kernel, privileges, structs
from .errors import ToolError
from .probes import Candidate, Facts, Feature, Hook, cflags_for, order_for, usable_hooks


_LOCAL_INCLUDE = re.compile(r'^#include "([\w.]+\.h)".*$', re.M)


def bpf_source(tool: str) -> str:
    """The text of bpf/<tool>.c, from the installed package or the checkout,
    with the headers the programs share (#include "log2.h") put in place,
    and theirs (task.h includes btf.h; a header two may include has a guard):
    BCC compiles text, and --ebpf shows the whole program."""
    package = importlib.resources.files("pytools.bpf")

    def inline(match: re.Match) -> str:
        return _LOCAL_INCLUDE.sub(inline, package.joinpath(match.group(1)).read_text()
                                  .rstrip("\n"))

    return _LOCAL_INCLUDE.sub(inline, package.joinpath(f"{tool}.c").read_text())


@dataclass(frozen=True)
class Attempt:
    mode: str
    label: str
    error: Optional[str]     # None: this candidate attached

    def to_dict(self) -> dict:
        return {"mode": self.mode, "label": self.label, "error": self.error}


@dataclass
class Environment:
    tracefs: str
    headers: headers.Headers
    bcc_version: str
    facts: Facts = field(repr=False)


_environment: Optional[Environment] = None


def prepare() -> Environment:
    """Check everything BCC needs, once per process; raise ToolError if not."""
    global _environment
    if _environment is not None:
        return _environment
    privileges.check_privileges()
    tracefs = kernel.ensure_tracefs()
    kernel.check_tracefs_access(tracefs)
    found = headers.find_headers()
    if found.env:
        os.environ["BCC_KERNEL_SOURCE"] = found.env
    try:
        # bcc is imported only to load: --help, --version and non-root runs work without it.
        import bcc
    except ImportError:
        raise ToolError("the bcc Python module is not installed",
                        privileges.BCC_PACKAGE_HINT) from None
    version = getattr(bcc, "__version__", "unknown")
    _environment = Environment(tracefs, found, version, gather_facts(tracefs, found))
    return _environment


def gather_facts(tracefs: str, found: headers.Headers) -> Facts:
    def fentry_problem(function: str) -> Optional[str]:
        if not kernel.btf_available():
            return "kernel has no BTF (/sys/kernel/btf/vmlinux)"
        with captured_stderr():  # libbpf prints its lookup failures
            return kernel.fentry_load_problem(function)

    layout_problem = headers.struct_layout_problem(found, kernel.kernel_release())
    forced = os.environ.get(STRUCTS_ENV, "")
    btf_fields = None if forced == "headers" else structs.BtfFields().lookup
    return Facts(
        tracepoint_exists=lambda name: kernel.tracepoint_exists(tracefs, name),
        kprobes_problem=kernel.kprobes_supported(tracefs),
        fentry_problem=fentry_problem,
        traceable=lambda fn: _known_function(kernel.traceable_functions(tracefs), fn),
        struct_layout_problem=layout_problem,
        btf_fields=btf_fields,
        prefer_btf=forced == "btf",
        headers_how=f"kernel headers ({found.how})",
    )


# Where programs that read kernel structs take their layouts: unset, this
# kernel's own headers, else its BTF; "btf" or "headers" forces one (tests
# compare the two on a kernel that has both).
STRUCTS_ENV = "PYTOOLS_STRUCTS"


def _known_function(functions: Optional[frozenset], name: str) -> Optional[bool]:
    return None if functions is None else name in functions


@contextlib.contextmanager
def captured_stderr() -> Iterator[List[str]]:
    """Capture what libbcc and clang write to fd 2; the list fills on exit."""
    lines: List[str] = []
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode(errors="replace").splitlines())


_KEY_LINE = re.compile(r"error|fail|not permitted|invalid|no such|denied|not traceable", re.I)


def summarize_failure(exc: BaseException, stderr_lines: Sequence[str]) -> str:
    """One line saying why a candidate failed: the kernel's or clang's own
    words where they said something, else the exception's."""
    for line in stderr_lines:
        line = line.strip()
        if line and _KEY_LINE.search(line):
            return line
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class Program:
    """A loaded, attached BPF program. Use as a context manager or close()."""

    def __init__(self, bpf, candidate: Candidate, hooks: Sequence[Hook],
                 attempts: Sequence[Attempt], cflags: Sequence[str] = (), text: str = "",
                 features: Sequence[Feature] = (),
                 missing_features: Optional[Dict[str, str]] = None,
                 structs: Optional[str] = None):
        self.bpf = bpf
        self.candidate = candidate
        self.hooks = list(hooks)
        self.attempts = list(attempts)
        self.cflags = list(cflags)      # exactly what was compiled (--ebpf prints them)
        self.text = text
        self.features = list(features)  # the optional features it was asked for
        # Of those, the ones this program runs without, and why.
        self.missing_features: Dict[str, str] = dict(missing_features or {})
        self._tables: dict = {}
        self.structs = structs          # where its struct layouts came from, if it reads any

    def table(self, name: str):
        """A map of the program. Cached: bcc builds per-CPU tables by reading
        /sys/devices/system/cpu/possible, and a read tool must not read files
        (it would count its own reads) nor redo work at every snapshot."""
        if name not in self._tables:
            self._tables[name] = self.bpf.get_table(name.encode())
        return self._tables[name]

    def probe_info(self) -> dict:
        """What attached and why the others did not, for --verbose and JSON."""
        return {
            "mode": self.candidate.mode,
            "label": self.candidate.label,
            "hooks": [h.describe() for h in self.hooks],
            "attempts": [a.to_dict() for a in self.attempts],
            "missing_features": dict(self.missing_features),
            "structs": self.structs,
        }

    def close(self) -> None:
        if self.bpf is not None:
            self._tables.clear()
            _cleanup(self.bpf)
            self.bpf = None

    def __enter__(self) -> "Program":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _detach_quietly(bpf, tracepoint: bytes) -> None:
    with contextlib.suppress(Exception):
        bpf.detach_tracepoint(tracepoint)


def _cleanup(bpf) -> None:
    """Detach everything. Each tracepoint detach waits in the kernel for an
    RCU grace period (~90 ms here, serialised: 0.9 s for ten); done from one
    thread each, the waits overlap (bcc's ctypes calls release the GIL)."""
    with contextlib.suppress(Exception), captured_stderr():
        tracepoints = list(getattr(bpf, "tracepoint_fds", {}))
        threads = [threading.Thread(target=_detach_quietly, args=(bpf, tp)) for tp in tracepoints]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        bpf.cleanup()


def _try_candidate(text: str, cflags: Sequence[str], hooks: Sequence[Hook]):
    """Compile, load and attach; on any failure detach what did attach."""
    # bcc is imported only to load: --help, --version and non-root runs work without it.
    from bcc import BPF

    # Build the object first so that a constructor failing half way (one of
    # several auto-attached hooks refused) can still be cleaned up.
    bpf = BPF.__new__(BPF)
    try:
        bpf.__init__(text=text.encode(), cflags=list(cflags))
        for hook in hooks:
            if hook.kind == "kprobe":
                bpf.attach_kprobe(event=hook.target.encode(), fn_name=hook.fn.encode())
            elif hook.kind == "kretprobe":
                bpf.attach_kretprobe(event=hook.target.encode(), fn_name=hook.fn.encode())
        return bpf
    except BaseException:
        _cleanup(bpf)
        raise


def log_probe(tool: str, command: str, asked: str, program: Program, release: str) -> None:
    """With PYTOOLS_PROBE_LOG=FILE, append one JSON line per attached program:
    which probe each tool got on which kernel (the test runs' probe matrix,
    docs/probe-matrix.md, is built from these lines)."""
    path = os.environ.get("PYTOOLS_PROBE_LOG")
    if not path:
        return
    record = {"tool": tool, "command": command, "asked": asked,
              "kernel": release, "mode": program.candidate.mode,
              "label": program.candidate.label,
              "hooks": [h.describe() for h in program.hooks]}
    if program.structs:
        record["structs"] = program.structs
    try:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
    except OSError:
        pass     # a test run's record; never the tool's failure


def _feature_flags(features: Sequence[Feature]) -> Tuple[List[str], List[Hook]]:
    return ([d for f in features for d in f.defines], [h for f in features for h in f.hooks])


# Flags every tool's program gets on top of its own, for the filters all
# tools share (--cgroup): set around tool.open() by the CLI, so each tool
# gets them the same way without knowing of them.
_shared_cflags: contextvars.ContextVar = contextvars.ContextVar("shared_cflags", default=())


@contextlib.contextmanager
def shared_cflags(flags: Sequence[str]):
    token = _shared_cflags.set(tuple(flags))
    try:
        yield
    finally:
        _shared_cflags.reset(token)


def load(tool: str, plan: Sequence[Candidate], cflags: Sequence[str] = (),
         mode: str = "auto", features: Sequence[Feature] = (), command: str = "") -> Program:
    """Attach bpf/<tool>.c through the first candidate of `plan` (or the
    forced `mode`) that works. `features` are compiled in on top; if a
    candidate attaches only without them, it is taken without them and
    Program.missing_features says why. `command` (the tool's, passed down
    by its reader) is what the probe log names."""
    env = prepare()
    cflags = cdefs.common_flags() + list(cflags) + list(_shared_cflags.get())
    try:
        candidates = order_for(plan, mode)
    except ValueError as e:
        raise ToolError(str(e)) from None
    text = bpf_source(tool)
    attempts: List[Attempt] = []
    wanted = [f for f in features if f.problem is None]
    missing = {f.name: f.problem for f in features if f.problem}
    for candidate in candidates:
        selection = usable_hooks(candidate, env.facts)
        if selection.problem:
            attempts.append(Attempt(candidate.mode, candidate.label, selection.problem))
            continue
        base = list(cflags) + cflags_for(candidate, selection.hooks) + selection.cflags
        feature_error = None
        for feats in ([wanted, []] if wanted else [[]]):
            defines, feature_hooks = _feature_flags(feats)
            flags, hooks = base + defines, selection.hooks + feature_hooks
            try:
                with captured_stderr() as lines:
                    bpf = _try_candidate(text, flags, hooks)
            except KeyboardInterrupt:
                raise
            except Exception as e:  # bcc raises bare Exception for everything
                error = summarize_failure(e, lines)
                if feats:
                    feature_error = error
                    continue
                attempts.append(Attempt(candidate.mode, candidate.label, error))
                break
            if feature_error:
                missing.update({f.name: f"its hooks did not load: {feature_error}"
                                for f in wanted})
            attempts.append(Attempt(candidate.mode, candidate.label, None))
            program = Program(bpf, candidate, hooks, attempts, flags, text, features, missing,
                              selection.structs)
            log_probe(tool, command or tool, mode, program, os.uname().release)
            return program
    tried = "; ".join(f"{a.label}: {a.error}" for a in attempts)
    if mode == "auto":
        raise ToolError(f"no probe could attach: {tried}")
    raise ToolError(f"probe mode {mode} cannot attach on this kernel: {tried}")


def unchecked_cflags(plan: Sequence[Candidate], cflags: Sequence[str] = (),
                     mode: str = "auto") -> Tuple[Candidate, List[str]]:
    """The first candidate of the plan (or of the forced mode) with the
    flags it would compile with, without asking the kernel: what --ebpf
    shows where it may not load programs."""
    try:
        candidate = order_for(plan, mode)[0]
    except ValueError as e:
        raise ToolError(str(e)) from None
    return candidate, (cdefs.common_flags() + list(cflags) + list(_shared_cflags.get())
                       + cflags_for(candidate, candidate.hooks))
