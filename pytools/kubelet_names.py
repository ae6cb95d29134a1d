"""Pod and container names from the kubelet's log directories
(/var/log/pods/<namespace>_<pod>_<uid>, /var/log/containers/...): what a
cgroup path's pod UID and container id are called (pytools.workloads)."""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Optional, Tuple

log = logging.getLogger("pytools")
# Where the kubelet writes pods/ and containers/ (bpf-exporter --pod-logs).
DEFAULT_POD_LOGS = "/var/log"
HEX_ID = r"[0-9a-f]{64}"
UID = r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}"


@dataclass(frozen=True)
class PodName:
    namespace: str
    pod: str


def parse_pod_dir(name: str) -> Optional[Tuple[str, PodName]]:
    """(uid, PodName) from a /var/log/pods entry "<namespace>_<pod>_<uid>".
    A namespace is a DNS label (no "_") and a UID has none: the pod name is
    what lies between, whatever it holds."""
    namespace, sep, rest = name.partition("_")
    pod, sep2, uid = rest.rpartition("_")
    if not (sep and sep2 and namespace and pod and re.fullmatch(UID, uid)):
        return None
    return uid.replace("_", "-"), PodName(namespace, pod)


def parse_container_log(name: str) -> Optional[Tuple[str, str, PodName]]:
    """(container id, container name, PodName) from a /var/log/containers
    entry "<pod>_<namespace>_<container>-<64 hex id>.log"."""
    if not name.endswith(".log"):
        return None
    stem = name[:-len(".log")]
    head, sep, cid = stem.rpartition("-")
    if not sep or not re.fullmatch(HEX_ID, cid):
        return None
    pod_ns, sep, container = head.rpartition("_")
    pod, sep2, namespace = pod_ns.rpartition("_")
    if not (sep and sep2 and pod and namespace and container):
        return None
    return cid, container, PodName(namespace, pod)


class KubeletNames:
    """Pod and container names from the kubelet's log directories, reread
    on a miss at most every `refresh` seconds. An unreadable or missing
    directory is one warning, then UIDs and ids are shown."""

    def __init__(self, root: str = DEFAULT_POD_LOGS, refresh: float = 2.0,
                 clock: Callable[[], float] = time.monotonic,
                 warn: Callable[[str], None] = log.warning):
        self.pods_dir = os.path.join(root, "pods")
        self.containers_dir = os.path.join(root, "containers")
        self.refresh = refresh
        self.clock = clock
        self.warn = warn
        self.pods: Dict[str, PodName] = {}
        self.containers: Dict[str, str] = {}
        self._read_at: Optional[float] = None
        self._warned = False

    def _listdir(self, path: str) -> Iterable[str]:
        try:
            return os.listdir(path)
        except OSError as e:
            if not self._warned:
                self._warned = True
                self.warn(f"cannot read {path} ({e.strerror}): pods and containers are "
                          "shown by UID and id")
            return ()

    def reread(self) -> None:
        self._read_at = self.clock()
        pods = {}
        for entry in self._listdir(self.pods_dir):
            pod = parse_pod_dir(entry)
            if pod:
                pods[pod[0]] = pod[1]
        containers = {}
        for entry in self._listdir(self.containers_dir):
            container = parse_container_log(entry)
            if container:
                containers[container[0]] = container[1]
        self.pods, self.containers = pods, containers

    def _due(self) -> bool:
        return self._read_at is None or self.clock() - self._read_at >= self.refresh

    def pod(self, uid: str) -> Optional[PodName]:
        if uid not in self.pods and self._due():
            self.reread()
        return self.pods.get(uid)

    def container(self, cid: str) -> Optional[str]:
        if cid not in self.containers and self._due():
            self.reread()
        return self.containers.get(cid)
