"""What every tool's reader (<Name>Reader) is to the rest of the package:
it owns a loaded Program and detaches it, and this is all the command's
loop (pytools.cli), the exporter (pytools.exporter.ToolCollector) and doctor
may call on it. The tool itself is its spec (<Name>Tool, pytools.tool)."""

from __future__ import annotations

from typing import Any, Iterable

from ..maps import delete_keys
from ..tool import Names
from ..tracing import pod_fields


class Reader:
    program: Any = None   # a pytools.loader.Program, set by the subclass's __init__
    counted = ""          # what the banner says is counted, where the options narrow it
    names = Names()       # the name caches its output may use (pytools.tool.View.names)

    def snapshot(self) -> Any:
        """The tool's maps now, as plain data (the tool's <Name>Snapshot)."""
        raise NotImplementedError

    def forget_cgroups(self, ids: Iterable[int]) -> None:
        """Delete these cgroup ids' entries (gone pods) from the kernel's
        maps; nothing for a reader whose maps are not keyed by cgroup."""

    def close(self) -> None:
        if self.program is not None:
            self.program.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CgroupKeyed(Reader):
    """A reader whose count map (`count_map`) keys by cgroup_id, with
    Workloads in names.workloads: gone pods' keys deleted, cgroups named."""
    count_map = ""
    cgroup_field = "cgroup_id"      # the key's member that holds the cgroup id

    def forget_cgroups(self, ids) -> None:
        """Delete these cgroup ids' counts (gone pods) from the kernel."""
        delete_keys(self.program.table(self.count_map), ids,
                    lambda k: getattr(k, self.cgroup_field))

    def pod_of(self, cgroup_id: int) -> dict:
        """namespace, pod and container of a cgroup id ("" outside pods)."""
        return pod_fields(self.names.workloads, cgroup_id)


def load(tool, options, mode: str = "auto"):
    """Load and attach bpf/<tool.name>.c as the tool's plan, cflags and
    features say for these options (the only way a reader loads). The
    machine is prepared first: tracefs mounted, headers found (some cflags
    read a tracepoint's format)."""
    # the loader (headers, tempfiles) only where a program is loaded: --help starts without it.
    from .. import loader
    loader.prepare()
    return loader.load(tool.name, tool.plan(options), tool.cflags(options), mode,
                       tool.features(options), command=tool.command)
