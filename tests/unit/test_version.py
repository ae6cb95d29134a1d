"""One version, written once in pyproject.toml: every command's --version,
pytools.__version__, the image the DaemonSet runs and the CHANGELOG's newest
release all say it."""

import os
import re
import tomllib

import pytest
import yaml
from click.testing import CliRunner

from pytools import cli
from pytools.version import build_info, build_info_family, version, version_line

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def pyproject_version():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]["version"]


def test_the_installed_version_is_pyprojects():
    import pytools
    assert version() == pyproject_version() == pytools.__version__


@pytest.mark.parametrize("name", sorted(cli.COMMANDS) + ["bpf-exporter", "pytools"])
def test_every_command_prints_its_version(name):
    command = {"bpf-exporter": cli.bpf_exporter, "pytools": cli.main}.get(name) or \
        cli.COMMANDS[name]
    result = CliRunner().invoke(command, ["--version"], prog_name=command.name)
    assert result.exit_code == 0, result.output
    (line,) = result.output.splitlines()
    assert line.startswith(f"{command.name} {pyproject_version()} (bcc ")
    assert f"kernel {os.uname().release}" in line


def test_version_line_and_build_info_family():
    info = {"version": "9.8.7", "bcc_version": "0.26.0", "python_version": "3.11.2",
            "kernel": "6.1.0-27-amd64", "arch": "aarch64"}
    assert version_line("runqlat", info) == \
        "runqlat 9.8.7 (bcc 0.26.0, Python 3.11.2, kernel 6.1.0-27-amd64 aarch64)"
    family = build_info_family(info)
    assert family.name == "bpf_pytools_build_info"
    (sample,) = family.samples
    assert sample.labels == info and sample.value == 1.0
    assert set(build_info()) == set(info)


def test_the_daemonset_runs_this_version():
    with open(os.path.join(ROOT, "deploy", "kubernetes", "base", "bpf-exporter.yaml")) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    (daemonset,) = [d for d in docs if d["kind"] == "DaemonSet"]
    (container,) = daemonset["spec"]["template"]["spec"]["containers"]
    assert container["image"].rsplit(":", 1)[1] == pyproject_version()
    with open(os.path.join(ROOT, "README.md")) as f:
        tags = re.findall(r"--image=bpf-pytools:(\S+)", f.read())
    assert tags and set(tags) == {pyproject_version()}


def test_the_changelog_names_this_version_first():
    with open(os.path.join(ROOT, "CHANGELOG.md")) as f:
        releases = re.findall(r"^## \[?(\d+\.\d+\.\d+)", f.read(), re.M)
    assert releases and releases[0] == pyproject_version()


def test_the_image_is_labelled_with_the_version_build_image_passes():
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        dockerfile = f.read()
    assert 'org.opencontainers.image.version="$VERSION"' in dockerfile
    assert re.search(r"^ARG VERSION", dockerfile, re.M)
    with open(os.path.join(ROOT, "scripts", "build-image")) as f:
        script = f.read()
    assert '--build-arg "VERSION=$version"' in script
    assert "version=$(sed -n 's/^version = \"\\(.*\\)\"/\\1/p' \"$repo/pyproject.toml\")" in script
