"""A fake Kubernetes node for the kernel tests: cgroup v2 hierarchies in this
machine's cgroup2 mount shaped as both kubelet cgroup drivers and a systemd
service, a fake /var/log/pods + /var/log/containers tree, and work done in
each fake container."""

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, List

import pytest

from pytools.workloads import find_cgroup2

from .workload import evict, make_executables, run_tool, stats_sysctl


MOUNT = find_cgroup2()


@dataclass
class Container:
    namespace: str
    pod: str
    name: str
    cgroup: str                     # its directory in the cgroup2 mount

    @property
    def labels(self):
        return {"namespace": self.namespace, "pod": self.pod, "container": self.name}


def uid(n: int) -> str:
    return f"{n:08x}-1b2c-4d5e-8f90-{n:012x}"


def cid(n: int) -> str:
    return f"{n:02x}" * 32


class FakeNode:
    """Under <cgroup2>/pytools-node-<pid>/: a systemd-driver burstable pod
    of two containers (containerd) plus its pause container, a
    cgroupfs-driver besteffort pod (CRI-O ids), a cgroupfs guaranteed pod,
    and a systemd service; their kubelet log directories in a temp dir."""

    def __init__(self):
        self.root = os.path.join(MOUNT, f"pytools-node-{os.getpid()}")
        self.logs = tempfile.mkdtemp(prefix="pytools-logs-")
        os.makedirs(os.path.join(self.logs, "pods"))
        os.makedirs(os.path.join(self.logs, "containers"))
        u1, u2, u3 = uid(1), uid(2), uid(3)
        burst = (f"kubepods.slice/kubepods-burstable.slice/"
                 f"kubepods-burstable-pod{u1.replace('-', '_')}.slice")
        self.containers = {
            "web": self.add("shop-prod", "cart-7d9f-x2", u1, "web",
                            f"{burst}/cri-containerd-{cid(0x11)}.scope", cid(0x11)),
            "sidecar": self.add("shop-prod", "cart-7d9f-x2", u1, "log-shipper",
                                f"{burst}/cri-containerd-{cid(0x12)}.scope", cid(0x12)),
            "batch": self.add("batch", "nightly-job-1", u2, "worker",
                              f"kubepods/besteffort/pod{u2}/{cid(0x21)}", cid(0x21)),
            "db": self.add("data", "db-0", u3, "postgres", f"kubepods/pod{u3}/{cid(0x31)}",
                           cid(0x31)),
        }
        self.pause = os.path.join(self.root, burst, f"cri-containerd-{cid(0x10)}.scope")
        os.makedirs(self.pause)                        # no log: the sandbox
        self.service = os.path.join(self.root, "system.slice", "pytools-fake.service")
        os.makedirs(self.service)

    def add(self, namespace, pod, pod_uid, name, path, container_id) -> Container:
        cgroup = os.path.join(self.root, path)
        os.makedirs(cgroup)
        pod_dir = os.path.join(self.logs, "pods", f"{namespace}_{pod}_{pod_uid}")
        os.makedirs(os.path.join(pod_dir, name), exist_ok=True)
        os.symlink(os.path.join(pod_dir, name, "0.log"), os.path.join(
            self.logs, "containers", f"{pod}_{namespace}_{name}-{container_id}.log"))
        return Container(namespace, pod, name, cgroup)

    def remove_pod(self, container: Container) -> None:
        """As the kubelet does: the pod's cgroups and log directory go."""
        pod_cgroup = os.path.dirname(container.cgroup)
        remove_cgroups(pod_cgroup)
        for entry in os.listdir(os.path.join(self.logs, "pods")):
            if f"_{container.pod}_" in entry:
                shutil.rmtree(os.path.join(self.logs, "pods", entry))
        for entry in os.listdir(os.path.join(self.logs, "containers")):
            if entry.startswith(f"{container.pod}_"):
                os.unlink(os.path.join(self.logs, "containers", entry))

    def close(self) -> None:
        remove_cgroups(self.root)
        shutil.rmtree(self.logs, ignore_errors=True)


def remove_cgroups(top: str) -> None:
    """Move any process left to the root cgroup, then remove bottom-up."""
    if not os.path.isdir(top):
        return
    for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
        try:
            with open(os.path.join(dirpath, "cgroup.procs")) as f:
                pids = f.read().split()
            for pid in pids:
                with open(os.path.join(MOUNT, "cgroup.procs"), "w") as f:
                    f.write(pid)
        except OSError:
            pass
        for _ in range(50):
            try:
                os.rmdir(dirpath)
                break
            except OSError:
                time.sleep(0.1)          # a process just exiting


@pytest.fixture
def node():
    fake = FakeNode()
    yield fake
    fake.close()


def run_in(cgroup: str, fn: Callable, *args) -> None:
    """fn(*args) in a forked child placed in `cgroup` first."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
            fn(*args)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def execs(path: str, n: int) -> None:
    for _ in range(n):
        subprocess.run([path], check=True)


def cold_read(path: str) -> None:
    evict(path)
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass


def failed_opens(n: int, path: str = "/nonexistent/pytools-opens") -> None:
    for _ in range(n):
        try:
            os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            pass


EXECS = {"web": 7, "sidecar": 11, "batch": 13, "db": 5}     # primes


SERVICE_EXECS = 3


@pytest.fixture
def true_copy():
    d = tempfile.mkdtemp()
    (path,) = make_executables(d, ["pytools-pod-true"])
    yield path
    shutil.rmtree(d)


def workload_execs(node: FakeNode, path: str) -> None:
    for key, n in EXECS.items():
        run_in(node.containers[key].cgroup, execs, path, n)
    run_in(node.service, execs, path, SERVICE_EXECS)


def cli(node: FakeNode, args: List[str], work: Callable[[], None]) -> dict:
    """The CLI's JSON over work(), counting only the node's cgroups."""
    out, err = run_tool(args + ["--cgroup", node.root, "--json", "3600"], work,
                        env=dict(os.environ, PYTOOLS_POD_LOGS=node.logs))
    (obj,) = [json.loads(line) for line in out.splitlines()]
    obj["stderr"] = err
    return obj


def daemonset_args(node: FakeNode) -> List[str]:
    """The DaemonSet's own arguments, read from its YAML, with the fake
    node's kubelet logs and without --listen (the Exporter sets its own);
    plus runqlat, the opt-in collector the dashboard's run-queue panels
    need, by pod (the YAML says how to add it)."""
    from pytools.tools import TOOLS

    from ..container.pod import PodSpec
    args = PodSpec.load().args
    assert "--pod-logs" in args and "--listen" in args and "--collectors" not in args, args
    args[args.index("--pod-logs") + 1] = node.logs
    i = args.index("--listen")
    opt_in = [t.name for t in TOOLS if not t.exporter_default]
    assert opt_in == ["runqlat"], opt_in
    return args[:i] + args[i + 2:] + ["--collectors", ",".join(t.name for t in TOOLS),
                                      "--runqlat-by", "pod"]


# What the PodMonitor's relabelling gives every series (the dashboard's
# node variable), as a static target's label.
NODE_LABEL = "labels: {node: test-node}"


@pytest.fixture
def stats_by_sysctl():
    """kernel.bpf_stats_enabled=1 for the test: the README's recipe for the
    dashboard's programs' CPU panel under the DaemonSet, which has no
    CAP_SYS_ADMIN to sample the statistics itself."""
    with stats_sysctl("1"):
        yield
