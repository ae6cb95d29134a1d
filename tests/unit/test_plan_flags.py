"""A tool's plan(opts), cflags(opts) and features(opts) are the only
builders of what it loads: the reader the command opens, the exporter's
reader, --ebpf and doctor get the same candidates and flags for the same
options. The loader is replaced by a recorder here: nothing is compiled."""

from types import SimpleNamespace

import pytest

from pytools import loader
from pytools.cli import COMMANDS, tool_options
from pytools.tools import TOOLS, by_name
from pytools.tools.readahead import efficiency as readahead_efficiency
from pytools.tools.readahead import spec as readahead_spec
from pytools.tools.vfs_read import plan as vfs_read_plan


class Loaded(Exception):
    """Raised by the recording loader once it has what it was given."""


@pytest.fixture
def recorded(monkeypatch):
    calls = []

    def load(tool, plan, cflags=(), mode="auto", features=(), command=""):
        calls.append({"tool": tool, "plan": list(plan), "cflags": list(cflags),
                      "features": [f.name for f in features], "command": command})
        raise Loaded()
    monkeypatch.setattr(loader, "load", load)
    monkeypatch.setattr(loader, "prepare", lambda: None)
    # what this kernel offers for readahead efficiency is asked of tracefs
    monkeypatch.setattr(readahead_spec, "kernel_efficiency_feature",
                        lambda: SimpleNamespace(name=readahead_efficiency.EFFICIENCY))
    # and where the kind of file a read is on can be read, of the headers or BTF
    monkeypatch.setattr(vfs_read_plan, "kind_feature", lambda: SimpleNamespace(name="kind"))
    return calls


VARIANTS = {      # options whose plan or flags differ from the defaults
    "execve": [{"by": "pod"}, {"by": "uid", "pid": 1, "uid": 0, "max_keys": 16}],
    "biolatency": [{"queued": True}, {"by_device": True, "by_op": True, "unit": "msecs"},
                   {"by": "disk,op"}],
    "vfs_read": [{"by": "comm", "min_latency": 5000, "comm": "sh"}, {"kind": "all"},
                 {"kind": "pipe"}, {"by": "kind"}],
    "readahead": [{"efficiency": True}, {"table": "pod", "pid": 1}],
    "runqlat": [{"by": "pid"}, {"by": "pod", "comm": "sh"}],
    "file_opens": [{"failed": True, "trace": True, "buffer_pages": 1}, {"by": "pod", "pid": 1}],
    "oomkill": [{"by": "pid", "buffer_pages": 1}],
    "tcp": [{"by": "remote", "trace": True, "buffer_pages": 1}, {"by": "state"},
            {"by": "pid", "max_sockets": 16}, {"pid": 1, "by": "remote"}],
}


def cases():
    return list(_cases())


def _cases():
    for tool in TOOLS:
        for extra in [{}] + VARIANTS[tool.name]:
            yield pytest.param(tool.name, extra, id=f"{tool.name}-{sorted(extra)}")


@pytest.mark.parametrize("name, extra", cases())
def test_the_command_loads_what_its_plan_and_flags_say(recorded, name, extra):
    tool = by_name(name)
    opts = tool.options_of({**tool_options(COMMANDS[name]), **extra})
    with pytest.raises(Loaded):
        tool.open(opts)
    (call,) = recorded
    assert call["plan"] == tool.plan(opts)
    assert call["cflags"] == tool.cflags(opts)
    assert call["features"] == [f.name for f in tool.features(opts)]


def test_options_reach_the_plan_and_the_flags():
    execve, bio = by_name("execve"), by_name("biolatency")
    defaults = tool_options(COMMANDS["execve"])
    assert "-DBY_CGROUP" in execve.cflags(execve.options_of({**defaults, "by": "pod"}))
    queued = bio.plan(bio.options_of({"queued": True}))
    assert queued[0].hooks[0].target == "block:block_rq_insert"
    assert bio.plan(bio.options_of({}))[0].hooks[0].target == "block:block_rq_issue"


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t.name)
def test_the_exporters_reader_is_built_by_the_same_builders(recorded, tool):
    with pytest.raises(Loaded):
        tool.exporter_open({"by": "pod", "efficiency": True})
    (call,) = recorded
    assert call["tool"] == tool.name and call["plan"] and call["cflags"]
    assert call["command"] == tool.command          # what the probe log names
