"""The loader's fallback loop against a fake BCC: candidates tried in order,
each failure summarised in one line, optional features dropped rather than
failing a candidate, and everything half-attached cleaned up."""

import os
import sys
import types

import pytest

from pytools import headers, loader
from pytools.errors import ToolError
from pytools.probes import Candidate, Facts, Feature, Hook


class FakeBPF:
    """Stands in for bcc.BPF: refuses to compile when a flag in `refuse` is
    given (writing clang's or libbpf's words to stderr, as they do)."""
    refuse = {}
    made = []

    def __init__(self, text, cflags):
        self.cflags = list(cflags)
        self.cleaned = False
        FakeBPF.made.append(self)
        for flag, words in self.refuse.items():
            if flag in self.cflags:
                os.write(2, f"bpf: Failed to load program: {words}\n".encode())  # libbcc's fd 2
                raise Exception("Failed to load BPF program b'x': " + words)

    def attach_kprobe(self, event, fn_name):
        pass

    attach_kretprobe = attach_kprobe

    def cleanup(self):
        self.cleaned = True


PLAN = [
    Candidate("kprobe", "f via kprobe", "PROBE_KPROBE",
              (Hook("kprobe", "f", "f_entry"), Hook("kretprobe", "f", "f_return"))),
    Candidate("fentry", "f via fentry", "PROBE_FENTRY", (Hook("fentry", "f"),)),
    Candidate("tracepoint", "f syscalls via tracepoints", "PROBE_TRACEPOINT",
              (Hook("tracepoint", "syscalls:sys_enter_f"),)),
    Candidate("raw_tracepoint", "renamed functions", "PROBE_ANY",
              (Hook("tracepoint", "a:old", define="HOOK_old"),
               Hook("tracepoint", "a:new", define="HOOK_new")), any_of=True),
]


@pytest.fixture
def kernel(monkeypatch):
    """A kernel without kprobes whose tracepoints are those in `present`."""
    present = {"syscalls:sys_enter_f", "a:new"}
    facts = Facts(tracepoint_exists=lambda name: name in present,
                  kprobes_problem="kernel built without kprobes (CONFIG_KPROBES)",
                  fentry_problem=lambda fn: None, traceable=lambda fn: True)
    env = loader.Environment("/sys/kernel/tracing", headers.Headers("/h", "test"), "0.26", facts)
    monkeypatch.setattr(loader, "_environment", env)
    monkeypatch.setitem(sys.modules, "bcc", types.SimpleNamespace(BPF=FakeBPF))
    monkeypatch.setattr(loader, "bpf_source", lambda tool: f"// {tool}.c")
    monkeypatch.delenv("PYTOOLS_PROBE_LOG", raising=False)
    FakeBPF.refuse, FakeBPF.made = {}, []
    return present


def test_auto_walks_the_plan_and_records_why_each_candidate_failed(kernel):
    FakeBPF.refuse = {"-DPROBE_FENTRY": "Permission denied"}
    program = loader.load("f", PLAN, ["-DX=1"])
    assert program.candidate.mode == "tracepoint"
    assert [(a.mode, a.error) for a in program.attempts] == [
        ("kprobe", "kernel built without kprobes (CONFIG_KPROBES)"),
        ("fentry", "bpf: Failed to load program: Permission denied"),
        ("tracepoint", None)]
    assert program.cflags == ["-DCOMM_LEN=16", "-DX=1", "-DPROBE_TRACEPOINT"]
    assert program.text == "// f.c"
    assert FakeBPF.made[0].cleaned          # the refused one was cleaned up
    program.close()
    assert FakeBPF.made[1].cleaned


def test_any_of_compiles_in_only_the_hooks_that_exist(kernel):
    program = loader.load("f", PLAN, mode="raw_tracepoint")
    assert program.cflags == ["-DCOMM_LEN=16", "-DPROBE_ANY", "-DHOOK_new"]
    assert [h.target for h in program.hooks] == ["a:new"]


def test_nothing_attaches_one_line_naming_each_try(kernel):
    FakeBPF.refuse = {"-DPROBE_FENTRY": "EPERM", "-DPROBE_TRACEPOINT": "invalid argument",
                      "-DPROBE_ANY": "invalid argument"}
    with pytest.raises(ToolError) as caught:
        loader.load("f", PLAN)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("no probe could attach: f via kprobe: ")
    assert "f via fentry: bpf: Failed to load program: EPERM" in message


def test_a_forced_mode_is_the_only_one_tried(kernel):
    with pytest.raises(ToolError) as caught:
        loader.load("f", PLAN, mode="kprobe")
    assert str(caught.value) == ("probe mode kprobe cannot attach on this kernel: "
                                 "f via kprobe: kernel built without kprobes (CONFIG_KPROBES)")
    assert FakeBPF.made == []
    with pytest.raises(ToolError, match="not offered by this tool"):
        loader.load("f", PLAN, mode="uprobe")


def test_a_failing_feature_is_dropped_not_the_candidate(kernel):
    FakeBPF.refuse = {"-DEFFICIENCY": "unknown func bpf_get_x"}
    feature = Feature("efficiency", ("-DEFFICIENCY",), (Hook("tracepoint", "a:new"),))
    program = loader.load("f", PLAN, mode="tracepoint", features=[feature])
    assert program.candidate.mode == "tracepoint"
    assert program.cflags == ["-DCOMM_LEN=16", "-DPROBE_TRACEPOINT"]
    assert program.missing_features == {
        "efficiency": "its hooks did not load: bpf: Failed to load program: unknown func bpf_get_x"}
    assert program.probe_info()["missing_features"] == program.missing_features


def test_a_feature_that_loads_is_compiled_in_with_its_hooks(kernel):
    feature = Feature("efficiency", ("-DEFFICIENCY", "-DUSE_TRACEPOINTS"),
                      (Hook("tracepoint", "a:new"),))
    program = loader.load("f", PLAN, mode="tracepoint", features=[feature])
    assert program.cflags == ["-DCOMM_LEN=16", "-DPROBE_TRACEPOINT", "-DEFFICIENCY",
                              "-DUSE_TRACEPOINTS"]
    assert [h.describe() for h in program.hooks][-1] == "tracepoint a:new"
    assert program.missing_features == {}


def test_a_feature_known_to_be_missing_is_not_compiled(kernel):
    feature = Feature("efficiency", problem="this kernel lacks tracepoint x")
    program = loader.load("f", PLAN, mode="tracepoint", features=[feature])
    assert len(FakeBPF.made) == 1
    assert program.missing_features == {"efficiency": "this kernel lacks tracepoint x"}


def test_a_candidate_reading_structs_is_not_tried_with_another_kernels_headers(kernel):
    reads = Candidate("raw_tracepoint", "f via raw tracepoint", "PROBE_RAW",
                      (Hook("raw_tracepoint", "syscalls:sys_enter_f"),), reads_structs=True)
    loader._environment.facts.struct_layout_problem = "headers are 6.1's, not 6.18's"
    program = loader.load("f", [reads] + PLAN[2:3])
    assert program.candidate.mode == "tracepoint"
    assert program.attempts[0].error == "headers are 6.1's, not 6.18's"
    loader._environment.facts.struct_layout_problem = None
    assert loader.load("f", [reads]).candidate.mode == "raw_tracepoint"


def test_a_candidate_reading_structs_compiles_with_btf_offsets_and_says_so(kernel):
    from pytools.structs import Field
    reads = Candidate("raw_tracepoint", "f via raw tracepoint", "PROBE_RAW",
                      (Hook("raw_tracepoint", "syscalls:sys_enter_f"),), reads_structs=True,
                      fields=(Field("TASK_TGID", "task_struct->tgid"),))
    facts = loader._environment.facts
    facts.struct_layout_problem = "headers are 6.1's, not 6.18's"
    facts.btf_fields = lambda fields: (["-DTASK_TGID_OFF0=1268", "-DTASK_TGID_SIZE=4"], None)
    program = loader.load("f", [reads])
    assert program.cflags[-3:] == ["-DTASK_TGID_OFF0=1268", "-DTASK_TGID_SIZE=4",
                                   "-DSTRUCTS_BTF"]
    assert program.probe_info()["structs"] == "BTF offsets (/sys/kernel/btf/vmlinux)"
    facts.btf_fields = lambda fields: ([], "this kernel's BTF lacks task_struct->tgid: x")
    with pytest.raises(ToolError, match="6.18's, and this kernel's BTF lacks task_struct"):
        loader.load("f", [reads])


def test_summarize_failure_prefers_the_kernels_words():
    err = Exception("Failed to attach BPF program b'f_entry' to kprobe b'f'")
    assert loader.summarize_failure(err, ["libbpf: loading", "  cannot attach: Invalid argument",
                                          "other"]) == "cannot attach: Invalid argument"
    assert loader.summarize_failure(err, []) == str(err)
    assert loader.summarize_failure(Exception(""), []) == "Exception"


def test_unchecked_cflags_name_the_first_candidate():
    candidate, flags = loader.unchecked_cflags(PLAN, ["-DX=1"], "auto")
    assert candidate.mode == "kprobe" and flags == ["-DCOMM_LEN=16", "-DX=1",
                                                   "-DPROBE_KPROBE"]
    candidate, flags = loader.unchecked_cflags(PLAN, [], "raw_tracepoint")
    assert flags == ["-DCOMM_LEN=16", "-DPROBE_ANY", "-DHOOK_old", "-DHOOK_new"]
