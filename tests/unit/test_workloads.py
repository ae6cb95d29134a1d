"""pytools.workloads: cgroup paths as pods, containers and services, from
fixtures shaped like real kubelet (both cgroup drivers; containerd, CRI-O,
docker; guaranteed, burstable, besteffort; the pause container) and systemd
paths; the kubelet's log directory names; the caches."""

import os

import pytest

from pytools.kubelet_names import KubeletNames, PodName, parse_container_log, parse_pod_dir
from pytools.workloads import (V1_ONLY_NOTE, CgroupPaths, Workload, Workloads, cgroup2_mount,
                               describe, identify, is_hierarchy_root, labels)

UID = "8a3e4c2b-9f1d-4e6a-b7c8-1234567890ab"
U_ = UID.replace("-", "_")
CID = "3f4e" * 16
SANDBOX = "ab12" * 16


@pytest.mark.parametrize("path, uid, qos, cid, runtime", [
    # systemd driver
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{U_}.slice/"
     f"cri-containerd-{CID}.scope", UID, "burstable", CID, "containerd"),
    (f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{U_}.slice/"
     f"crio-{CID}.scope", UID, "besteffort", CID, "crio"),
    (f"/kubepods.slice/kubepods-pod{U_}.slice/docker-{CID}.scope",
     UID, "guaranteed", CID, "docker"),
    (f"/kubepods.slice/kubepods-pod{U_}.slice/cri-containerd-{SANDBOX}.scope",   # pause
     UID, "guaranteed", SANDBOX, "containerd"),
    # cgroupfs driver
    (f"/kubepods/burstable/pod{UID}/{CID}", UID, "burstable", CID, None),
    (f"/kubepods/besteffort/pod{UID}/{CID}", UID, "besteffort", CID, None),
    (f"/kubepods/pod{UID}/{CID}", UID, "guaranteed", CID, None),
    # a kubelet under a prefix (kind), and the pod's own cgroup
    (f"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/"
     f"kubelet-kubepods-burstable-pod{U_}.slice/cri-containerd-{CID}.scope",
     UID, "burstable", CID, "containerd"),
    (f"/kubepods/burstable/pod{UID}", UID, "burstable", None, None),
])
def test_kubernetes_paths(path, uid, qos, cid, runtime):
    w = identify(path)
    assert (w.pod_uid, w.qos, w.container_id, w.runtime) == (uid, qos, cid, runtime)
    assert w.in_pod and w.service_label() == ""


def test_crio_conmon_is_the_pods_not_a_container_of_its_own():
    w = identify(f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{U_}.slice/"
                 f"crio-conmon-{CID}.scope")
    assert w.pod_uid == UID and w.container == "conmon"


@pytest.mark.parametrize("path, service, cid, runtime", [
    ("/system.slice/nginx.service", "nginx.service", None, None),
    ("/user.slice/user-1000.slice/session-3.scope", "session-3.scope", None, None),
    ("/user.slice/user-1000.slice/user@1000.service/app.slice/app-term.scope",
     "app-term.scope", None, None),
    (f"/system.slice/docker-{CID}.scope", None, CID, "docker"),
    (f"/docker/{CID}", None, CID, "docker"),
    (f"/machine.slice/libpod-{CID}.scope", None, CID, "podman"),
    (f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CID}.scope",
     None, CID, "podman"),
])
def test_paths_outside_kubernetes(path, service, cid, runtime):
    w = identify(path)
    assert not w.in_pod and (w.service, w.container_id, w.runtime) == (service, cid, runtime)
    assert w.service_label() == (service or f"{runtime}-{cid[:12]}")


@pytest.mark.parametrize("path", [
    "/", "", "/foo/bar", "/kubepods.slice/notapod.slice", "/kubepods/burstable/podXYZ/abc",
    "/kubepods/burstable", f"/system.slice/docker-{CID[:20]}.scope", "//kubepods//",
    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice",
])
def test_junk_paths_are_not_pods_and_still_say_something(path):
    w = identify(path)
    assert not w.in_pod
    assert w.service_label()                     # never nothing


def test_labels_and_display_by_pod_container_and_service():
    w = Workload(f"/kubepods/pod{UID}/{CID}", pod_uid=UID, container_id=CID,
                 namespace="shop", pod="cart-7d9f", container="app")
    assert labels(w, "pod") == ("shop", "cart-7d9f", "")
    assert labels(w, "container") == ("shop", "cart-7d9f", "app")
    assert labels(w, "service") == ("kubepods",)
    assert describe(labels(w, "container"), "container") == "shop/cart-7d9f/app"
    # Unnamed: the UID and the short container id, never nothing.
    bare = identify(f"/kubepods/pod{UID}/{CID}")
    assert labels(bare, "container") == ("", UID, CID[:12])
    host = identify("/system.slice/cron.service")
    assert labels(host, "pod") == ("", "", "") and describe(labels(host, "pod"), "pod")
    assert labels(host, "service") == ("cron.service",)


@pytest.mark.parametrize("entry, expected", [
    (f"default_web-0_{UID}", (UID, PodName("default", "web-0"))),
    (f"kube-system_coredns-5d78c9869d-x2x7q_{UID}",
     (UID, PodName("kube-system", "coredns-5d78c9869d-x2x7q"))),
    (f"ns_pod_with_underscores_{UID}", (UID, PodName("ns", "pod_with_underscores"))),
    ("default_web-0_not-a-uid", None), ("nounderscore", None), (f"_pod_{UID}", None),
])
def test_pod_log_directories(entry, expected):
    assert parse_pod_dir(entry) == expected


@pytest.mark.parametrize("entry, expected", [
    (f"web-0_default_nginx-{CID}.log", (CID, "nginx", PodName("default", "web-0"))),
    (f"coredns-5d78c9869d-x2x7q_kube-system_coredns-{CID}.log",
     (CID, "coredns", PodName("kube-system", "coredns-5d78c9869d-x2x7q"))),
    (f"my_pod_my-ns_side-car-{CID}.log", (CID, "side-car", PodName("my-ns", "my_pod"))),
    (f"web-0_default_nginx-{CID[:10]}.log", None), (f"web-0_default_nginx-{CID}", None),
    (f"web-0_nginx-{CID}.log", None), ("README", None),
])
def test_container_log_links(entry, expected):
    assert parse_container_log(entry) == expected


def test_cgroup2_mount_on_hybrid_pure_and_v1_hosts():
    def whole(_):
        return True
    hybrid = ("tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n"
              "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n")
    assert cgroup2_mount(hybrid, whole) == "/sys/fs/cgroup/unified"
    assert cgroup2_mount("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n", whole) == "/sys/fs/cgroup"
    assert cgroup2_mount("cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n", whole) is None


def test_in_a_container_the_hosts_whole_tree_wins_over_its_own_cgroup_namespace():
    # A pod: its own /sys/fs/cgroup (a cgroup namespace: one cgroup) and the
    # host's tree mounted read-only under /host.
    mounts = ("cgroup2 /sys/fs/cgroup cgroup2 ro,nosuid 0 0\n"
              "cgroup2 /host/sys/fs/cgroup cgroup2 ro,nosuid 0 0\n")
    assert cgroup2_mount(mounts, lambda m: m == "/host/sys/fs/cgroup") == "/host/sys/fs/cgroup"
    # Without the host's tree: its own, the only one there is (with a warning).
    only = "cgroup2 /sys/fs/cgroup cgroup2 ro 0 0\n"
    assert cgroup2_mount(only, lambda m: False) == "/sys/fs/cgroup"
    # A hybrid host's tree mounted recursively: the cgroup2 under it.
    hybrid_host = ("cgroup2 /sys/fs/cgroup cgroup2 ro 0 0\n"
                   "tmpfs /host/sys/fs/cgroup tmpfs ro 0 0\n"
                   "cgroup2 /host/sys/fs/cgroup/unified cgroup2 ro 0 0\n")
    assert cgroup2_mount(hybrid_host, lambda m: m.startswith("/host")) == \
        "/host/sys/fs/cgroup/unified"


def test_only_the_root_cgroup_lacks_cgroup_events(tmp_path):
    (tmp_path / "cgroup.procs").write_text("")
    assert is_hierarchy_root(str(tmp_path))
    (tmp_path / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    assert not is_hierarchy_root(str(tmp_path))


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_kubelet_names_reread_on_a_miss_at_most_every_refresh(tmp_path):
    (tmp_path / "pods").mkdir()
    (tmp_path / "containers").mkdir()
    clock, warnings = Clock(), []
    names = KubeletNames(str(tmp_path), refresh=2, clock=clock, warn=warnings.append)
    assert names.pod(UID) is None
    (tmp_path / "pods" / f"shop_cart_{UID}").mkdir()
    (tmp_path / "containers" / f"cart_shop_app-{CID}.log").symlink_to("/nonexistent")
    assert names.pod(UID) is None                     # rate-limited
    clock.now = 2.5
    assert names.pod(UID) == PodName("shop", "cart") and names.container(CID) == "app"
    assert not warnings


def test_unreadable_log_directories_warn_once_and_leave_uids(tmp_path):
    warnings = []
    names = KubeletNames(str(tmp_path / "missing"), refresh=0, warn=warnings.append)
    assert names.pod(UID) is None and names.container(CID) is None
    assert names.pod(UID) is None
    assert len(warnings) == 1 and "shown by UID" in warnings[0]


def test_cgroup_paths_walks_on_a_miss_and_bounds_what_it_forgets(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    clock = Clock()
    paths = CgroupPaths(str(tmp_path), refresh=1, max_missing=3, clock=clock)
    b = os.stat(tmp_path / "a" / "b").st_ino
    assert paths.path(b) == "/a/b" and paths.path(os.stat(tmp_path).st_ino) == "/"
    (tmp_path / "c").mkdir()
    c = os.stat(tmp_path / "c").st_ino
    assert paths.path(c) is None                      # walked less than 1 s ago
    for missing in range(10**9, 10**9 + 10):
        paths.path(missing)
    assert len(paths.missing) == 3
    clock.now = 5
    assert paths.path(c) == "/c" and paths.walks == 2
    (tmp_path / "c").rmdir()
    assert not paths.alive(c) and paths.alive(b)


def test_workloads_name_a_pod_from_cgroup_id_to_names(tmp_path):
    mount = tmp_path / "cg"
    pod_dir = mount / "kubepods" / "burstable" / f"pod{UID}" / CID
    pod_dir.mkdir(parents=True)
    logs = tmp_path / "log"
    (logs / "pods" / f"shop_cart_{UID}").mkdir(parents=True)
    (logs / "containers").mkdir()
    (logs / "containers" / f"cart_shop_app-{CID}.log").symlink_to("/x")
    w = Workloads(str(mount), str(logs), refresh=0).of(os.stat(pod_dir).st_ino)
    assert labels(w, "container") == ("shop", "cart", "app")
    gone = Workloads(str(mount), str(logs), refresh=0).of(12345678)
    assert gone.path == "cgroup 12345678" and labels(gone, "service") == ("cgroup 12345678",)
    assert labels(gone, "container") == ("", "cgroup 12345678", "")
    assert describe(labels(gone, "pod"), "pod") == "cgroup 12345678"


def test_a_cgroup_v1_only_host_gets_one_note_and_ids():
    notes = []
    workloads = Workloads("", "/nonexistent", warn=notes.append)
    assert notes == [V1_ONLY_NOTE] and "needs cgroup v2" in notes[0]
    assert labels(workloads.of(42), "pod") == ("", "cgroup 42", "")


def test_a_cgroup_namespace_view_gets_one_note_naming_the_mount_to_add(tmp_path):
    (tmp_path / "cgroup.events").write_text("populated 1\n")    # not the root cgroup
    notes = []
    Workloads(str(tmp_path), "/nonexistent", warn=notes.append)
    assert len(notes) == 1 and "cgroup namespace" in notes[0]
    assert "/host/sys/fs/cgroup" in notes[0] and str(tmp_path) in notes[0]
