"""Debian's Prometheus as the kernel tests run it, and the dashboards' queries
asked of it."""

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import List, Optional

from .exporter import free_port


RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules.yml"


@contextlib.contextmanager
def running_prometheus(scrape_config: str, native: bool = False, rules: bool = False):
    """Debian's Prometheus scraping every second with this scrape_configs
    entry (YAML, indented as a list item), its API on a free loopback port,
    which is yielded; stopped and its data removed on exit. native: with
    native histograms on; rules: evaluating deploy/prometheus/rules.yml."""
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus missing: scripts/test installs Debian's prometheus package"
    d = Path(tempfile.mkdtemp(prefix="pytools-prom-"))
    (d / "prometheus.yml").write_text("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                                      + (f"rule_files: ['{RULES}']\n" if rules else "")
                                      + "scrape_configs:\n" + scrape_config)
    port = free_port()
    proc = subprocess.Popen([prometheus, f"--config.file={d}/prometheus.yml",
                             f"--storage.tsdb.path={d}/data",
                             f"--web.listen-address=127.0.0.1:{port}"]
                            + (["--enable-feature=native-histograms"] if native else []),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(d)


def prometheus_query(port: int, query: str, at: Optional[float] = None) -> list:
    params = {"query": query, **({"time": f"{at:.3f}"} if at is not None else {})}
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)["data"]["result"]


def wait_for_query(port, query, check, timeout=60.0):
    deadline = time.monotonic() + timeout
    result = None
    while time.monotonic() < deadline:
        try:
            result = prometheus_query(port, query)
            if check(result):
                return result
        except (urllib.error.URLError, ConnectionError, KeyError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"{query}: still {result} after {timeout} s")


def dashboard_exprs() -> List[str]:
    root = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "grafana")
    with open(os.path.join(root, "bpf-pytools-dashboard.json")) as f:
        board = json.load(f)
    return [t["expr"] for p in board["panels"] for t in p["targets"]]


GROUPING = re.compile(r"\b(by|without) \(([^)]*)\)")


def grouping_labels(expr: str) -> List[str]:
    """The labels a query's `sum by (...)` keeps (le aside): a series of the
    panel must carry one of them, or it is an unlabelled line."""
    labels = []
    for kind, names in GROUPING.findall(expr):
        if kind == "by":
            labels += [n.strip() for n in names.split(",") if n.strip() not in ("le", "")]
    return labels


def assert_dashboard_answers(port: int, pod: str) -> None:
    """Each dashboard expression ($variables as All), evaluated by the
    Prometheus on `port`: none fails, every panel answers, each series with
    the labels its panel draws by, and the by-pod panels show `pod`."""
    for expr in dashboard_exprs():
        query = (expr.replace("$__rate_interval", "10s").replace("$node", ".*")
                 .replace("$namespace", ".*").replace("$pod", ".*"))
        result = prometheus_query(port, query)          # raises on a PromQL error
        assert result, f"no series under the DaemonSet's arguments: {expr}"
        by = grouping_labels(expr)
        for series in result:
            labels = {k: v for k, v in series["metric"].items() if k not in ("le",)}
            if by:
                assert any(labels.get(name) for name in by), (expr, series)
        if "by (namespace, pod" in expr or "namespace_pod:" in expr:
            pods = {r["metric"].get("pod") for r in result}
            assert pod in pods, (expr, result)
        if "without (instance, job) (rate(execve_total" in expr:
            # Keyed as --execve-by says: by pod here (execs outside any
            # pod are the one series with no label left).
            pods = {r["metric"].get("pod") for r in result}
            assert pod in pods, (expr, result)
            # (node: the scrape's own label, on every series)
            assert all(r["metric"].get("pod") for r in result
                       if set(r["metric"]) - {"node"}), result
        if "program_run_seconds" in expr:       # the programs' CPU, per collector
            busy = {r["metric"]["collector"] for r in result if float(r["value"][1]) > 0}
            assert {"execve", "vfs_read"} <= busy, (expr, result)
