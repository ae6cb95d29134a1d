"""The DaemonSet's container as a podman command line, read from
deploy/kubernetes/base/bpf-exporter.yaml by code, so that what the container
test runs is what the YAML says: a change to the YAML is what gets tested.

Pure: no podman is run here (tests/unit/test_container_pod.py checks the
mapping). Every field of the container and pod spec that podman can honour
is mapped; a field it does not know makes `podman_run_args` fail, so a new
setting in the YAML cannot pass the test unseen.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DAEMONSET = os.path.join(REPO, "deploy", "kubernetes", "base", "bpf-exporter.yaml")
SECCOMP_PROFILES = os.path.join(REPO, "deploy", "seccomp")

# What the mapping reads; anything else in these specs is an error.
# serviceAccountName and automountServiceAccountToken: false ask for no API
# token in the pod, and podman mounts none.
POD_FIELDS = {"hostPID", "tolerations", "priorityClassName", "terminationGracePeriodSeconds",
              "containers", "volumes", "serviceAccountName", "automountServiceAccountToken"}
CONTAINER_FIELDS = {"name", "image", "imagePullPolicy", "args", "ports", "securityContext",
                    "env", "resources", "startupProbe", "livenessProbe", "readinessProbe",
                    "volumeMounts"}
SECURITY_FIELDS = {"runAsUser", "runAsNonRoot", "privileged", "allowPrivilegeEscalation",
                   "readOnlyRootFilesystem", "seccompProfile", "capabilities"}


@dataclass
class PodSpec:
    pod: dict
    container: dict

    @classmethod
    def load(cls, path: str = DAEMONSET) -> "PodSpec":
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        (daemonset,) = [d for d in docs if d["kind"] == "DaemonSet"]
        pod = daemonset["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        return cls(pod, container)

    @property
    def args(self) -> List[str]:
        return list(self.container.get("args", []))

    @property
    def port(self) -> int:
        (port,) = [p["containerPort"] for p in self.container["ports"]]
        return port

    def probe_paths(self) -> Dict[str, str]:
        return {kind: self.container[kind]["httpGet"]["path"]
                for kind in ("startupProbe", "livenessProbe", "readinessProbe")
                if kind in self.container}

    def memory_limit_bytes(self) -> Optional[int]:
        text = self.container.get("resources", {}).get("limits", {}).get("memory")
        return quantity_bytes(text) if text else None

    def seccomp(self) -> dict:
        return self.container.get("securityContext", {}).get("seccompProfile") or \
            self.pod.get("securityContext", {}).get("seccompProfile") or {}


def quantity_bytes(text: str) -> int:
    """A Kubernetes memory quantity ("256Mi", "1G", "128974848") in bytes."""
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
             "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(float(text[:-len(suffix)]) * factor)
    return int(text)


@dataclass
class Placement:
    """Where the test puts the pod: the node paths that stand in for the
    YAML's hostPaths (the fake kubelet log trees), the pod's cgroup, a
    directory for each emptyDir, the host port the pod's port is published
    on, and what podman needs on this host (lowered rlimits)."""
    host_paths: Dict[str, str] = field(default_factory=dict)
    empty_dirs: Dict[str, str] = field(default_factory=dict)
    cgroup_parent: Optional[str] = None
    host_port: Optional[int] = None
    memory_limit: bool = True           # False where the cgroup has no memory controller
    seccomp_root: str = SECCOMP_PROFILES    # stands in for the kubelet's seccomp dir
    extra: List[str] = field(default_factory=list)


def podman_run_args(spec: PodSpec, image: str, place: Placement,
                    extra_args: List[str] = ()) -> List[str]:
    """`podman run` arguments (after "run") for the spec's container."""
    unknown = set(spec.pod) - POD_FIELDS
    unknown |= set(spec.container) - CONTAINER_FIELDS
    security = spec.container.get("securityContext", {})
    unknown |= set(security) - SECURITY_FIELDS
    if unknown:
        raise ValueError(f"the container test does not map {sorted(unknown)}: map it")
    out = ["--cgroupns=private"]
    if spec.pod.get("hostPID"):
        out.append("--pid=host")
    if place.cgroup_parent:
        out.append(f"--cgroup-parent={place.cgroup_parent}")
    if "runAsUser" in security:
        out.append(f"--user={security['runAsUser']}")
    if security.get("privileged"):
        out.append("--privileged")
    if security.get("allowPrivilegeEscalation") is False:
        out += ["--security-opt", "no-new-privileges"]
    if security.get("readOnlyRootFilesystem"):
        out += ["--read-only", "--read-only-tmpfs=false"]
    caps = security.get("capabilities", {})
    for cap in caps.get("drop", []):
        out.append(f"--cap-drop={cap.lower()}")
    for cap in caps.get("add", []):
        out.append(f"--cap-add=CAP_{cap.upper()}")
    out += seccomp_args(spec.seccomp(), place.seccomp_root)
    for env in spec.container.get("env", []):
        out += ["-e", f"{env['name']}={env['value']}"]
    limit = spec.memory_limit_bytes()
    if limit and place.memory_limit:
        out.append(f"--memory={limit}")
    if place.host_port:
        out += ["-p", f"127.0.0.1:{place.host_port}:{spec.port}"]
    volumes = {v["name"]: v for v in spec.pod.get("volumes", [])}
    for mount in spec.container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "hostPath" in volume:
            source = volume["hostPath"]["path"]
            source = place.host_paths.get(source, source)
        elif "emptyDir" in volume:
            source = place.empty_dirs[mount["name"]]
        else:
            raise ValueError(f"volume {mount['name']}: only hostPath and emptyDir are mapped")
        options = "ro" if mount.get("readOnly") else "rw"
        out += ["-v", f"{source}:{mount['mountPath']}:{options}"]
    return out + place.extra + [image] + spec.args + list(extra_args)


def seccomp_args(profile: dict, profiles_root: str) -> List[str]:
    """The seccompProfile as podman's --security-opt: RuntimeDefault (or
    none stated) is podman's own default, as a kubelet with seccompDefault
    applies its runtime's."""
    kind = profile.get("type", "RuntimeDefault")
    if kind == "Unconfined":
        return ["--security-opt", "seccomp=unconfined"]
    if kind == "Localhost":
        name = os.path.basename(profile["localhostProfile"])
        return ["--security-opt", f"seccomp={os.path.join(profiles_root, name)}"]
    if kind == "RuntimeDefault":
        return []
    raise ValueError(f"seccompProfile type {kind!r}")
