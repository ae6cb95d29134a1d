"""deploy/prometheus/rules.yml: promtool checks it and runs its unit tests
(tests/rules), the PrometheusRule is what scripts/prometheus-rule makes of
it, every metric it reads is one the exporter emits, and every alert has a
runbook in the README."""

import os
import re
import shutil
import subprocess
import sys

import yaml

from .metric_names import emitted_metric_names, metric_names_in

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
RULES = os.path.join(ROOT, "deploy", "prometheus", "rules.yml")
OPERATOR = os.path.join(ROOT, "deploy", "kubernetes", "components", "prometheus-operator",
                        "prometheusrule.yaml")


def promtool(*args):
    tool = shutil.which("promtool")
    assert tool, "promtool missing: scripts/test installs Debian's prometheus package"
    return subprocess.run([tool, *args], capture_output=True, text=True,
                          cwd=os.path.join(ROOT, "tests", "rules"))


def rules():
    with open(RULES) as f:
        return [rule for group in yaml.safe_load(f)["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules():
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass():
    result = promtool("test", "rules", "bpf-pytools.test.yml")
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing():
    with open(os.path.join(ROOT, "tests", "rules", "bpf-pytools.test.yml")) as f:
        tests = yaml.safe_load(f)["tests"]
    fired = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])
             if case["exp_alerts"]}
    assert fired == {r["alert"] for r in rules() if "alert" in r}


def test_the_prometheusrule_is_generated_from_the_rules():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "prometheus-rule"),
                             "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    with open(OPERATOR) as f:
        doc = yaml.safe_load(f)
    with open(RULES) as f:
        assert doc["spec"]["groups"] == yaml.safe_load(f)["groups"]
    assert (doc["apiVersion"], doc["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")


def test_rules_read_only_what_the_exporter_emits_or_other_rules_record():
    emitted = emitted_metric_names() | {"up"}
    recorded = {r["record"] for r in rules() if "record" in r}
    for rule in rules():
        names = metric_names_in(rule["expr"])
        assert names and names <= emitted | recorded, (rule, names - emitted - recorded)


def test_every_alert_has_a_runbook_in_the_readme():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    section = readme[readme.index("\n### Alerts"):]
    section = section[:section.index("\n## ", 1)] if "\n## " in section[1:] else section
    for rule in rules():
        if "alert" in rule:
            assert re.search(rf"^\| `{rule['alert']}` \|", section, re.M), rule["alert"]
            assert rule["annotations"]["runbook"] == f"README.md#alerts: {rule['alert']}"
