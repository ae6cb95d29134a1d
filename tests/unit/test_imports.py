"""The package's import graph has no circle: a lower layer gets what it
needs passed down (the loader logs a tool's name, not its command; doctor
gets each tool's default options from the CLI). Imports inside functions
count too: they are the same dependency, only later."""

import ast
import os

PACKAGE = os.path.join(os.path.dirname(__file__), "..", "..", "pytools")


def module_of(path):
    rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
    return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def imports_of(path, modules):
    """The package's modules that the file at `path` imports, anywhere in it."""
    module = module_of(path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        out |= {name for name in names if name in modules and name != module}
    return out


def graph():
    files = [os.path.join(d, f) for d, _, fs in os.walk(PACKAGE) for f in fs
             if f.endswith(".py")]
    modules = {module_of(f) for f in files}
    edges = {module_of(f): imports_of(f, modules) for f in files}
    # pytools.tools imports each tool's package by discovery (importlib), which
    # the parse cannot see: the edges are there all the same.
    tools = os.path.join(PACKAGE, "tools")
    edges["pytools.tools"] |= {f"pytools.tools.{d}" for d in os.listdir(tools)
                               if os.path.isfile(os.path.join(tools, d, "__init__.py"))}
    return edges


def cycle(edges):
    """One circle of the graph as a list of modules, or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def test_the_import_graph_has_no_circle():
    edges = graph()
    assert "pytools.loader" in edges and "pytools.tools.vfs_read" in edges["pytools.tools"]
    assert cycle(edges) is None, " -> ".join(cycle(edges))


def test_the_check_finds_a_circle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


TESTS = os.path.join(os.path.dirname(__file__), "..")


def imports_of_test_modules(text):
    """(line, module) of each import in `text` of a test module: from .test_x,
    from ..kernel.test_x, import tests.unit.test_x, from . import test_x."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            modules = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [(node.lineno, m.lstrip(".")) for m in modules
                  if m.rpartition(".")[2].startswith("test_")]
    return found


def test_no_test_module_imports_another():
    """What test modules share lives in helper modules (tests/kernel/pods.py,
    exporter.py, prometheus.py, ...; tests/unit/sources.py, ...) or in a
    conftest, never in a test_*.py another one imports: pytest collects each
    test module once, and a helper in a test module moves with its tests."""
    offences = []
    for directory, _, files in os.walk(TESTS):
        for name in sorted(files):
            if name.startswith("test_") and name.endswith(".py"):
                path = os.path.join(directory, name)
                with open(path) as f:
                    offences += [f"{os.path.relpath(path, TESTS)}:{line} imports {module}"
                                 for line, module in imports_of_test_modules(f.read())]
    assert not offences, "move the shared helpers out of test modules:\n" + "\n".join(offences)


def test_the_check_finds_an_import_of_a_test_module():
    text = ("from .test_exporter_kernel import Exporter\nfrom .exporter import parse\n"
            "import tests.unit.test_cli\ndef f():\n    from . import test_deploy\n"
            "from ..kernel.test_workloads_kernel import MOUNT\n")
    assert sorted(line for line, _ in imports_of_test_modules(text)) == [1, 3, 5, 6]
