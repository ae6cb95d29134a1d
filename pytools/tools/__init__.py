"""The tools: every package here that exports TOOL, found by itself, in
the order of each spec's `order`. Adding a tool is its package and its
console script in pyproject.toml; see docs/design.md for the recipe."""

from __future__ import annotations

import importlib
import pkgutil
from typing import List

from ..tool import Tool


def discover() -> List[Tool]:
    """The TOOL of every package in pytools/tools/, by (order, name)."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg:
            module = importlib.import_module(f"{__name__}.{info.name}")
            found.append(module.TOOL)
    if not found:   # an install that left the packages out (pyproject's packages)
        raise ImportError(f"no tool packages in {__path__[0]}: a broken install")
    return sorted(found, key=lambda tool: (tool.order, tool.name))


TOOLS: List[Tool] = discover()


def by_name(name: str) -> Tool:
    for tool in TOOLS:
        if tool.name == name:
            return tool
    raise KeyError(name)
