import pytest

from pytools.probes import Candidate, Facts, Hook, cflags_for, order_for, usable_hooks


def facts(tracepoints=(), kprobes=None, fentry=None, traceable=()):
    return Facts(tracepoint_exists=lambda n: n in tracepoints, kprobes_problem=kprobes,
                 fentry_problem=lambda fn: fentry, traceable=lambda f: f in traceable)


KPROBE = Candidate("kprobe", "vfs_read via kprobe", "PROBE_KPROBE",
                   (Hook("kprobe", "vfs_read", "on_enter"),
                    Hook("kretprobe", "vfs_read", "on_exit")))
TRACEPOINTS = Candidate("tracepoint", "read syscalls", "PROBE_TRACEPOINT",
                        (Hook("tracepoint", "syscalls:sys_enter_read"),
                         Hook("tracepoint", "syscalls:sys_exit_read")))
RENAMED = Candidate("kprobe", "readahead via kprobes", "PROBE_KPROBE",
                    (Hook("kprobe", "old_name", "on_old", "HOOK_OLD"),
                     Hook("kprobe", "new_name", "on_new", "HOOK_NEW")), any_of=True)


def test_kprobe_candidate_skipped_when_kernel_lacks_kprobes():
    sel = usable_hooks(KPROBE, facts(kprobes="no kprobes", traceable={"vfs_read"}))
    assert sel.problem == "no kprobes" and sel.hooks == []


def test_kprobe_candidate_needs_traceable_function():
    sel = usable_hooks(KPROBE, facts(traceable=set()))
    assert "vfs_read is not traceable" in sel.problem


def test_all_hooks_required_by_default():
    sel = usable_hooks(TRACEPOINTS, facts(tracepoints={"syscalls:sys_enter_read"}))
    assert sel.problem == "no tracepoint syscalls:sys_exit_read" and sel.hooks == []


def test_any_of_keeps_the_names_this_kernel_has():
    sel = usable_hooks(RENAMED, facts(traceable={"new_name"}))
    assert sel.problem is None
    assert [h.target for h in sel.hooks] == ["new_name"]
    assert cflags_for(RENAMED, sel.hooks) == ["-DPROBE_KPROBE", "-DHOOK_NEW"]


def test_any_of_with_nothing_left_says_why():
    sel = usable_hooks(RENAMED, facts(traceable=set()))
    assert "old_name" in sel.problem and "new_name" in sel.problem


def test_unknown_hook_kind_is_a_bug():
    bad = Candidate("x", "x", "X", (Hook("uprobe", "f"),))
    with pytest.raises(ValueError):
        usable_hooks(bad, facts())


def test_a_candidate_not_meant_for_auto_is_tried_only_when_forced():
    forced_only = Candidate("raw_tracepoint", "raw", "PROBE_RAW", (), auto=False)
    plan = [TRACEPOINTS, forced_only]
    assert order_for(plan, "auto") == [TRACEPOINTS]
    assert order_for(plan, "raw_tracepoint") == [forced_only]


def test_order_for_auto_keeps_plan_order_and_forced_filters():
    plan = [KPROBE, TRACEPOINTS]
    assert order_for(plan, "auto") == plan
    assert order_for(plan, "tracepoint") == [TRACEPOINTS]
    with pytest.raises(ValueError, match="offered"):
        order_for(plan, "fentry")
