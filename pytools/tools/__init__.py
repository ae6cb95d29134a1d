"""The list of tools. Adding a tool is one line here (and its console
script in pyproject.toml); see docs/design.md for the recipe."""

from __future__ import annotations

from typing import List

from ..tool import Tool
from . import biolatency, execve, file_opens, oomkill, readahead, runqlat, tcp, vfs_read

TOOLS: List[Tool] = [
    execve.TOOL,
    vfs_read.TOOL,
    readahead.TOOL,
    biolatency.TOOL,
    runqlat.TOOL,
    file_opens.TOOL,
    oomkill.TOOL,
    tcp.TOOL,
]


def by_name(name: str) -> Tool:
    for tool in TOOLS:
        if tool.name == name:
            return tool
    raise KeyError(name)
