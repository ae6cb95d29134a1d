"""oomkill: each process the kernel's OOM killer kills, in which pod, with
what memory, whether a cgroup's limit or the machine ran out, and which
task's allocation set it off; counted per pod."""

from .spec import TOOL

__all__ = ["TOOL"]
