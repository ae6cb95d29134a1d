"""Stand-in pods for the unit tests: cgroup ids with a namespace and a pod."""


class Pods:
    """cgroup id -> (namespace, pod), all alive."""

    def __init__(self, pods):
        from pytools.workloads import Workload
        self.pods, self.cgroups, self.Workload = pods, self, Workload

    def of(self, cgroup_id):
        ns, pod = self.pods[cgroup_id]
        return self.Workload(f"/kubepods/pod{cgroup_id}", pod_uid="u", namespace=ns, pod=pod,
                             container="c")

    def alive(self, cgroup_id):
        return True
