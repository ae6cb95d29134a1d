"""Deployment files: the Kubernetes manifests against the Kubernetes schema,
the PodMonitor and Service against the DaemonSet, the Grafana dashboard
against the metrics the exporter emits, the systemd unit through
systemd-analyze, and every command line in them through the real CLI."""

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import textwrap

import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pytools.cli import bpf_exporter
from pytools.self_metrics import SelfCollector, SelfStats
from pytools.exporter_config import DEFAULT_PORT
from pytools.hist import NATIVE, Log2Hist
from pytools.runstats import Cost
from pytools.privileges import LEAST_CAPABILITIES
from pytools.tools.biolatency.snapshot import BioSnapshot
from pytools.tools.execve.snapshot import ExecveSnapshot
from pytools.tools.file_opens.output import OpensSnapshot
from pytools.tools.oomkill.output import OomSnapshot
from pytools.tools.readahead.snapshot import Counts, ReadaheadSnapshot, Usage
from pytools.tools.runqlat.snapshot import RunqSnapshot
from pytools.tools.tcp.output import Counts as TcpCounts, TcpSnapshot
from pytools.tools.vfs_read.snapshot import LatencySnapshot

from .sources import (ExecveCollector, FixedSource, VfsReadCollector,
                      tool_collector)

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
DEPLOY = os.path.join(ROOT, "deploy")
K8S_VERSION = "1.30.0"


COMPONENTS = ("web-config", "runqlat", "prometheus-operator")
README = os.path.join(ROOT, "README.md")


def load_yaml(name):
    """A file of the kustomize base (deploy/kubernetes/base) or, with a
    directory, of a component."""
    path = name if "/" in name else os.path.join("base", name)
    with open(os.path.join(DEPLOY, "kubernetes", path)) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def kustomize(directory):
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) is missing"
    result = subprocess.run([kubectl, "kustomize", directory], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def rendered(*components):
    """What an overlay of the base with these components applies."""
    with tempfile.TemporaryDirectory() as overlay:
        k8s = os.path.join(DEPLOY, "kubernetes")
        with open(os.path.join(overlay, "kustomization.yaml"), "w") as f:
            yaml.safe_dump({"apiVersion": "kustomize.config.k8s.io/v1beta1",
                            "kind": "Kustomization",
                            "resources": [os.path.relpath(os.path.join(k8s, "base"), overlay)],
                            "components": [os.path.relpath(os.path.join(k8s, "components", c),
                                                           overlay) for c in components]}, f)
        return kustomize(overlay)


def container_of(docs):
    (container,) = by_kind(docs)["DaemonSet"]["spec"]["template"]["spec"]["containers"]
    return container


def by_kind(docs):
    return {doc["kind"]: doc for doc in docs}


def cli_accepts(args):
    """The exporter's own parser accepts these arguments (no BPF is loaded)."""
    bpf_exporter.make_context("bpf-exporter", list(args))


# ---------------------------------------------------------------- Kubernetes

@pytest.mark.parametrize("doc", load_yaml("bpf-exporter.yaml"), ids=lambda d: d["kind"])
def test_manifests_validate_against_the_kubernetes_schema(doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("components", [(), *[(c,) for c in COMPONENTS], COMPONENTS],
                         ids=lambda c: "+".join(c) or "base")
def test_the_base_and_each_component_render_and_validate(components):
    """The base alone, with each component and with all of them renders with
    kustomize, every Kubernetes object in it passes the schema, and the
    exporter's own parser accepts its arguments."""
    docs = rendered(*components)
    for doc in docs:
        if not doc["apiVersion"].startswith("monitoring.coreos.com/"):   # the operator's CRDs
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == \
        {by_kind(docs)["Namespace"]["metadata"]["name"]}
    cli_accepts(container_of(docs)["args"])


def test_components_add_what_they_say_and_only_that():
    base = rendered()
    web = rendered("web-config")
    container = container_of(web)
    args = container["args"]
    assert args[:len(container_of(base)["args"])] == container_of(base)["args"]
    assert args[args.index("--web.config.file") + 1] == "/etc/bpf-exporter/web.yml"
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/etc/bpf-exporter"]
    assert mount["readOnly"] is True
    volumes = {v["name"]: v for v in by_kind(web)["DaemonSet"]["spec"]["template"]["spec"]
               ["volumes"]}
    assert volumes[mount["name"]]["secret"] == {"secretName": "bpf-exporter-web-config"}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"

    args = container_of(rendered("runqlat"))["args"]
    context = bpf_exporter.make_context("bpf-exporter", list(args))
    # every default collector, and runqlat
    from pytools.tools import TOOLS
    assert list(context.params["collectors"]) == \
        [t.name for t in TOOLS if t.exporter_default] + ["runqlat"]
    assert args[args.index("--runqlat-by") + 1] == "pod"

    operator = by_kind(rendered("prometheus-operator"))
    assert {"PodMonitor", "PrometheusRule"} <= set(operator)
    assert set(operator) - {"PodMonitor", "PrometheusRule"} == set(by_kind(base))


def test_the_exporter_has_an_account_with_no_api_token_and_a_stated_rollout():
    docs = by_kind(rendered())
    account, daemonset = docs["ServiceAccount"], docs["DaemonSet"]
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert account["automountServiceAccountToken"] is False
    assert pod["automountServiceAccountToken"] is False
    rollout = daemonset["spec"]["updateStrategy"]
    assert rollout["type"] == "RollingUpdate" and rollout["rollingUpdate"]["maxUnavailable"]
    resources = container_of(docs.values())["resources"]
    assert resources["requests"]["memory"] and resources["limits"]["memory"]


def test_readmes_overlay_renders_with_the_image_pinned_by_digest():
    """README's example overlay, placed beside a checkout as it says, pins
    every container to the digest and labels everything for the operator."""
    with open(README) as f:
        text = f.read()
    block = text.split("<!-- overlay:begin -->")[1].split("<!-- overlay:end -->")[0]
    body = textwrap.dedent(block.split("```yaml\n", 1)[1].rsplit("```", 1)[0])
    with tempfile.TemporaryDirectory() as top:
        os.symlink(os.path.abspath(ROOT), os.path.join(top, "bpf-pytools"))
        os.mkdir(os.path.join(top, "my-cluster"))
        with open(os.path.join(top, "my-cluster", "kustomization.yaml"), "w") as f:
            f.write(body)
        docs = kustomize(os.path.join(top, "my-cluster"))
    wanted = yaml.safe_load(body)
    (image,) = wanted["images"]
    assert container_of(docs)["image"] == f"{image['newName']}@{image['digest']}"
    assert {"PodMonitor", "PrometheusRule", "DaemonSet"} <= {d["kind"] for d in docs}
    assert all(d["metadata"]["labels"]["release"] == "kube-prometheus-stack" for d in docs)
    cli_accepts(container_of(docs)["args"])


def test_the_schema_check_rejects_a_misspelt_field():
    daemonset = by_kind(load_yaml("bpf-exporter.yaml"))["DaemonSet"]
    daemonset["spec"]["template"]["spec"]["hostPid"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemonset, K8S_VERSION, strict=True)


def test_daemonset_runs_the_exporter_with_what_bcc_needs():
    docs = by_kind(load_yaml("bpf-exporter.yaml"))
    pod = docs["DaemonSet"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["hostPID"] is True
    security = container["securityContext"]
    assert security["privileged"] is False and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["capabilities"]["add"] == [c.upper() for c in LEAST_CAPABILITIES]
    assert security["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/sys/kernel/tracing" in mounts and "/sys/kernel/debug" not in mounts
    # The node's header trees go under /host, never over the image's own
    # fallback (tests/kernel/test_headers_kernel.py runs that pod shape).
    assert {"/host/lib/modules", "/host/usr/src"} <= mounts
    assert not {"/lib/modules", "/usr/src", "/var/lib/bpf-pytools"} & mounts
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["PYTOOLS_HOST_ROOT"] == "/host"
    # Pods by name: the kubelet's log directories, read-only, and by pod by default.
    logs = {m["mountPath"]: m for m in container["volumeMounts"]
            if m["mountPath"].startswith("/var/log/")}
    assert set(logs) == {"/var/log/pods", "/var/log/containers"}
    assert all(m["readOnly"] for m in logs.values())
    args = container["args"]
    for option in ("--execve-by", "--vfs-read-by", "--readahead-by"):
        assert args[args.index(option) + 1] == "pod"
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"]
    assert port == DEFAULT_PORT and f":{port}" in container["args"]
    cli_accepts(container["args"])
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}


def test_network_policy_lets_only_the_monitoring_namespace_reach_the_port():
    docs = by_kind(load_yaml("bpf-exporter.yaml"))
    policy, pod = docs["NetworkPolicy"], docs["DaemonSet"]["spec"]["template"]
    assert policy["metadata"]["namespace"] == docs["DaemonSet"]["metadata"]["namespace"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": DEFAULT_PORT}]


def test_service_and_podmonitor_select_the_daemonset_pods():
    docs = by_kind(load_yaml("bpf-exporter.yaml"))
    pod_labels = docs["DaemonSet"]["spec"]["template"]["metadata"]["labels"]
    namespace = docs["DaemonSet"]["metadata"]["namespace"]
    service = docs["Service"]
    assert service["metadata"]["namespace"] == namespace == docs["Namespace"]["metadata"]["name"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"

    (monitor,) = load_yaml("components/prometheus-operator/podmonitor.yaml")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["kind"] == "PodMonitor"
    assert monitor["metadata"]["namespace"] == namespace
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["metrics"]
    assert monitor["spec"]["podMetricsEndpoints"][0]["path"] == "/metrics"


# ---------------------------------------------------------------- Dockerfile

def test_dockerfile_installs_what_setup_installs_and_runs_the_exporter():
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        lines = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    assert lines[0].startswith("FROM debian:12")
    assert any(line.startswith("RUN /src/bpf-pytools/scripts/setup --image") for line in lines)
    expose = [line for line in lines if line.startswith("EXPOSE")]
    assert expose == [f"EXPOSE {DEFAULT_PORT}"]
    entry = json.loads(next(line for line in lines if line.startswith("ENTRYPOINT"))[10:])
    assert entry == ["/opt/bpf-pytools/venv/bin/bpf-exporter"]
    cli_accepts(json.loads(next(line for line in lines if line.startswith("CMD"))[3:]))


# ------------------------------------------------------------------- systemd

UNIT = os.path.join(DEPLOY, "systemd", "bpf-exporter.service")


def test_systemd_unit_passes_systemd_analyze():
    result = subprocess.run(["systemd-analyze", "verify", UNIT], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


def unit_settings():
    with open(UNIT) as f:
        return dict(line.strip().split("=", 1) for line in f
                    if "=" in line and not line.startswith("#"))


def test_systemd_unit_runs_with_the_least_capabilities_sandboxed():
    unit = unit_settings()
    caps = sorted(f"CAP_{c.upper()}" for c in LEAST_CAPABILITIES)
    assert sorted(unit["AmbientCapabilities"].split()) == caps
    assert sorted(unit["CapabilityBoundingSet"].split()) == caps
    assert unit["DynamicUser"] == "yes" and unit["NoNewPrivileges"] == "yes"
    assert unit["ProtectSystem"] == "strict" and unit["LimitNOFILE"] == "8192"
    assert unit["ExecReload"] == "/bin/kill -HUP $MAINPID"
    # systemd's own score of the sandbox: 0 (locked down) to 10 (exposed).
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", UNIT],
                            capture_output=True, text=True, timeout=60)
    level = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert level and float(level.group(1)) <= 3.0, result.stdout[-500:]


def test_systemd_unit_command_line_is_accepted_by_the_cli():
    with open(UNIT) as f:
        exec_start = next(line.split("=", 1)[1] for line in f if line.startswith("ExecStart="))
    argv = shlex.split(exec_start)
    assert argv[0] == "/opt/bpf-pytools/venv/bin/bpf-exporter"
    cli_accepts(argv[1:])


# ------------------------------------------------------------------- Grafana

class FixedCosts:
    """SelfCost's interface, a fixed cost for every collector's program."""

    def __init__(self, collectors):
        self.collectors = collectors

    def costs(self):
        return {(c.name, "prog"): Cost(10, 1000) for c in self.collectors}

    def duty(self):
        return 1 / 60


def emitted_metric_names():
    """Every sample name the exporter's collectors produce, with their
    default labels and by pod (--execve-by/--vfs-read-by/--readahead-by pod)."""
    stats = SelfStats()
    hist = Log2Hist.from_values([1000, 5000], unit_name=NATIVE)
    pages = Log2Hist.from_values([32], 1, "pages")
    default = [
        ExecveCollector(FixedSource(ExecveSnapshot("comm", {"sh": 1}, 1)), stats, "k", 10,
                        "comm"),
        VfsReadCollector(FixedSource(LatencySnapshot(hist)), stats, "k", 10),
        tool_collector("biolatency", FixedSource(BioSnapshot({(8 << 20, "read"): hist})),
                       stats, "k", 10),
        tool_collector("readahead", FixedSource(ReadaheadSnapshot(  # --readahead-efficiency
            {(8 << 20, "sync"): Counts(1, 1, 1, 32)}, {}, pages,
            usage={8 << 20: Usage(32, 16, 8, 0)})), stats, "k", 10, efficiency=True),
        tool_collector("runqlat", FixedSource(RunqSnapshot(hist)), stats, "k", 10),
    ]
    default.append(SelfCollector(stats, FixedCosts(list(default))))
    by_pod = [   # cgroup ids, named (or not) from this machine's cgroup2 mount
        ExecveCollector(FixedSource(ExecveSnapshot("pod", {1: 1}, 1)), stats, "k", 10, "pod"),
        tool_collector("vfs_read", FixedSource(LatencySnapshot(hist, per_cgroup={1: hist})),
                       stats, "k", 10, by="pod"),
        tool_collector("readahead", FixedSource(ReadaheadSnapshot(
            {(8 << 20, "sync"): Counts(1, 1, 1, 32)}, {}, pages,
            cgroups={(1, "sync"): Counts(1, 1, 1, 32)})), stats, "k", 10, by="pod"),
        tool_collector("runqlat", FixedSource(RunqSnapshot(hist, per_key={1: hist})),
                       stats, "k", 10, by="pod"),
        tool_collector("file_opens", FixedSource(OpensSnapshot("cgroup", {(1, b"", 2): 1})),
                       stats, "k", 10),
        tool_collector("oomkill", FixedSource(OomSnapshot({(1, 0, "", "memcg", True): 1})),
                       stats, "k", 10),
        tool_collector("tcp", FixedSource(TcpSnapshot({(1, 2, bytes(16), 80, 1):
                                                       TcpCounts(3, 1, 1, 1)})),
                       stats, "k", 10)]
    names = set()
    for collectors in (default, by_pod):
        registry = CollectorRegistry(auto_describe=False)
        for collector in collectors:
            registry.register(collector)
        text = generate_latest(registry).decode()
        families = list(text_string_to_metric_families(text))
        names |= {s.name for f in families for s in f.samples}
        # a Prometheus with native histograms keeps each one as one series
        # under the family's own name (pytools.exposition_protobuf)
        names |= {f.name for f in families if f.type == "histogram"}
    return names


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
                "or", "unless", "offset"}


def metric_names_in(expr):
    expr = re.sub(r'"[^"]*"', "", expr)                 # label values, $variables
    expr = re.sub(r"\{[^}]*\}", "", expr)               # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)              # ranges
    expr = re.sub(r"\boffset\s+-?[0-9a-z]+", "", expr)    # offsets
    expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)   # grouping labels
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        rest = expr[match.end():].lstrip()
        if match.group() not in PROMQL_WORDS and not rest.startswith("("):
            names.add(match.group())
    return names


def dashboard():
    with open(os.path.join(DEPLOY, "grafana", "bpf-pytools-dashboard.json")) as f:
        return json.load(f)


def test_metric_name_extraction():
    assert metric_names_in('histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="y"}[5m])))') \
        == {"a_bucket"}
    assert metric_names_in("sum(rate(a_sum[1m])) / sum(rate(b_count[1m]))") == {"a_sum", "b_count"}


def recorded_names():
    with open(os.path.join(DEPLOY, "prometheus", "rules.yml")) as f:
        return {rule["record"] for group in yaml.safe_load(f)["groups"]
                for rule in group["rules"] if "record" in rule}


def test_dashboard_references_only_metrics_the_exporter_emits_or_the_rules_record():
    emitted = emitted_metric_names() | recorded_names()
    used = set()
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            names = metric_names_in(target["expr"])
            assert names, target["expr"]
            used |= names
    assert used <= emitted, used - emitted
    for query in (v.get("definition", "") for v in dashboard()["templating"]["list"]):
        match = re.search(r"label_values\((\w+)", query)
        assert match is None or match.group(1) in emitted


def test_dashboard_has_the_panels_an_sre_asks_for():
    panels = {p["title"]: p for p in dashboard()["panels"]}
    exprs = {title: " ".join(t["expr"] for t in p["targets"]) for title, p in panels.items()}
    # Follows --execve-by: every key label kept (the DaemonSet's is pod).
    assert "sum without (instance, job) (rate(execve_total" in \
        exprs["Execs per second by what --execve-by counts"]
    # ... and of those the execs that failed, apart (issue 29)
    assert "rate(execve_failed_total" in exprs["Execs per second by what --execve-by counts"]
    assert "namespace_pod:execve_failed:rate5m" in exprs["Execs per second by pod"]
    assert panels["vfs_read latency heatmap"]["type"] == "heatmap"
    # latency panels: classic buckets, or the native histogram where there are none
    assert "sum by (le) (rate(vfs_read_latency_seconds_bucket" in exprs["vfs_read latency heatmap"]
    assert " or sum(rate(vfs_read_latency_seconds{" in exprs["vfs_read latency heatmap"]
    assert "histogram_quantile(0.99" in exprs["vfs_read latency p50 / p99 (estimates)"]
    assert "histogram_count(sum(rate(vfs_read_latency_seconds{" in exprs["Reads per second"]
    assert "sum by (kind) (rate(readahead_pages_total" in \
        exprs["Readahead pages per second by kind"]
    assert panels["Block I/O latency heatmap"]["type"] == "heatmap"
    # the per-pod and per-disk panels read what the rules record
    assert "instance_device:block_io_latency_seconds:p99_rate5m{" in \
        exprs["Block I/O latency p99 by device (estimate)"]
    assert "namespace_pod:execve:rate5m{" in exprs["Execs per second by pod"]
    assert "namespace_pod:vfs_read_latency_seconds:p99_rate5m{" in \
        exprs["vfs_read latency p99 by pod (estimate)"]
    assert "sum by (node, collector) (rate(bpf_exporter_program_run_seconds_total{" in \
        exprs["CPU of the BPF programs per node"]
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    # Nodes by name, not by the exporter pod's address: a restarted pod
    # (a new IP, a new instance) stays on its node's line.
    assert variables["node"]["definition"] == "label_values(bpf_exporter_collector_up, node)"
    assert "instance" not in variables and "$instance" not in json.dumps(dashboard())
    monitor = load_yaml("components/prometheus-operator/podmonitor.yaml")[0]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"} in \
        endpoint["relabelings"]
    assert "label_values(execve_total" in variables["namespace"]["definition"]
    assert "label_values(execve_total" in variables["pod"]["definition"]
    ids = [p["id"] for p in dashboard()["panels"]]
    assert len(ids) == len(set(ids))
