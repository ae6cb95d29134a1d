"""execve: exec() calls counted in the kernel, by filename, caller, user or pod; or traced."""

from .spec import TOOL

__all__ = ["TOOL"]
