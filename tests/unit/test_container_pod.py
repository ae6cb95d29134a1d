"""tests/container/pod.py: the DaemonSet YAML as a podman command line.
The container test runs what this mapping makes, so it must carry every
setting of the YAML and refuse one it does not know."""

import json

import pytest

from tests.container.pod import Placement, PodSpec, podman_run_args, quantity_bytes


@pytest.fixture
def spec():
    return PodSpec.load()


def args_of(spec, **kw):
    return podman_run_args(spec, "img:1", Placement(empty_dirs={"tmp": "/scratch"}, **kw))


def test_every_security_setting_of_the_yaml_reaches_podman(spec):
    args = args_of(spec)
    security = spec.container["securityContext"]
    assert "--pid=host" in args and "--cgroupns=private" in args
    assert f"--user={security['runAsUser']}" in args
    assert ["--security-opt", "no-new-privileges"] == args[args.index("no-new-privileges") - 1:
                                                         args.index("no-new-privileges") + 1]
    assert "--read-only" in args and "--read-only-tmpfs=false" in args
    assert "--cap-drop=all" in args
    assert {a for a in args if a.startswith("--cap-add=")} == {
        f"--cap-add=CAP_{c}" for c in security["capabilities"]["add"]}
    assert "--privileged" not in args
    # The YAML states Unconfined: the pod starts under any kubelet default.
    assert spec.seccomp() == {"type": "Unconfined"}
    assert "seccomp=unconfined" in args


def test_volumes_env_args_and_the_memory_limit(spec):
    args = args_of(spec, host_paths={"/var/log/pods": "/fake/pods"}, host_port=12345)
    volumes = [args[i + 1] for i, a in enumerate(args) if a == "-v"]
    assert "/sys/fs/cgroup:/host/sys/fs/cgroup:ro" in volumes
    assert "/sys/kernel/tracing:/sys/kernel/tracing:rw" in volumes
    assert "/fake/pods:/var/log/pods:ro" in volumes          # the placement's stand-in
    assert "/scratch:/tmp:rw" in volumes                     # the emptyDir
    env = [args[i + 1] for i, a in enumerate(args) if a == "-e"]
    assert "PYTOOLS_HOST_ROOT=/host" in env
    assert f"--memory={256 << 20}" in args
    assert "127.0.0.1:12345:19435" in args
    i = args.index("img:1")
    assert args[i + 1:] == spec.args
    assert "--memory=" not in " ".join(args_of(spec, memory_limit=False))


def test_seccomp_profiles_map_to_podman_options(spec, tmp_path):
    for profile, expected in (
            ({"type": "RuntimeDefault"}, []),
            ({"type": "Localhost", "localhostProfile": "profiles/bpf-pytools.json"},
             ["--security-opt", f"seccomp={tmp_path}/bpf-pytools.json"])):
        variant = PodSpec(spec.pod, json.loads(json.dumps(spec.container)))
        variant.container["securityContext"]["seccompProfile"] = profile
        args = podman_run_args(variant, "img:1", Placement(empty_dirs={"tmp": "/s"},
                                                            seccomp_root=str(tmp_path)))
        got = [a for a in args if "seccomp" in a]
        assert got == [a for a in expected if "seccomp" in a]


def test_a_setting_the_mapping_does_not_know_fails(spec):
    for where, key in ((spec.container, "lifecycle"), (spec.pod, "hostNetwork"),
                       (spec.container["securityContext"], "procMount")):
        variant_pod = json.loads(json.dumps(spec.pod))
        variant = PodSpec(variant_pod, variant_pod["containers"][0])
        target = {id(spec.container): variant.container, id(spec.pod): variant.pod,
                  id(spec.container["securityContext"]):
                  variant.container["securityContext"]}[id(where)]
        target[key] = {}
        with pytest.raises(ValueError, match=key):
            args_of(variant)


def test_quantities():
    assert quantity_bytes("256Mi") == 256 << 20
    assert quantity_bytes("1G") == 10**9
    assert quantity_bytes("128974848") == 128974848
