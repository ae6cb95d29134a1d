"""Probe plans: each tool's ordered list of ways to hook the kernel, as data.

A Candidate is one way (e.g. "vfs_read via kprobe"); its Hooks are the
attachment points. The loader tries candidates in order by really compiling,
loading and attaching them; `usable_hooks` is only the cheap first filter
that skips hooks whose mechanism or target this kernel certainly lacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

from .structs import Wanted

MODES = ("tracepoint", "raw_tracepoint", "kprobe", "fentry")


@dataclass(frozen=True)
class Hook:
    kind: str          # tracepoint | raw_tracepoint | kprobe | kretprobe | fentry | fexit
    target: str        # "category:event" for (raw) tracepoints, else a kernel function
    fn: str = ""       # BPF function to attach (kprobe/kretprobe only; the
                       # TRACEPOINT_PROBE/KFUNC_PROBE macros attach themselves)
    define: str = ""   # macro that compiles this hook's code in, for optional hooks

    def describe(self) -> str:
        return f"{self.kind} {self.target}"


@dataclass(frozen=True)
class Candidate:
    mode: str                    # one of MODES, what --probe names
    label: str                   # what the user reads: "vfs_read via kprobe"
    define: str                  # macro selecting this candidate's code in the C file
    hooks: Tuple[Hook, ...]
    any_of: bool = False         # True: attach whichever hooks exist (renamed functions)
    note: str = ""               # e.g. what this mode measures differently
    # True: its code reads kernel structs (struct request...), whose layout
    # only this kernel's own headers or its BTF give: with generic headers,
    # tried only if every one of `fields` is in the BTF (pytools/structs.py).
    reads_structs: bool = False
    fields: Tuple[Wanted, ...] = ()
    # False: tried only when forced with --probe (a mode that taxes the whole
    # machine more than the others, worth it only on some machines).
    auto: bool = True


@dataclass(frozen=True)
class Feature:
    """An optional part of a program (readahead efficiency): macros and
    hooks compiled in on top of whichever candidate attaches. A feature
    that cannot be had leaves the tool running without it, saying why,
    instead of failing the candidate."""
    name: str
    defines: Tuple[str, ...] = ()   # cflags, e.g. ("-DEFFICIENCY", "-DUSE_FEXIT")
    hooks: Tuple[Hook, ...] = ()
    problem: Optional[str] = None   # set: known unavailable before any compile
    detail: str = ""                # what -v and doctor say of it where it is had


@dataclass
class Facts:
    """What the kernel offers, gathered once by the loader (see kernel.py)."""
    tracepoint_exists: Callable[[str], bool]
    kprobes_problem: Optional[str]
    fentry_problem: Callable[[str], Optional[str]]   # per kernel function
    traceable: Callable[[str], Optional[bool]]   # None: cannot tell
    # Why the headers BCC compiles with may not describe this kernel's
    # structs (generic headers of another version), or None.
    struct_layout_problem: Optional[str] = None
    # Where struct fields are placed when the headers are not exact: the
    # -D flags for a candidate's fields, or why not (structs.BtfFields.lookup).
    btf_fields: Optional[Callable[[Sequence[Wanted]], Tuple[List[str], Optional[str]]]] = None
    prefer_btf: bool = False      # PYTOOLS_STRUCTS=btf: BTF even over exact headers
    headers_how: str = "kernel headers"


BTF_SOURCE = "BTF offsets (/sys/kernel/btf/vmlinux)"


def hook_problem(hook: Hook, facts: Facts) -> Optional[str]:
    """Why `hook` certainly cannot attach on this kernel, or None."""
    if hook.kind in ("tracepoint", "raw_tracepoint"):
        return None if facts.tracepoint_exists(hook.target) else f"no tracepoint {hook.target}"
    if hook.kind in ("kprobe", "kretprobe"):
        if facts.kprobes_problem:
            return facts.kprobes_problem
    elif hook.kind in ("fentry", "fexit"):
        problem = facts.fentry_problem(hook.target)
        if problem:
            return problem
    else:
        raise ValueError(f"unknown hook kind {hook.kind!r}")
    if facts.traceable(hook.target) is False:
        return f"kernel function {hook.target} is not traceable (absent, inlined or notrace)"
    return None


@dataclass
class Selection:
    hooks: List[Hook] = field(default_factory=list)
    problem: Optional[str] = None   # set when the candidate cannot be tried
    cflags: List[str] = field(default_factory=list)   # struct offsets, from BTF
    structs: Optional[str] = None   # where its struct layouts come from, if it reads any


def place_fields(fields: Sequence[Wanted], facts: Facts, btf_first: bool = False
                 ) -> Tuple[List[str], Optional[str], Optional[str]]:
    """Order of truth for code that reads these struct fields: this
    kernel's own headers (no flags: the C takes offsetof from them); else
    its BTF, every field found (-D offsets and STRUCTS_BTF); else the
    reason, in one line. (flags, where the layouts come from, problem).
    btf_first: BTF before exact headers, the same truth (the kernel's own
    type information) for code that would otherwise include kernel headers
    it does not need (seconds of compile: the kind of file a read is on)."""
    if btf_first and fields and facts.btf_fields is not None:
        flags, missing = facts.btf_fields(fields)
        if not missing:
            return flags + ["-DSTRUCTS_BTF"], BTF_SOURCE, None
        if not facts.struct_layout_problem:
            return [], facts.headers_how, None
        return [], None, f"{facts.struct_layout_problem}, and {missing}"
    if not (facts.prefer_btf and fields) and not facts.struct_layout_problem:
        return [], facts.headers_how, None
    problem = facts.struct_layout_problem or "PYTOOLS_STRUCTS=btf"
    if not fields:
        return [], None, problem
    if facts.btf_fields is None:
        return [], None, f"{problem}, and PYTOOLS_STRUCTS=headers keeps BTF offsets off"
    flags, missing = facts.btf_fields(fields)
    if missing:
        return [], None, f"{problem}, and {missing}"
    return flags + ["-DSTRUCTS_BTF"], BTF_SOURCE, None


def usable_hooks(candidate: Candidate, facts: Facts) -> Selection:
    """The hooks of `candidate` worth trying, or why none are."""
    selection = Selection()
    if candidate.reads_structs:
        selection.cflags, selection.structs, selection.problem = \
            place_fields(candidate.fields, facts)
        if selection.problem:
            return selection
    problems = []
    for hook in candidate.hooks:
        problem = hook_problem(hook, facts)
        if problem is None:
            selection.hooks.append(hook)
        elif problem not in problems:
            problems.append(problem)
    if candidate.any_of:
        if not selection.hooks:
            selection.problem = "; ".join(problems) or "no hooks"
    elif problems:
        selection.problem = "; ".join(problems)
        selection.hooks = []
    return selection


def cflags_for(candidate: Candidate, hooks: Sequence[Hook]) -> List[str]:
    flags = [f"-D{candidate.define}"]
    flags += [f"-D{h.define}" for h in hooks if h.define]
    return flags


def plan_modes(plan: Sequence[Candidate]) -> List[str]:
    """The modes a plan offers, in its order: what --probe accepts besides auto."""
    return list(dict.fromkeys(c.mode for c in plan))


def order_for(plan: Sequence[Candidate], mode: str) -> List[Candidate]:
    """Candidates to try: in plan order for "auto" (those meant for auto),
    else the forced mode's."""
    if mode == "auto":
        return [c for c in plan if c.auto]
    chosen = [c for c in plan if c.mode == mode]
    if not chosen:
        offered = ", ".join(sorted({c.mode for c in plan}))
        raise ValueError(f"probe mode {mode!r} is not offered by this tool (it has: {offered})")
    return chosen
