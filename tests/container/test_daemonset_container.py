"""The image and the DaemonSet, run as a node runs them.

The image is built from the Dockerfile (scripts/build-image: the base made
from Debian's packages and tagged as the FROM, since no registry is
reachable here; built once and reused while the build context is the
same). The container is run with every setting read from
deploy/kubernetes/base/bpf-exporter.yaml by code (tests/container/pod.py):
capabilities, seccomp profile, user, read-only root, no privilege
escalation, hostPID, hostPath and emptyDir volumes, env, args. It runs in
its own pod cgroup under a fake node, in a private cgroup namespace, on a
pure cgroup v2 view (a private mount namespace with cgroup2 on
/sys/fs/cgroup, as containerd and CRI-O nodes have), with runc. Fake pods
beside it (real cgroups, kubelet log directories) exec, read and read ahead.

The memory limit is passed where the cgroup hierarchy has a memory
controller (this hybrid host keeps it in cgroup v1); the peak resident size
is measured from /proc either way and held against the YAML's limit.

Figures (build time, image size, start to /healthz and to the first full
scrape, peak and steady RSS) are printed and written to
$PYTOOLS_CONTAINER_FIGURES (default /tmp/pytools-container-figures.json).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from base64 import b64encode
from typing import Dict, List, Optional

import bcrypt
import pytest

from ..certs import make_certs
from ..kernel.exporter import diff, free_port, parse, value
from ..kernel.modes import scratch_dir
from ..kernel.pods import EXECS, FakeNode, MOUNT, cold_read, run_in, uid, workload_execs
from ..kernel.workload import (bpf_map_ids, bpf_program_ids, file_reads, make_executables,
                               programs_gone, wait_for, write_file, zero_reads)
from .pod import REPO, Placement, PodSpec, podman_run_args

PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]
# This session has no CAP_SYS_RESOURCE: podman's defaults would raise rlimits.
# Debian's name of this machine's architecture, as scripts/build-image's --platform takes it.
NATIVE_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
RLIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", "--pids-limit=-1"]
EXPORTER_UID = uid(0x99)
EXPORTER_POD = ("bpf-pytools", "bpf-exporter-x7k2p")
FIGURES: Dict[str, object] = {}
PAGE = os.sysconf("SC_PAGE_SIZE")

pytestmark = pytest.mark.skipif(MOUNT is None, reason="no cgroup2 mount: the kernel or host "
                                "has no cgroup v2 hierarchy")


# ------------------------------------------------------------------ the node

class CgroupV2View:
    """A private mount namespace whose /sys/fs/cgroup is the cgroup2
    hierarchy, kept by a holder process; podman runs inside it through
    nsenter, so it sees a pure v2 node whatever this host mounts."""

    def __init__(self):
        script = ("umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup "
                  "&& echo ready && exec sleep infinity")
        self.holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                        script], stdout=subprocess.PIPE, text=True)
        line = self.holder.stdout.readline()
        assert line.strip() == "ready", "cannot make a private cgroup2 view"

    def command(self, args: List[str]) -> List[str]:
        return ["nsenter", "-t", str(self.holder.pid), "-m", "--"] + args

    def podman(self, *args: str, timeout: float = 600, check: bool = True
               ) -> subprocess.CompletedProcess:
        result = subprocess.run(self.command(PODMAN + list(args)), capture_output=True,
                                text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check:
            assert result.returncode == 0, (args[:3], result.stderr[-3000:])
        return result

    def has_memory_controller(self) -> bool:
        with open(os.path.join(MOUNT, "cgroup.controllers")) as f:
            return "memory" in f.read().split()

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait()


def relative_cgroup(path: str) -> str:
    return "/" + os.path.relpath(path, MOUNT)


@pytest.fixture(scope="module")
def image() -> str:
    start = time.monotonic()
    # This machine's platform only: the arm64 image (emulated) is a release
    # build's, not this test's.
    result = subprocess.run([os.path.join(REPO, "scripts", "build-image"),
                             "--platform", f"linux/{NATIVE_ARCH}"],
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-4000:]
    line = result.stdout.strip().splitlines()[-1]
    match = re.match(r"image (\S+) arch=\S+ size_bytes=(\d+) built=(\d) build_seconds=([\d.]+)",
                     line)
    assert match, line
    FIGURES["image_bytes"] = int(match.group(2))
    if match.group(3) == "1":
        FIGURES["build_seconds"] = float(match.group(4))
    FIGURES["build_image_seconds_this_run"] = round(time.monotonic() - start, 1)
    return match.group(1)


@pytest.fixture(scope="module")
def view():
    v = CgroupV2View()
    yield v
    v.close()


@pytest.fixture(scope="module")
def node():
    fake = FakeNode()
    pod_cgroup = os.path.join(fake.root, "kubepods", "besteffort", f"pod{EXPORTER_UID}")
    os.makedirs(pod_cgroup)
    namespace, name = EXPORTER_POD
    os.makedirs(os.path.join(fake.logs, "pods", f"{namespace}_{name}_{EXPORTER_UID}",
                             "bpf-exporter"))
    fake.exporter_cgroup = pod_cgroup
    yield fake
    fake.close()        # podman's libpod-* and conmon cgroups in the pod go too


@pytest.fixture(scope="module")
def true_copy():
    d = tempfile.mkdtemp()
    (path,) = make_executables(d, ["pytools-pod-true"])
    yield path
    shutil.rmtree(d)


def placement(node: FakeNode, view: CgroupV2View, tmp: str, **kw) -> Placement:
    """The fake node's paths for the YAML's hostPaths of kubelet logs."""
    empty = os.path.join(tmp, "emptydir-tmp")
    os.makedirs(empty, exist_ok=True)
    return Placement(
        host_paths={"/var/log/pods": os.path.join(node.logs, "pods"),
                    "/var/log/containers": os.path.join(node.logs, "containers")},
        empty_dirs={"tmp": empty}, cgroup_parent=relative_cgroup(node.exporter_cgroup),
        memory_limit=view.has_memory_controller(), extra=RLIMITS, **kw)


# ------------------------------------------------------------------ the pod

class Pod:
    """The DaemonSet's container, started detached in the view."""

    def __init__(self, view: CgroupV2View, args: List[str], port: int, scheme: str = "http"):
        self.view = view
        self.name = f"pytools-ds-{os.getpid()}-{port}"
        self.url = f"{scheme}://127.0.0.1:{port}"
        self.started = time.monotonic()
        view.podman("run", "-d", "--name", self.name, *args)
        self.pid = int(view.podman("inspect", "--format", "{{.State.Pid}}", self.name)
                       .stdout.strip())
        self.cgroup = self.view_cgroup()

    def logs(self) -> str:
        result = self.view.podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def running(self) -> bool:
        out = self.view.podman("inspect", "--format", "{{.State.Running}}", self.name,
                               check=False).stdout.strip()
        return out == "true"

    def exec(self, args: List[str], timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(self.view.command(PODMAN + ["exec", self.name] + args),
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def exec_popen(self, args: List[str]) -> subprocess.Popen:
        return subprocess.Popen(self.view.command(PODMAN + ["exec", self.name] + args),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL)

    def interrupt(self, command: str) -> None:
        """Ctrl-C to the container's processes running `command` (the
        image has no pkill; with hostPID their pids are the host's)."""
        for pid in self.cgroup_pids():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if any(os.path.basename(a.decode(errors="replace")) == command for a in argv[:2]):
                os.kill(pid, signal.SIGINT)

    def cgroup_pids(self) -> List[int]:
        """Every process of the container (the exporter and anything exec'd)."""
        pids = []
        for dirpath, _, files in os.walk(self.cgroup):
            if "cgroup.procs" in files:
                try:
                    with open(os.path.join(dirpath, "cgroup.procs")) as f:
                        pids += [int(p) for p in f.read().split()]
                except OSError:
                    continue
        return pids

    def view_cgroup(self) -> str:
        with open(f"/proc/{self.pid}/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return os.path.join(MOUNT, line.strip()[3:].lstrip("/"))
        raise AssertionError("the exporter has no cgroup v2 path")

    def stop(self) -> int:
        self.view.podman("stop", "-t", "15", self.name, timeout=60)
        code = int(self.view.podman("inspect", "--format", "{{.State.ExitCode}}", self.name)
                   .stdout.strip())
        return code

    def remove(self) -> None:
        self.view.podman("rm", "-f", self.name, check=False, timeout=120)


def bpf_objects_of(pid: int) -> "tuple[set, set]":
    """(program ids, map ids) a process holds, from its descriptors' fdinfo
    (what bpftool's pids column reads): with hostPID, the exporter's."""
    progs, maps = set(), set()
    fdinfo = f"/proc/{pid}/fdinfo"
    for fd in os.listdir(fdinfo):
        try:
            with open(os.path.join(fdinfo, fd)) as f:
                for line in f:
                    key, _, val = line.partition(":")
                    if key == "prog_id":
                        progs.add(int(val))
                    elif key == "map_id":
                        maps.add(int(val))
        except OSError:
            continue
    return progs, maps


def status_kib(pid: int, field: str) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class RssWatch:
    """The container's resident memory (the sum over its processes: what a
    memory cgroup would charge, page cache aside), sampled every 0.1 s."""

    def __init__(self, pod: Pod):
        self.pod = pod
        self.peak_total_kib = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.wait(0.1):
            total = sum(status_kib(p, "VmRSS") or 0 for p in self.pod.cgroup_pids())
            self.peak_total_kib = max(self.peak_total_kib, total)

    def close(self):
        self.stop.set()
        self.thread.join()


def fetch(url: str, timeout: float = 10, context=None, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def collectors_up(text: str) -> Dict[str, float]:
    samples = parse(text)
    return {dict(labels)["collector"]: v for (name, labels), v in samples.items()
            if name == "bpf_exporter_collector_up"}


@pytest.fixture(scope="module")
def spec() -> PodSpec:
    return PodSpec.load()


@pytest.fixture(scope="module")
def pod(image, view, node, spec, tmp_path_factory):
    port = free_port()
    place = placement(node, view, str(tmp_path_factory.mktemp("pod")), host_port=port)
    p = Pod(view, podman_run_args(spec, image, place), port)
    try:
        watch = RssWatch(p)
        healthz = spec.probe_paths()["startupProbe"]
        assert wait_for(lambda: fetch_ok(p.url + healthz), timeout=180), p.logs()
        FIGURES["start_to_healthz_seconds"] = round(time.monotonic() - p.started, 2)
        assert wait_for(lambda: set(collectors_up(fetch(p.url + "/metrics")[1]).values())
                        == {1.0}, timeout=60), p.logs()
        FIGURES["start_to_full_scrape_seconds"] = round(time.monotonic() - p.started, 2)
        p.watch = watch
        yield p
    finally:
        if p.running():
            p.stop()
        p.remove()


def fetch_ok(url: str) -> bool:
    try:
        return fetch(url, timeout=2)[0] == 200
    except (OSError, urllib.error.URLError):
        return False


def write_figures():
    path = os.environ.get("PYTOOLS_CONTAINER_FIGURES", "/tmp/pytools-container-figures.json")
    with open(path, "w") as f:
        json.dump(FIGURES, f, indent=1, sort_keys=True)
    print("container figures:", json.dumps(FIGURES, sort_keys=True))


# -------------------------------------------------------------------- tests

def test_the_image_is_at_most_450_mb(image):
    assert FIGURES["image_bytes"] <= 450 * 10**6, FIGURES


def test_under_the_runtime_default_seccomp_every_entry_point_says_seccomp(
        image, view, node, spec, tmp_path):
    """A kubelet with seccompDefault applies the runtime's profile: the
    exporter and doctor say so in one line, with the fix, not paranoid."""
    default = PodSpec(spec.pod, json.loads(json.dumps(spec.container)))
    default.container["securityContext"]["seccompProfile"] = {"type": "RuntimeDefault"}
    args = podman_run_args(default, image, placement(node, view, str(tmp_path)))
    result = view.podman("run", "--rm", *args, check=False)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("bpf-exporter: error: seccomp refuses bpf()"), lines
    assert "Unconfined" in lines[0] and "paranoid" not in lines[0]

    i = args.index(image)
    doctor = view.podman("run", "--rm", *args[:i], "--entrypoint", "pytools", image, "doctor",
                         check=False)
    assert doctor.returncode == 1 and "Traceback" not in doctor.stderr, doctor.stderr
    (row,) = [line for line in doctor.stdout.splitlines() if line.startswith("seccomp ")]
    assert "FAIL" in row, doctor.stdout


def test_the_probes_paths_answer(pod, spec):
    for kind, path in spec.probe_paths().items():
        status, _ = fetch(pod.url + path)
        assert status == 200, (kind, path)


def test_every_pods_execs_reads_and_readahead_are_labelled_with_its_pod(pod, node, true_copy):
    path = write_file(scratch_dir(), 8 << 20)
    try:
        first = parse(fetch(pod.url + "/metrics")[1])
        workload_execs(node, true_copy)
        run_in(node.containers["web"].cgroup, zero_reads, 101)
        run_in(node.containers["batch"].cgroup, cold_read, path)
        second = parse(fetch(pod.url + "/metrics")[1])
    finally:
        os.unlink(path)
    # --execve-by pod keys execs by each pod's container.
    for key, c in node.containers.items():
        assert diff(second, first, "execve_total", **c.labels) == EXECS[key], key
    web = node.containers["web"]
    assert diff(second, first, "vfs_read_latency_seconds_count", namespace=web.namespace,
                pod=web.pod) >= 101
    batch = node.containers["batch"]
    pages = sum(value(second, "readahead_pod_pages_total", kind=k, namespace=batch.namespace,
                      pod=batch.pod) for k in ("sync", "async", "forced"))
    assert pages >= (8 << 20) // PAGE * 0.8
    # Nothing of the fake pods' is left unnamed (a "cgroup <id>" pod label).
    unnamed = [labels for (name, labels), v in second.items()
               if dict(labels).get("pod", "").startswith("cgroup ")]
    assert not unnamed, unnamed


def readme_incident_commands() -> List[List[str]]:
    """The README's `kubectl exec $POD -- CMD` lines, as argument lists."""
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    section = text.split("### During an incident on a node", 1)[1].split("\n## ", 1)[0]
    commands = []
    for line in section.splitlines():
        match = re.match(r"kubectl -n bpf-pytools exec \$POD -- (.+)$", line.strip())
        if match:
            commands.append(shlex.split(match.group(1)))
    return commands


def readme_debug_command() -> List[str]:
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    section = text.split("### During an incident on a node", 1)[1].split("\n## ", 1)[0]
    joined = section.replace("\\\n", " ")
    (line,) = [x for x in joined.splitlines() if x.strip().startswith("kubectl debug node/")]
    return shlex.split(line.split(" -- ", 1)[1])


def pod_workload(node: FakeNode, true_copy: str, path: str, stop: threading.Event) -> None:
    """Execs, reads and a cold read in the fake pods until stopped."""
    while not stop.is_set():
        workload_execs(node, true_copy)
        run_in(node.containers["web"].cgroup, file_reads, 50)
        run_in(node.containers["batch"].cgroup, cold_read, path)
        stop.wait(0.2)


def test_the_readmes_incident_commands_run_in_the_pod_and_name_pods(pod, node, true_copy):
    commands = readme_incident_commands()
    assert [c[0] for c in commands] == ["pytools", "execve-counter", "vfsread-latency",
                                        "readahead-stats", "biolatency"], commands
    path = write_file(scratch_dir(), 4 << 20)
    stop = threading.Event()
    worker = threading.Thread(target=pod_workload, args=(node, true_copy, path, stop))
    worker.start()
    outputs = {}
    try:
        for args in commands:
            result = pod.exec(args)
            assert "Traceback" not in result.stderr, (args, result.stderr)
            outputs[args[0]] = result
    finally:
        stop.set()
        worker.join()
        os.unlink(path)
    doctor = outputs.pop("pytools")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert re.search(r"^seccomp +info +disabled", doctor.stdout, re.M), doctor.stdout
    assert re.search(r"^lockdown +info +\S", doctor.stdout, re.M), doctor.stdout
    for name, result in outputs.items():
        assert result.returncode == 0, (name, result.stderr)
    web, batch = node.containers["web"], node.containers["batch"]
    for name in ("execve-counter", "vfsread-latency"):
        assert f"{web.namespace}/{web.pod}" in outputs[name].stdout, outputs[name].stdout
    assert f"{batch.namespace}/{batch.pod}" in outputs["readahead-stats"].stdout, \
        outputs["readahead-stats"].stdout
    assert "cgroup " not in outputs["execve-counter"].stdout
    assert "count" in outputs["biolatency"].stdout
    FIGURES["peak_container_rss_with_a_cli_mib"] = round(pod.watch.peak_total_kib / 1024, 1)


@pytest.mark.parametrize("command", ["runqlat", "biolatency"])
def test_the_pod_reads_kernel_structs_through_btf_without_the_nodes_headers(pod, command):
    """The image has no /lib/modules nor /usr/src of this kernel, and the
    node's (mounted under /host) hold no headers for it: the struct-reading
    raw modes attach with offsets from the kernel's BTF."""
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        pytest.skip("kernel has no BTF (/sys/kernel/btf/vmlinux)")
    release = os.uname().release
    trees = [f"/lib/modules/{release}", f"/host/lib/modules/{release}/build",
             f"/usr/src/linux-headers-{release}", f"/host/usr/src/linux-headers-{release}"]
    listing = pod.exec(["python3", "-c", "import os, sys; print([p for p in sys.argv[1:] "
                        "if os.path.exists(p)])"] + trees)
    assert listing.returncode == 0 and listing.stdout.strip() == "[]", listing
    result = pod.exec([command, "-v", "--probe", "raw_tracepoint", "1", "1"])
    assert result.returncode == 0, result.stderr
    assert "attached" in result.stderr and "structs: BTF offsets" in result.stderr, \
        result.stderr


def test_closed_files_read_in_a_pod_are_named_where_the_pod_mounts_them(pod, node):
    """A file under a host folder the pod mounts (the kubelet's logs) is
    named by its path in the pod; one outside every mount says why not."""
    mounted_dir = os.path.join(node.logs, "pods", os.listdir(os.path.join(node.logs, "pods"))[0])
    mounted = write_file(mounted_dir, 8 << 20)
    outside = write_file(scratch_dir(), 8 << 20)
    try:
        proc = pod.exec_popen(["readahead-stats", "--table", "pod", "--json", "3600"])
        assert proc.stderr.readline().startswith("Tracing"), proc.stderr.read()
        run_in(node.containers["batch"].cgroup, cold_read, mounted)
        run_in(node.containers["batch"].cgroup, cold_read, outside)
        time.sleep(0.5)
        pod.interrupt("readahead-stats")
        out, err = proc.communicate(timeout=60)
        inodes = {os.stat(mounted).st_ino: "mounted", os.stat(outside).st_ino: "outside"}
    finally:
        os.unlink(mounted)
        os.unlink(outside)
    assert proc.returncode == 0 and "Traceback" not in err, err
    (obj,) = [json.loads(line) for line in out.splitlines()]
    batch = node.containers["batch"]
    pods = {(w["namespace"], w["pod"]): w["pages"] for w in obj["workloads"]}
    assert pods[(batch.namespace, batch.pod)] >= 2 * (8 << 20) // PAGE * 0.8, pods
    files = {inodes[f["ino"]]: f for f in obj["files"] if f["ino"] in inodes}
    in_pod = "/var/log/pods" + mounted[len(os.path.join(node.logs, "pods")):]
    assert files["mounted"]["name"] == in_pod and "no_path" not in files["mounted"], files
    assert "outside this mount namespace's mounts" in files["outside"]["no_path"], files
    assert "container" in files["outside"]["no_path"]


def test_kubectl_debug_node_runs_the_readmes_command(image, view, node, true_copy):
    """kubectl debug node --profile=sysadmin: privileged, host PIDs and
    network, the node's root at /host; the README's command as given."""
    command = readme_debug_command()
    assert command[:2] == ["env", "PYTOOLS_POD_LOGS=/host/var/log"], command
    # The fake node's kubelet logs stand in for /var/log: bind them there.
    command[1] = "PYTOOLS_POD_LOGS=/host" + node.logs
    debug_pod = os.path.join(node.root, "kubepods", "besteffort", f"pod{uid(0x98)}")
    os.makedirs(debug_pod, exist_ok=True)      # removed with the node, podman's cgroups too
    proc = subprocess.Popen(view.command(PODMAN + [
        "run", "--rm", "--privileged", "--pid=host", "--network=host", "-v", "/:/host",
        f"--cgroup-parent={relative_cgroup(debug_pod)}", *RLIMITS,
        "--entrypoint", command[0], image] + command[1:]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    stop = threading.Event()
    started = threading.Event()

    def work():
        started.wait(180)
        while not stop.is_set():
            workload_execs(node, true_copy)
            stop.wait(0.2)
    worker = threading.Thread(target=work)
    worker.start()
    try:
        banner = proc.stderr.readline()
        started.set()
        out, err = proc.communicate(timeout=300)
    finally:
        stop.set()
        started.set()
        worker.join()
    assert banner.startswith("Tracing"), banner + err
    assert proc.returncode == 0 and "Traceback" not in err, err
    web = node.containers["web"]
    assert f"{web.namespace}/{web.pod}" in out, out


WEB_CONFIG = """tls_server_config:
  cert_file: /etc/bpf-exporter/srv.crt
  key_file: /etc/bpf-exporter/srv.key
  client_auth_type: VerifyClientCertIfGiven
  client_ca_file: /etc/bpf-exporter/ca.crt
basic_auth_users:
  prom: '{hash}'
"""


def test_tls_from_a_web_config_secret_under_the_localhost_seccomp_profile(
        image, view, node, spec, tmp_path):
    """The YAML's documented additions: a Secret with the web config at
    /etc/bpf-exporter, --web.config.file and the probes over HTTPS (as the
    kubelet makes them: no client certificate, no password); and the
    Localhost seccomp profile the project ships instead of Unconfined."""
    text = open(os.path.join(REPO, "deploy", "kubernetes", "base", "bpf-exporter.yaml")).read()
    for documented in ('"--web.config.file", "/etc/bpf-exporter/web.yml"', "scheme: HTTPS",
                       "VerifyClientCertIfGiven", "localhostProfile: profiles/bpf-pytools.json"):
        assert documented in text, documented
    secret = tmp_path / "secret"
    secret.mkdir()
    make_certs(secret)
    (secret / "web.yml").write_text(WEB_CONFIG.format(
        hash=bcrypt.hashpw(b"s3cret", bcrypt.gensalt(10)).decode()))
    variant = PodSpec(spec.pod, json.loads(json.dumps(spec.container)))
    variant.container["securityContext"]["seccompProfile"] = {
        "type": "Localhost", "localhostProfile": "profiles/bpf-pytools.json"}
    for kind in variant.probe_paths():
        variant.container[kind]["httpGet"]["scheme"] = "HTTPS"
    port = free_port()
    place = placement(node, view, str(tmp_path), host_port=port)
    place.extra = place.extra + ["-v", f"{secret}:/etc/bpf-exporter:ro"]
    tls = Pod(view, podman_run_args(variant, image, place,
                                    ["--collectors", "execve",
                                     "--web.config.file", "/etc/bpf-exporter/web.yml"]),
              port, scheme="https")
    try:
        context = ssl.create_default_context(cafile=str(secret / "ca.crt"))
        context.load_cert_chain(str(secret / "cli.crt"), str(secret / "cli.key"))
        kubelet = ssl.create_default_context(cafile=str(secret / "ca.crt"))  # no client cert
        for path in set(variant.probe_paths().values()):
            assert wait_for(lambda path=path: fetch_ok_tls(tls.url + path, kubelet),
                            timeout=180), \
                tls.logs()
        token = b64encode(b"prom:s3cret").decode()
        status, body = fetch(tls.url + "/metrics", context=context,
                             headers={"Authorization": f"Basic {token}"})
        assert status == 200 and 'bpf_exporter_collector_up{collector="execve"} 1.0' in body
        status, _ = fetch(tls.url + "/metrics", context=context)
        assert status == 401
        rogue = ssl.create_default_context(cafile=str(secret / "ca.crt"))
        rogue.load_cert_chain(str(secret / "rogue.crt"), str(secret / "rogue.key"))
        with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)):
            fetch(tls.url + "/metrics", context=rogue, headers={"Authorization": f"Basic {token}"})
        assert tls.stop() == 0
        assert "Traceback" not in tls.logs()
    finally:
        tls.remove()


def fetch_ok_tls(url: str, context) -> bool:
    try:
        return fetch(url, timeout=2, context=context)[0] == 200
    except (OSError, urllib.error.URLError, ssl.SSLError):
        return False


def test_rss_stays_under_the_limit_and_stop_leaves_nothing_attached(pod, spec):
    """Last: the DaemonSet's pod is stopped as the kubelet stops it."""
    limit = spec.memory_limit_bytes()
    peak = status_kib(pod.pid, "VmHWM") * 1024
    steady = status_kib(pod.pid, "VmRSS") * 1024
    FIGURES["exporter_peak_rss_mib"] = round(peak / 2**20, 1)
    FIGURES["exporter_steady_rss_mib"] = round(steady / 2**20, 1)
    pod.watch.close()
    FIGURES["peak_container_rss_mib"] = round(pod.watch.peak_total_kib / 1024, 1)
    FIGURES["memory_limit_mib"] = round(limit / 2**20, 1)
    write_figures()
    assert peak < limit and pod.watch.peak_total_kib * 1024 < limit, FIGURES
    ours, maps = bpf_objects_of(pod.pid)
    assert ours and ours <= bpf_program_ids(), "the exporter's programs are not loaded"
    assert pod.stop() == 0, pod.logs()
    assert programs_gone(ours), "BPF programs left attached after the container stopped"
    assert wait_for(lambda: not (bpf_map_ids() & maps), 5), "BPF maps left behind"
    assert not os.path.exists(f"/proc/{pod.pid}")
