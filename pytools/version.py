"""What build this is: the version (pyproject.toml's, the one place it is
written, read back from the installed distribution's metadata), and the
BCC, Python, kernel and architecture it runs with. `--version` on every
command prints it; the exporter serves it as bpf_pytools_build_info, as
node_exporter serves node_exporter_build_info."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Dict, List

DISTRIBUTION = "bpf-pytools"


def version() -> str:
    """pyproject.toml's version, as installed (editable or wheel)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def bcc_version() -> str:
    """The bcc module's version, or why there is none. Imports bcc (slow,
    ~0.1 s): only for --version and the exporter's start."""
    try:
        # bcc is imported only to load: --help, --version and non-root runs work without it.
        import bcc
    except ImportError:
        return "not installed"
    return getattr(bcc, "__version__", "unknown")


def build_info() -> Dict[str, str]:
    return {"version": version(), "bcc_version": bcc_version(),
            "python_version": platform.python_version(), "kernel": os.uname().release,
            "arch": platform.machine()}


def version_line(command: str, info: Dict[str, str]) -> str:
    """`bpf-exporter 0.2.0 (bcc 0.26.0, Python 3.11.2, kernel 6.1.0-27-amd64 x86_64)`"""
    return (f"{command} {info['version']} (bcc {info['bcc_version']}, Python "
            f"{info['python_version']}, kernel {info['kernel']} {info['arch']})")


def build_info_family(info: Dict[str, str]):
    # prometheus_client is the exporter's alone: the commands start without it.
    from prometheus_client.core import GaugeMetricFamily
    family = GaugeMetricFamily(
        "bpf_pytools_build_info", "A metric with a constant '1' value labelled by the "
        "version of bpf-pytools, the BCC, Python and kernel it runs with, and the architecture.",
        labels=sorted(info))
    family.add_metric([info[k] for k in sorted(info)], 1.0)
    return family


class BuildInfoCollector:
    """bpf_pytools_build_info, computed once at start."""

    def __init__(self, info: Dict[str, str]):
        self.family = build_info_family(info)

    def describe(self) -> List:
        return [self.family]

    def collect(self) -> List:
        return [self.family]
