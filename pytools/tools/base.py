"""What every tool's reader (<Name>Reader) shares: it owns a loaded Program
and detaches it. The tool itself is its spec (<Name>Tool, pytools.tool)."""


class Reader:
    program = None   # a pytools.loader.Program, set by the subclass's __init__

    def close(self) -> None:
        if self.program is not None:
            self.program.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CgroupKeyed(Reader):
    """A reader whose count map (`count_map`) keys by cgroup_id, with
    Workloads in `workloads`: gone pods' keys deleted, cgroups named."""
    count_map = ""
    cgroup_field = "cgroup_id"      # the key's member that holds the cgroup id
    workloads = None

    def forget_cgroups(self, ids) -> None:
        """Delete these cgroup ids' counts (gone pods) from the kernel."""
        from ..maps import delete_keys
        delete_keys(self.program.table(self.count_map), ids,
                    lambda k: getattr(k, self.cgroup_field))

    def pod_of(self, cgroup_id: int) -> dict:
        """namespace, pod and container of a cgroup id ("" outside pods)."""
        from ..tracing import pod_fields
        return pod_fields(self.workloads, cgroup_id)
