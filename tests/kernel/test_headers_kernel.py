"""Where BCC's headers come from, for real: each tool and the exporter in a
private mount namespace shaped like a pod on a node.

- Node without headers: empty directories over /usr/src and /lib/modules
  (what the pod sees); the image's self-contained generic tree compiles.
- Nothing at all: the generic tree hidden too; one line and exit 1.
- Node headers mounted under a host root (the DaemonSet's /host): chosen
  before the generic tree. Where this kernel has its own headers package
  (the VM's stock kernel) those are bound there, and biolatency's struct
  reads attach through them.
- Node without headers, kernel with BTF: the struct-reading modes attach
  with offsets from /sys/kernel/btf/vmlinux."""

import os
import shlex
import signal
import subprocess
import tempfile
import urllib.request

import pytest

from pytools import headers
from pytools.tools import TOOLS

from .exporter import free_port
from .modes import need_feature
from .workload import tool_command

RELEASE = os.uname().release
HIDE_NODE = ["/usr/src", "/lib/modules"]
HIDE_ALL = HIDE_NODE + [os.path.dirname(headers.PREPARED_HEADERS)]


def namespaced(command, hide, binds=()):
    """sh -c that makes the mounts in a private mount namespace, then execs
    command: binds (source, target) first, then an empty tmpfs over each
    hidden path that exists (one that does not, e.g. the generic headers on
    a root that never ran scripts/setup, is hidden already)."""
    steps = [f"mount --bind {shlex.quote(s)} {shlex.quote(t)}" for s, t in binds]
    steps += [f"mount -t tmpfs none {shlex.quote(p)}" for p in hide if os.path.isdir(p)]
    steps.append("exec " + " ".join(shlex.quote(c) for c in command))
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", " && ".join(steps)]


def child_env(host_root="/nonexistent"):
    """No inherited BCC_KERNEL_SOURCE (this test process's loader set one)."""
    env = {k: v for k, v in os.environ.items() if k != "BCC_KERNEL_SOURCE"}
    env["PYTOOLS_HOST_ROOT"] = host_root
    return env


def run(command, hide, binds=(), host_root="/nonexistent"):
    return subprocess.run(namespaced(command, hide, binds), cwd="/", capture_output=True,
                          text=True, timeout=180, env=child_env(host_root))


def exporter_scrape(hide, binds=(), host_root="/nonexistent"):
    """(exit code, stderr, /metrics text or None) of an exporter started in
    the namespace, scraped once, then stopped with SIGTERM."""
    port = free_port()
    # One collector: each tool's own compile is tested above; this is the
    # exporter's start through the same lookup (a compile less in the VM).
    proc = subprocess.Popen(
        namespaced(tool_command("bpf-exporter") + ["--listen", f"127.0.0.1:{port}",
                                                   "--collectors", "execve"], hide,
                   binds), cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=child_env(host_root))
    lines, body = [], None
    try:
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("Serving"):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                            timeout=30) as response:
                    body = response.read().decode()
                proc.send_signal(signal.SIGTERM)
                break
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, "".join(lines) + rest, body


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t.command)
def test_each_tool_compiles_through_the_fallback_on_a_headerless_node(tool):
    result = run(tool_command(tool.command) + ["-v", "1", "1"], HIDE_NODE)
    assert result.returncode == 0, result.stderr
    assert f"headers: {os.path.realpath(headers.PREPARED_HEADERS)}" in result.stderr
    assert result.stdout.strip()


def test_the_exporter_serves_through_the_fallback_on_a_headerless_node():
    code, err, body = exporter_scrape(HIDE_NODE)
    assert code == 0 and "Traceback" not in err, err
    assert 'bpf_exporter_collector_up{collector="execve"} 1.0' in body


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t.command)
def test_without_any_headers_each_tool_says_so_in_one_line(tool):
    result = run(tool_command(tool.command) + ["1", "1"], HIDE_ALL)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [result.stderr.strip()], result.stderr
    assert f"{tool.command}: error: no kernel headers found for kernel {RELEASE}" \
        in result.stderr and "/host" in result.stderr


def test_without_any_headers_the_exporter_says_so_in_one_line():
    code, err, body = exporter_scrape(HIDE_ALL)
    assert code == 1 and body is None
    assert err.strip().splitlines() == [
        line for line in err.strip().splitlines() if "no kernel headers found" in line], err


@pytest.fixture
def host_root():
    """A host root holding this machine's /usr/src (bound in the namespace)
    and lib/modules/<release>: the real one where this kernel has a
    headers package, else links to the generic tree's halves (which only
    the tracepoint-only tools may trust)."""
    root = tempfile.mkdtemp(prefix="pytools-host-")
    modules = os.path.join(root, "lib", "modules", RELEASE)
    os.makedirs(os.path.join(root, "usr", "src"))
    os.makedirs(modules)
    exact = os.path.isdir(f"/lib/modules/{RELEASE}/build/include")
    if exact:
        for name in ("build", "source"):
            if os.path.lexists(f"/lib/modules/{RELEASE}/{name}"):
                os.symlink(os.readlink(f"/lib/modules/{RELEASE}/{name}"),
                           os.path.join(modules, name))
    else:
        flavour = os.path.basename(os.path.realpath(headers.PREPARED_HEADERS))
        common = flavour.rsplit("-", 1)[0] + "-common"
        assert os.path.isdir(f"/usr/src/{common}"), "generic headers package missing"
        os.symlink(f"/usr/src/{flavour}", os.path.join(modules, "build"))
        os.symlink(f"/usr/src/{common}", os.path.join(modules, "source"))
    yield root, exact
    subprocess.run(["rm", "-rf", root])


def test_node_headers_under_the_host_root_come_first(host_root):
    root, _ = host_root
    binds = [("/usr/src", f"{root}/usr/src")]
    result = run(tool_command("execve-counter") + ["-v", "1", "1"], HIDE_ALL, binds, root)
    assert result.returncode == 0, result.stderr
    assert f"(the node's headers for {RELEASE}, under {root})" in result.stderr
    code, err, body = exporter_scrape(HIDE_ALL, binds, root)
    assert code == 0 and 'bpf_exporter_collector_up{collector="execve"} 1.0' in body, err
    assert not [p for p in os.listdir(tempfile.gettempdir())
                if p.startswith("bpf-pytools-headers-")], "merged trees left behind"


def test_struct_reads_attach_through_exact_node_headers_under_the_host_root(host_root):
    root, exact = host_root
    need_feature("exact_headers", None if exact else
                 f"no headers package for kernel {RELEASE} on this machine to bind as "
                 "the node's")
    binds = [("/usr/src", f"{root}/usr/src")]
    result = run(tool_command("biolatency") + ["-v", "--probe", "raw_tracepoint", "1", "1"],
                 HIDE_ALL, binds, root)
    assert result.returncode == 0, result.stderr
    assert "probe raw_tracepoint" in result.stderr and "attached" in result.stderr
    assert "structs: kernel headers (the node's headers" in result.stderr, result.stderr


@pytest.mark.parametrize("command", ["biolatency", "runqlat"])
def test_on_a_headerless_node_struct_reads_attach_through_btf(command):
    """What a pod on a node without headers gets: the generic tree to
    compile with, and the structs' layouts from the kernel's BTF."""
    need_feature("btf", None if os.path.exists("/sys/kernel/btf/vmlinux") else
                 "no /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF=n)")
    result = run(tool_command(command) + ["-v", "--probe", "raw_tracepoint", "1", "1"],
                 HIDE_NODE)
    assert result.returncode == 0, result.stderr
    assert "attached" in result.stderr and "structs: BTF offsets" in result.stderr, \
        result.stderr
