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
    return {module_of(f): imports_of(f, modules) for f in files}


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
