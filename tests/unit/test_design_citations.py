"""What docs/design.md cites of the code exists: each `module.name` (a
function, class or constant of pytools/<module>.py, pytools/tools/<module>.py
or a tool package pytools/tools/<module>/), each `pytools.x.y.Name`, each
`Class.attribute` of a class of pytools, each path (`pytools/...`,
`bpf/...`, `tests/...`, `scripts/...`, `deploy/...`, `docs/...`) and each
bare file name (`hist.py`, `vfs_read.c`). A module, file or name renamed or
moved without the design following fails here, naming the stale citation
and its line."""

import ast
import functools
import os
import re

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
PACKAGE = os.path.join(ROOT, "pytools")
DESIGN = os.path.join(ROOT, "docs", "design.md")

# Dotted names the design writes that are not pytools' own: kernel structs
# and their fields, cgroup files, other projects' and Python's modules, and
# attributes of objects the text has just named.
NOT_PYTOOLS = {"request_queue", "page_counter", "mem_cgroup", "oom_control", "fdtable",
               "cgroup", "http", "asyncio", "io", "probe"}
# Repository paths the design cites by their first directory.
TOP_DIRS = ("pytools/", "bpf/", "tests/", "scripts/", "deploy/", "docs/", ".ci/")
FILE_KINDS = {"py": ("pytools", "tests", "scripts"), "c": ("bpf",), "h": ("bpf",)}
OTHER_FILES = {"toml", "bt", "json", "yml", "yaml", "md", "txt"}   # `runqlat.bt`: bpftrace's
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = re.compile(rf"^{_IDENT}(\.{_IDENT})+(\(\))?$")


def code_spans(text):
    """(line number, text) of each single-token inline code span, outside
    fenced blocks."""
    spans, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            spans += [(number, s) for s in re.findall(r"`([^`\s]+)`", line)]
    return spans


@functools.lru_cache(maxsize=None)
def parsed(path):
    with open(path) as f:
        return ast.parse(f.read())


def module_files(dotted):
    """The source files of pytools module `dotted` ("pytools.hist",
    "pytools.tools.runqlat"): one file, or every file of a package."""
    path = os.path.join(ROOT, *dotted.split("."))
    if os.path.isfile(path + ".py"):
        return [path + ".py"]
    if os.path.isdir(path):
        return sorted(os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs
                      if f.endswith(".py"))
    return []


def short_module(name):
    """The pytools module a design citation's first word means: pytools.<name>
    or the tool pytools.tools.<name>; None if neither exists."""
    for dotted in (f"pytools.{name}", f"pytools.tools.{name}"):
        if module_files(dotted):
            return dotted
    return None


def defines(body, name):
    """The statement of `body` that defines `name` (def, class, assignment)."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                and node.name == name:
            return node
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            elements = target.elts if isinstance(target, ast.Tuple) else [target]
            if any(isinstance(e, ast.Name) and e.id == name for e in elements):
                return node
    return None


def resolve(module, names):
    """None if `names` (a top-level name, then attributes of the class it
    is) are defined in `module`'s files; else why not."""
    files = module_files(module)
    for path in files:
        node = parsed(path)
        for name in names:
            node = defines(getattr(node, "body", []), name)
            if node is None:
                break
        else:
            return None
    where = ", ".join(os.path.relpath(f, ROOT) for f in files)
    return f"{'.'.join(names)} is not defined in {where}"


def pytools_files():
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(PACKAGE) for f in fs
                  if f.endswith(".py"))


def class_has(cls, attribute):
    """Whether class node `cls` defines `attribute`: in its body, or as
    self.<attribute> in one of its methods."""
    if defines(cls.body, attribute):
        return True
    return any(isinstance(node, ast.Attribute) and node.attr == attribute
               and isinstance(node.ctx, ast.Store) and isinstance(node.value, ast.Name)
               and node.value.id == "self" for node in ast.walk(cls))


def class_attribute(names):
    """None if some class of pytools named names[0] has attribute names[1]."""
    cls_name, attribute = names[0], names[1]
    classes = [node for path in pytools_files() for node in ast.walk(parsed(path))
               if isinstance(node, ast.ClassDef) and node.name == cls_name]
    if not classes:
        return f"no class {cls_name} in pytools/"
    if any(class_has(cls, attribute) for cls in classes):
        return None
    return f"class {cls_name} has no {attribute}"


def problem(citation):
    """Why a code span that cites the code is stale, or None (also None for
    a span that is no citation of the code)."""
    if citation.startswith(TOP_DIRS):
        if "<" in citation or "*" in citation:
            return None                        # a pattern: bpf/<name>.c
        path = os.path.join(ROOT, citation)
        return None if os.path.exists(path) else "no such file or directory"
    stem, dot, ext = citation.rpartition(".")
    if dot and ext in FILE_KINDS and re.fullmatch(r"[\w-]+", stem):
        dirs = FILE_KINDS[ext]
        found = any(citation in files for top in dirs
                    for _, _, files in os.walk(os.path.join(ROOT, top)))
        return None if found else f"no file {citation} under {', '.join(dirs)}/"
    if not _DOTTED.match(citation) or ext in OTHER_FILES:
        return None
    parts = citation.removesuffix("()").split(".")
    if parts[0] in NOT_PYTOOLS:
        return None
    if parts[0][0].isupper() and len(parts) == 2:
        return class_attribute(parts)
    if parts[0] == "pytools":
        for cut in range(len(parts), 0, -1):  # the longest prefix that is a module
            if module_files(".".join(parts[:cut])):
                return resolve(".".join(parts[:cut]), parts[cut:]) if parts[cut:] else None
        return f"no module {citation}"
    module = short_module(parts[0])
    if module is None:
        return (f"no module pytools/{parts[0]}.py, pytools/tools/{parts[0]}.py or "
                f"pytools/tools/{parts[0]}/ (add it to NOT_PYTOOLS if it is not ours)")
    return resolve(module, parts[1:])


def test_every_citation_in_the_design_exists():
    with open(DESIGN) as f:
        spans = code_spans(f.read())
    stale = [f"docs/design.md:{line}: `{citation}`: {why}" for line, citation in spans
             if (why := problem(citation))]
    assert not stale, "stale citations:\n" + "\n".join(stale)


@pytest.mark.parametrize("citation, stale", [
    ("hist.slot_flags", False), ("hist.slot_flags()", False), ("pytools.tool.Tool", False),
    ("pytools.tools.base.Reader", False), ("runqlat.FIELDS", False), ("series.py", False),
    ("bpf/runqlat.c", False), ("vfs_read.c", False), ("bpf/<name>.c", False),
    ("request_queue.disk", False), ("pyproject.toml", False), ("tool.View.rated", False),
    ("Program.missing_features", False), ("View.rated", False), ("runqlat.bt", False),
    ("Program.nope", True), ("Nope.close", True),
    ("system.choose_headers", True), ("exporter.label_value", True), ("hist.nope", True),
    ("pytools.nope.X", True), ("pytools/nope.py", True), ("nope_output.py", True),
    ("nope.c", True), ("tool.View.nope", True),
])
def test_the_check_tells_stale_citations(citation, stale):
    assert (problem(citation) is not None) == stale, problem(citation)


def test_spans_in_fenced_blocks_and_with_spaces_are_no_citations():
    text = "see `hist.py` and `TOOL = X()`\n```\n`system.gone`\n```\n`render.py`\n"
    assert code_spans(text) == [(1, "hist.py"), (5, "render.py")]
