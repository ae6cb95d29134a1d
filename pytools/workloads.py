"""Who did it: cgroup ids as pods, containers and services.

The kernel side only ever records `bpf_get_current_cgroup_id()` (a cgroup
v2 id: the inode number of the cgroup's directory in the cgroup2 mount).
Everything else happens here, off the hot path, cached:

    cgroup id --(CgroupPaths: a walk of the cgroup2 mount)--> cgroup path
    cgroup path --(identify: pure parsing)--> Workload (pod uid, container id, service)
    pod uid, container id --(KubeletNames: /var/log/pods, /var/log/containers)--> names

No API server, no credentials: the kubelet's log directories name every pod
(`<namespace>_<pod>_<uid>/`) and container (`<pod>_<namespace>_<container>-<id>.log`)
on the node. Where a name cannot be found the UID or container id is shown,
never nothing. Caches refresh on a miss, at most once per `refresh` seconds,
and remember a bounded number of misses.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .deltas import Summable
from .kubelet_names import DEFAULT_POD_LOGS, HEX_ID, UID, KubeletNames

log = logging.getLogger("pytools")

# ------------------------------------------------------------- cgroup mount

def cgroup2_mounts(mounts_text: str) -> List[str]:
    """Every cgroup2 mount point in /proc/mounts text, in mount order."""
    return [fields[1].replace("\\040", " ") for fields in
            (line.split() for line in mounts_text.splitlines())
            if len(fields) >= 3 and fields[2] == "cgroup2"]


def is_hierarchy_root(mount: str) -> bool:
    """Whether a cgroup2 mount shows the whole hierarchy. Only the root
    cgroup lacks cgroup.events; a container's own /sys/fs/cgroup, mounted
    in its cgroup namespace, shows just its own cgroup and has one."""
    return not os.path.exists(os.path.join(mount, "cgroup.events"))


def cgroup2_mount(mounts_text: str, is_root: Callable[[str], bool] = is_hierarchy_root
                  ) -> Optional[str]:
    """The cgroup2 mount to name cgroup ids with: one that shows the whole
    hierarchy (a container: the host's tree mounted under /host), preferring
    /sys/fs/cgroup (pure v2) and /sys/fs/cgroup/unified (hybrid); else the
    first cgroup2 mount (only part of the hierarchy); None on v1 only."""
    found = cgroup2_mounts(mounts_text)
    whole = [m for m in found if is_root(m)]
    for preferred in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if preferred in whole:
            return preferred
    if whole:
        return whole[0]
    return found[0] if found else None


def find_cgroup2() -> Optional[str]:
    try:
        with open("/proc/mounts") as f:
            return cgroup2_mount(f.read())
    except OSError:
        return None


V1_ONLY_NOTE = ("pod, container and service attribution needs cgroup v2 (no cgroup2 "
                "mount here): showing cgroup ids")
NAMESPACED_NOTE = ("{mount} shows only this container's own cgroups (a cgroup namespace): "
                   "other pods are shown by cgroup id; mount the host's /sys/fs/cgroup "
                   "read-only (the DaemonSet mounts it at /host/sys/fs/cgroup)")


# --------------------------------------------------------- path -> identity

@dataclass(frozen=True)
class Workload:
    """What a cgroup path says about the processes in it."""
    path: str                           # relative to the cgroup2 root, "/..."
    pod_uid: Optional[str] = None       # Kubernetes pod UID (dashes, not underscores)
    qos: Optional[str] = None           # guaranteed, burstable, besteffort
    container_id: Optional[str] = None  # runtime container id (hex)
    runtime: Optional[str] = None       # containerd, crio, docker, podman
    service: Optional[str] = None       # systemd unit (service, scope) outside pods
    namespace: Optional[str] = None     # filled from the kubelet's log directories
    pod: Optional[str] = None
    container: Optional[str] = None
    resolved: bool = True               # False: the cgroup id named no cgroup

    @property
    def in_pod(self) -> bool:
        return self.pod_uid is not None

    def pod_label(self) -> Tuple[str, str]:
        """(namespace, pod) as labels: the pod UID where its name is unknown."""
        if not self.in_pod:
            return ("", "")
        return (self.namespace or "", self.pod or self.pod_uid or "")

    def container_label(self) -> str:
        if self.container:
            return self.container
        if self.container_id:
            return self.container_id[:12]
        return ""

    def service_label(self) -> str:
        """The systemd unit or runtime container outside Kubernetes; the
        cgroup path where neither applies; "/" for the root cgroup."""
        if self.in_pod:
            return ""
        if self.service:
            return self.service
        if self.container_id:
            return f"{self.runtime or 'container'}-{self.container_id[:12]}"
        return self.path or "/"


QOS = ("burstable", "besteffort", "guaranteed")
# systemd driver: kubepods[-<qos>]-pod<uid with _>.slice; cgroupfs: pod<uid>
# (kind and others prefix the kubelet's cgroup root: kubelet-kubepods.slice)
KUBEPODS = re.compile(r"^(?:[\w.-]*-)?kubepods(?:\.slice)?$")
POD_SLICE = re.compile(rf"^(?:[\w.-]*-)?kubepods(?:-(burstable|besteffort))?-pod({UID})\.slice$")
POD_DIR = re.compile(rf"^pod({UID})$")
# A container: "<runtime>-<id>.scope" (systemd driver) or "<id>" (cgroupfs);
# crio's and podman's conmon monitors have their own scopes.
CONTAINER_SCOPE = re.compile(rf"^(cri-containerd|crio|docker|libpod)-({HEX_ID})\.scope$")
CONMON_SCOPE = re.compile(rf"^(crio|libpod)-conmon-({HEX_ID})\.scope$")
CONTAINER_DIR = re.compile(rf"^({HEX_ID})$")
RUNTIMES = {"cri-containerd": "containerd", "crio": "crio", "docker": "docker",
            "libpod": "podman"}
UNIT = re.compile(r"^[^/]+\.(service|scope)$")


def identify(path: str) -> Workload:
    """Parse a cgroup path (relative to the cgroup2 root) into a Workload.
    Kubernetes under both cgroup drivers and any prefix (kind, k3s), with
    containerd, CRI-O or docker; systemd units; docker and podman."""
    parts = [p for p in path.split("/") if p]
    norm = "/" + "/".join(parts)
    for i, part in enumerate(parts):
        if not KUBEPODS.match(part):
            continue
        rest = parts[i + 1:]
        qos, uid, after = None, None, []
        for j, item in enumerate(rest):
            slice_match = POD_SLICE.match(item)
            dir_match = POD_DIR.match(item)
            match = slice_match or dir_match
            if match:
                uid = match.group(2) if slice_match else match.group(1)
                qos = (slice_match.group(1) if slice_match else None) or \
                    next((q for q in rest[:j] if q in QOS), None)
                if qos is None:
                    qos = next((q for q in QOS for r in rest[:j] if r.endswith(f"-{q}.slice")),
                               None)
                after = rest[j + 1:]
                break
        if uid is None:
            return Workload(norm, qos=next((q for q in QOS if q in "".join(rest)), None))
        workload = Workload(norm, pod_uid=uid.replace("_", "-"), qos=qos or "guaranteed")
        if after:
            scope = CONTAINER_SCOPE.match(after[0])
            conmon = CONMON_SCOPE.match(after[0])
            plain = CONTAINER_DIR.match(after[0])
            if scope:
                workload = replace(workload, container_id=scope.group(2),
                                   runtime=RUNTIMES[scope.group(1)])
            elif conmon:
                workload = replace(workload, container_id=conmon.group(2),
                                   runtime=RUNTIMES[conmon.group(1)], container="conmon")
            elif plain:
                workload = replace(workload, container_id=plain.group(1))
        return workload
    # Outside Kubernetes: a runtime's container, else the deepest systemd unit.
    for part in reversed(parts):
        scope = CONTAINER_SCOPE.match(part)
        if scope:
            return Workload(norm, container_id=scope.group(2), runtime=RUNTIMES[scope.group(1)])
    if len(parts) >= 2 and parts[-2] == "docker" and CONTAINER_DIR.match(parts[-1]):
        return Workload(norm, container_id=parts[-1], runtime="docker")
    for part in reversed(parts):
        if UNIT.match(part):
            return Workload(norm, service=part)
    return Workload(norm)


def remember(cache: "OrderedDict", key, value, limit: int) -> None:
    """Put key in a bounded cache, the oldest out first past `limit`."""
    cache[key] = value
    while len(cache) > limit:
        cache.popitem(last=False)


# ---------------------------------------------------------- id -> path

class CgroupPaths:
    """cgroup v2 id -> path relative to the mount, by walking the mount on a
    miss (at most every `refresh` seconds). Ids not found are remembered
    (bounded) until the next walk."""

    def __init__(self, mount: Optional[str], refresh: float = 1.0, max_missing: int = 4096,
                 clock: Callable[[], float] = time.monotonic):
        self.mount = mount
        self.refresh = refresh
        self.clock = clock
        self.paths: Dict[int, str] = {}
        self.missing: "OrderedDict[int, None]" = OrderedDict()
        self.max_missing = max_missing
        self._walked_at: Optional[float] = None
        self.walks = 0

    def walk(self) -> None:
        self._walked_at = self.clock()
        self.walks += 1
        paths: Dict[int, str] = {}
        if self.mount:
            root_len = len(self.mount.rstrip("/"))
            stack = [self.mount]
            while stack:
                top = stack.pop()
                try:
                    with os.scandir(top) as entries:
                        for entry in entries:
                            if entry.is_dir(follow_symlinks=False):
                                stack.append(entry.path)
                    paths[os.stat(top).st_ino] = top[root_len:] or "/"
                except OSError:
                    continue      # removed while walking
        self.paths = paths
        self.missing.clear()

    def path(self, cgroup_id: int) -> Optional[str]:
        if cgroup_id in self.paths:
            return self.paths[cgroup_id]
        if cgroup_id in self.missing:
            return None
        if self._walked_at is None or self.clock() - self._walked_at >= self.refresh:
            self.walk()
            if cgroup_id in self.paths:
                return self.paths[cgroup_id]
        remember(self.missing, cgroup_id, None, self.max_missing)
        return None

    def alive(self, cgroup_id: int) -> bool:
        """Whether the cgroup still exists (its directory is there)."""
        path = self.paths.get(cgroup_id)
        if path is None or not self.mount:
            return self.path(cgroup_id) is not None
        return os.path.isdir(os.path.join(self.mount, path.lstrip("/")))


def pod_log_root() -> str:
    """Where the kubelet's pods/ and containers/ log directories are:
    $PYTOOLS_POD_LOGS, else /var/log (bpf-exporter: --pod-logs)."""
    return os.environ.get("PYTOOLS_POD_LOGS") or DEFAULT_POD_LOGS


class Workloads:
    """The decoders together: cgroup id -> Workload with names. A workload
    whose every name is known is remembered (bounded, least recently used
    first out); one still missing a name is looked up again next time."""

    def __init__(self, mount: Optional[str] = None, log_root: str = DEFAULT_POD_LOGS,
                 refresh: float = 1.0, max_cached: int = 16384,
                 warn: Callable[[str], None] = log.warning):
        self.mount = find_cgroup2() if mount is None else mount
        if not self.mount:
            warn(V1_ONLY_NOTE)          # the tool still runs, by cgroup id
        elif not is_hierarchy_root(self.mount):
            warn(NAMESPACED_NOTE.format(mount=self.mount))
        self.cgroups = CgroupPaths(self.mount, refresh)
        self.names = KubeletNames(log_root, max(refresh, 2.0))
        self._known: "OrderedDict[int, Workload]" = OrderedDict()
        self._max_cached = max_cached

    def of(self, cgroup_id: int) -> Workload:
        known = self._known.get(cgroup_id)
        if known is not None:
            self._known.move_to_end(cgroup_id)
            return known
        workload = self._resolve(cgroup_id)
        complete = workload.resolved and (not workload.in_pod or (
            workload.pod and (workload.container or not workload.container_id)))
        if complete:
            remember(self._known, cgroup_id, workload, self._max_cached)
        return workload

    def _resolve(self, cgroup_id: int) -> Workload:
        path = self.cgroups.path(cgroup_id)
        if path is None:
            # Gone between the event and the read (or never seen): by id.
            return Workload(f"cgroup {cgroup_id}", resolved=False)
        workload = identify(path)
        if workload.pod_uid is not None:        # in a pod
            named = self.names.pod(workload.pod_uid)
            if named:
                workload = replace(workload, namespace=named.namespace, pod=named.pod)
        if workload.container_id and not workload.container:
            name = self.names.container(workload.container_id)
            if name:
                workload = replace(workload, container=name)
        return workload


# What a tool can group by, and the labels each gives.
# The --by values of the tools whose keys are cgroup ids named as a pod or a
# container here (execve also groups by service: GROUPINGS).
WORKLOAD_KINDS = ("pod", "container")

GROUPINGS = {
    "pod": ("namespace", "pod", "container"),
    "container": ("namespace", "pod", "container"),
    "service": ("service",),
}


def labels(workload: Workload, by: str) -> Tuple[str, ...]:
    """The label values of a workload grouped `by` pod, container or
    service. by="pod": the pod (container left empty); "container": each
    container of each pod; "service": outside pods, the systemd unit or
    runtime container (pods' processes are grouped under "kubepods")."""
    if by == "service":
        return ("kubepods",) if workload.in_pod else (workload.service_label(),)
    if not workload.resolved:     # gone before it was read: by id, in the pod's place
        return ("", workload.path, "")
    namespace, pod = workload.pod_label()
    if not workload.in_pod:
        return ("", "", "")
    return (namespace, pod, workload.container_label() if by == "container" else "")


def group_by_workload(values: Mapping[int, Summable], workloads: "Workloads",
                      by: str) -> Dict[Tuple[str, ...], Any]:
    """Values keyed by cgroup id summed per workload label (see labels)."""
    out: Dict[Tuple[str, ...], Any] = {}
    for cgroup_id, value in values.items():
        key = labels(workloads.of(cgroup_id), by)
        out[key] = out[key] + value if key in out else value
    return out


def describe(values: Tuple[str, ...], by: str) -> str:
    """One display string: "namespace/pod/container", or the service."""
    if by == "service":
        return values[0]
    return "/".join(v for v in values if v) or "[not in a pod]"
