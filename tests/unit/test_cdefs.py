"""What a BPF program and its Python reader share is said once, in Python
(pytools/cdefs.py): each program lists the names it takes in `// shared:`
lines, defines none of them itself, uses each one, and its tool's cflags
(or the loader's COMMON flags) pass exactly those; the Python side reads the
same constants."""

import os
import re

import pytest

from pytools import cdefs
from pytools.cli import COMMANDS, tool_options
from pytools.hist import SLOTS
from pytools.tools import TOOLS
from pytools.tools.readahead import snapshot as readahead_snapshot
from pytools.tools.readahead import spec as readahead_spec
from pytools.tools.vfs_read import plan as vfs_read_plan
from pytools.tools.runqlat import plan as runqlat_plan
from pytools.tools.biolatency import plan as biolatency_plan

BPF = os.path.join(os.path.dirname(__file__), "..", "..", "bpf")


def source(name):
    with open(os.path.join(BPF, name)) as f:
        return f.read()


def shared_names(text):
    return {n for line in re.findall(r"^// shared: (.*)$", text, re.M)
            for n in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", line.split("(")[0])}


def includes(text):
    return re.findall(r'^#include "([^"]+)"', text, re.M)


def with_headers(name):
    """bpf/<name> and the headers it includes (theirs too), as one text."""
    text, seen, todo = "", set(), [name]
    while todo:
        current = todo.pop(0)
        if current in seen:
            continue
        seen.add(current)
        body = source(current)
        text += body + "\n"
        todo += includes(body)
    return text


def defined_in_flags(flags):
    return {m.group(1): m.group(2) for f in flags
            if (m := re.match(r"-D([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$", f))}


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t.name)
def test_every_shared_name_comes_from_the_tools_flags_and_nowhere_else(tool):
    text = with_headers(f"{tool.name}.c")
    names = shared_names(text)
    flags = defined_in_flags(cdefs.common_flags()
                             + tool.cflags(tool.options_of(tool_options(COMMANDS[tool.name]))))
    missing = names - set(flags)
    assert not missing, f"bpf/{tool.name}.c takes {missing}, its cflags do not pass them"
    code = re.sub(r"//.*", "", text)
    for name in names:
        assert not re.search(rf"#define\s+{name}\b|\b{name}\s*=(?!=)", code), \
            f"bpf/{tool.name}.c defines {name} itself"
        assert re.search(rf"\b{name}\b", code), f"bpf/{tool.name}.c never uses {name}"


def test_the_python_side_reads_the_same_constants():
    bio = biolatency_plan
    assert bio.SHARED["OP_READ"] == bio.OPS.index("read")
    assert bio.op_name(bio.SHARED["OP_DISCARD"] | bio.OP_SYNC) == \
        "sync-discard"
    assert [bio.SHARED[f"UNTIMED_{n.upper()}"] for n in bio.UNTIMED] == [0, 1, 2]
    assert readahead_snapshot.KINDS[readahead_spec.SHARED["KIND_FORCED"]] == "forced"
    assert readahead_spec.SHARED["EVENT_WINDOW"] == readahead_snapshot.EVENT_WINDOW
    assert readahead_spec.SHARED["HIST_SLOTS"] == SLOTS
    assert "-DPER_PROCESS=2" in vfs_read_plan.cflags(per="comm")
    assert vfs_read_plan.SHARED["PER_COMM"] == 2
    assert f"-DPER_KEY={runqlat_plan.SHARED['KEY_CGROUP']}" in runqlat_plan.cflags(per="pod")
    assert [runqlat_plan.SHARED[f"WAIT_{w.upper()}"] for w in runqlat_plan.WAITS] == [0, 1, 2]
    assert runqlat_plan.SHARED["WAIT_COUNTS"] == len(runqlat_plan.WAITS)
    assert cdefs.COMMON["COMM_LEN"] == 16


def test_a_name_the_c_side_takes_but_python_does_not_pass_is_found():
    text = "// shared: FOO BAR\n#if FOO == BAR\n#endif\n"
    assert shared_names(text) == {"FOO", "BAR"}
    assert set(shared_names(text)) - set(defined_in_flags(["-DFOO=1"])) == {"BAR"}


def btf_names(text):
    return {n for line in re.findall(r"^// btf: (.*)$", text, re.M)
            for n in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", line.split("(")[0])}


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t.name)
def test_the_struct_fields_a_program_reads_are_the_ones_its_plan_places_from_btf(tool):
    """Each candidate that reads structs declares its fields in Python
    (pytools/structs.py) and the C names the same ones in `// btf:` lines,
    its own or those of a header it includes (bpf/task.h); a field comes as
    <NAME>_OFF<i> and <NAME>_SIZE, used, never defined under STRUCTS_BTF."""
    text = with_headers(f"{tool.name}.c")
    declared = {f.name for c in tool.plan() for f in c.fields} | \
        {f.name for f in getattr(tool, "feature_fields", ())}
    assert btf_names(text) == declared
    code = re.sub(r"//.*", "", text)
    for name in declared:
        assert re.search(rf"\b{name}(_OFF0|_SIZE)?\b", code), f"{name} is never used"
    if declared:
        assert all(c.reads_structs for c in tool.plan() if c.fields)
