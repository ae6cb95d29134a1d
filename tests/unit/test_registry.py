"""Walk the list of tools: each one must have every piece a user meets
(command, console script, collector, doctor row, probe-matrix row, design
doc section, README entry) and every file the recipe names (docs/design.md),
so that forgetting one fails here rather than for a user."""

import dataclasses
import os
import re
import sys
from types import SimpleNamespace

import pytest

from pytools import doctor
from pytools.cli import COMMANDS, bpf_exporter, collector_options, main, tool_options
from pytools.errors import ToolError
from pytools.exporter import Collector
from pytools.tools import TOOLS, by_name

from .sources import StubCollector

if sys.version_info >= (3, 11):
    import tomllib
else:   # Debian 12 has 3.11; older Pythons read the file with the tomli backport
    tomllib = pytest.importorskip("tomli")

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))


def read(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return f.read()


def ids(tool):
    return tool.name


def test_names_and_commands_are_unique_and_found_by_name():
    names = [t.name for t in TOOLS]
    assert len(set(names)) == len(names) and len({t.command for t in TOOLS}) == len(TOOLS)
    assert all(by_name(t.name) is t for t in TOOLS)
    with pytest.raises(KeyError):
        by_name("nosuch")


def test_every_package_is_a_tool_and_every_console_script_a_command():
    """One registration: a package in pytools/tools/ is found by itself (no
    list to add it to); its console script is the one line elsewhere, and
    no script is left without its tool."""
    packages = sorted(entry for entry in os.listdir(os.path.join(ROOT, "pytools", "tools"))
                      if os.path.isfile(os.path.join(ROOT, "pytools", "tools", entry,
                                                     "__init__.py")))
    assert packages == sorted(t.name for t in TOOLS)
    # and the wheel carries each (setuptools installs the packages listed)
    listed = tomllib.loads(read("pyproject.toml"))["tool"]["setuptools"]["packages"]
    assert {f"pytools.tools.{name}" for name in packages} <= set(listed), listed
    scripts = tomllib.loads(read("pyproject.toml"))["project"]["scripts"]
    assert set(scripts) - {"pytools", "bpf-exporter"} == {t.command for t in TOOLS}
    orders = [t.order for t in TOOLS]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)


@pytest.mark.parametrize("tool", TOOLS, ids=ids)
def test_the_recipes_files_exist(tool):
    assert re.fullmatch(r"[a-z][a-z0-9_]*", tool.name)
    package = f"pytools.tools.{tool.name}"
    assert type(tool).__module__.startswith(package + ".")
    assert sys.modules[package].TOOL is tool          # the package exports its spec
    for path in (("bpf", f"{tool.name}.c"), ("pytools", "tools", tool.name, "__init__.py"),
                 ("tests", "unit", f"test_{tool.name}.py"),
                 ("tests", "kernel", f"test_{tool.name}_kernel.py")):
        assert os.path.isfile(os.path.join(ROOT, *path)), os.path.join(*path)


@pytest.mark.parametrize("tool", TOOLS, ids=ids)
def test_every_candidate_and_hook_define_is_in_the_c_source(tool):
    source = read("bpf", f"{tool.name}.c")
    assert tool.modes()
    for candidate in tool.plan():
        assert f"defined({candidate.define})" in source or f"#ifdef {candidate.define}" in source
        for hook in candidate.hooks:
            assert not hook.define or f"#ifdef {hook.define}" in source


@pytest.mark.parametrize("tool", TOOLS, ids=ids)
def test_command_is_in_the_group_and_a_console_script(tool):
    assert main.get_command(None, tool.command) is COMMANDS[tool.name]
    scripts = tomllib.loads(read("pyproject.toml"))["project"]["scripts"]
    assert scripts[tool.command] == f"pytools.cli:{tool.command.replace('-', '_')}"
    assert tool.summary and tool.description and tool.examples


@pytest.mark.parametrize("tool", TOOLS, ids=ids)
def test_collector_is_on_by_default_and_describes_its_families(tool):
    params = bpf_exporter.make_context("bpf-exporter", []).params
    # On by default, unless its cost to the node makes it opt-in.
    assert (tool.name in params["collectors"]) is tool.exporter_default
    params = bpf_exporter.make_context("bpf-exporter", ["--collectors", tool.name]).params
    opts = collector_options(params)[tool.name]
    for option in tool.exporter_options:
        dest = option(lambda: None).__click_params__[0].name
        assert dest.startswith(tool.name + "_")
    stub = StubCollector(**opts)
    assert isinstance(stub, Collector)
    families = tool.families(None, stub)
    assert families and all(not f.samples for f in families)


def test_the_collector_protocol_is_what_the_exporter_hands_over():
    """ToolCollector is a Collector; an object without one of its parts is not."""
    from pytools.self_metrics import SelfStats

    from .sources import FixedSource, tool_collector
    real = tool_collector("execve", FixedSource(None), SelfStats(), "k", 10, by="comm")
    assert isinstance(real, Collector)
    partial = SimpleNamespace(name="x", opts={}, cap=None, pod_cap=None, stats=None,
                              device=str, cgroup_series=lambda by: None)
    assert not isinstance(partial, Collector)      # no render_cache


def test_doctor_has_a_row_per_tool(monkeypatch):
    for tool in TOOLS:
        def refuse(self, opts, mode="auto", name=tool.name):
            raise ToolError(f"{name} cannot attach")
        monkeypatch.setattr(type(tool), "open", refuse)
    rows = {c.name: c for c in doctor.tool_checks(
        lambda t: t.options_of(tool_options(COMMANDS[t.name])))}
    for tool in TOOLS:
        assert rows[tool.command].ok is False
        assert rows[tool.command].detail == f"{tool.name} cannot attach"


@pytest.mark.parametrize("tool", TOOLS, ids=ids)
def test_docs_name_the_tool(tool):
    assert re.search(rf"^\| {re.escape(tool.command)} \|", read("docs", "probe-matrix.md"),
                     re.M), "no probe-matrix row: run .ci/run and scripts/probe-matrix"
    assert re.search(rf"^### `{re.escape(tool.command)}`", read("docs", "design.md"), re.M)
    assert f"`{tool.command}`" in read("README.md")


@pytest.mark.parametrize("tool", TOOLS, ids=ids)
def test_every_option_of_the_command_is_a_field_of_the_tools_options(tool):
    """Options are built once from the command's (Tool.options_of): none is
    dropped on the way, and the defaults are the command's."""
    params = tool_options(COMMANDS[tool.name])
    options = tool.options_of(params)
    assert dataclasses.is_dataclass(options)
    assert set(params) <= {f.name for f in dataclasses.fields(options)}
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.top = 1
