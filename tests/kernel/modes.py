"""Which probe modes this kernel offers, for tests that need one.

A test for a mode the kernel lacks skips, saying why, unless the run
requires that mode (PYTOOLS_REQUIRE_MODES=kprobe,fentry,...), where the same
condition is a failure: the VM run on a stock kernel requires kprobe and
fentry, the host run (6.18) requires tracepoint. Features that are not
probe modes (readahead_efficiency) are required the same way."""

import os
from typing import Optional

import pytest

from pytools import kernel, loader


def mode_problem(mode: str, function: str = "vfs_read",
                 tracepoint: Optional[str] = None) -> Optional[str]:
    tracefs = loader.prepare().tracefs
    if mode == "kprobe":
        return kernel.kprobes_supported(tracefs)
    if mode == "fentry":
        if not kernel.btf_available():
            return "kernel has no BTF"
        return kernel.fentry_load_problem(function)
    if mode == "raw_tracepoint":
        tracepoint = tracepoint or "raw_syscalls:sys_enter"
    if mode in ("tracepoint", "raw_tracepoint") and tracepoint \
            and not kernel.tracepoint_exists(tracefs, tracepoint):
        return f"no tracepoint {tracepoint}"
    return None


def required_modes():
    return {m for m in os.environ.get("PYTOOLS_REQUIRE_MODES", "").split(",") if m}


def need_mode(mode: str, function: str = "vfs_read", tracepoint: Optional[str] = None) -> None:
    need_feature(mode, mode_problem(mode, function, tracepoint))


def need_feature(name: str, problem: Optional[str]) -> None:
    """Skip (or fail, where this run requires `name`) when problem is set."""
    if problem is None:
        return
    if name in required_modes():
        pytest.fail(f"{name} required on this run but unavailable: {problem}")
    pytest.skip(f"kernel lacks {name}: {problem}")


def readahead_efficiency_problem() -> Optional[str]:
    from pytools.tools.readahead.efficiency import kernel_efficiency_feature
    return kernel_efficiency_feature().problem


def scratch_dir() -> str:
    """A directory on a block-device filesystem (readahead needs a disk):
    PYTOOLS_SCRATCH_DIR (the VM mounts an ext4 disk there), else /var/tmp."""
    return os.environ.get("PYTOOLS_SCRATCH_DIR", "/var/tmp")
