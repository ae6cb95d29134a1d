"""Kernel headers for BCC: the running kernel's own, the host's under
/host in a container, the kernel's built-in kheaders, or the tree
scripts/setup prepares from the distribution's generic headers; split
source/build trees merged into the one tree BCC_KERNEL_SOURCE takes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple
import atexit
import shutil
import tempfile
import dataclasses

from .errors import ToolError
from .kernel import HOST_ROOT, host_root, kernel_release

# Where scripts/setup prepares a merged header tree when the distribution has
# no headers package for the running kernel (see scripts/setup).
PREPARED_HEADERS = "/var/lib/bpf-pytools/kernel-headers/current"


# -------------------------------------------------------------------- headers

@dataclass(frozen=True)
class Headers:
    path: str        # what BCC will use
    how: str         # how it was found, for doctor and --verbose
    env: Optional[str] = None  # value to put in BCC_KERNEL_SOURCE, if any
    # A split tree (Debian's common "source" + flavour "build") that BCC can
    # only use merged: find_headers merges these into one and sets env.
    parts: Tuple[str, ...] = ()


# Where a container finds the node's own trees: the DaemonSet mounts the
# host's /lib/modules and /usr/src here, so they never shadow the image's
# own fallback (deploy/kubernetes/base/bpf-exporter.yaml).
KHEADERS = "/sys/kernel/kheaders.tar.xz"
KCONFIG = "include/linux/kconfig.h"    # every tree BCC compiles with has it


def resolve_under(root: str, path: str, readlink: Callable[[str], Optional[str]],
                  limit: int = 40) -> str:
    """`path` as the host sees it, resolved inside `root` (the host's
    filesystem mounted there): absolute symlink targets stay under root."""
    parts = [p for p in path.split("/") if p]
    done: List[str] = []
    while parts:
        name = parts.pop(0)
        if name == "..":
            done = done[:-1]
            continue
        if name == ".":
            continue
        target = readlink(root + "/" + "/".join(done + [name]))
        if target is None:
            done.append(name)
            continue
        limit -= 1
        if limit < 0:
            break
        if target.startswith("/"):
            done = []
        parts = [p for p in target.split("/") if p] + parts
    return root.rstrip("/") + "/" + "/".join(done)


def choose_headers(release: str, env_value: Optional[str], exists: Callable[[str], bool],
                   host_root: Optional[str] = None,
                   readlink: Callable[[str], Optional[str]] = lambda _: None) -> Optional[Headers]:
    """Where BCC will find kernel headers: BCC_KERNEL_SOURCE if set; then
    the node's exact headers, in place or under host_root (a container);
    then the kernel's own (kheaders); then the generic tree scripts/setup
    makes, a self-contained copy. A tree counts only if its files are
    there (a tree of dangling symlinks is no tree)."""
    def usable(tree: str) -> bool:
        return exists(os.path.join(tree, KCONFIG))

    if env_value:
        if exists(os.path.join(env_value, "include")):
            return Headers(env_value, "BCC_KERNEL_SOURCE")
        return None
    modules = f"/lib/modules/{release}"
    build, source = f"{modules}/build", f"{modules}/source"
    if exists(os.path.join(build, "include")) and (usable(build) or usable(source)):
        return Headers(build, f"headers package for {release}")
    if host_root:
        build = resolve_under(host_root, build, readlink)
        source = resolve_under(host_root, source, readlink)
        how = f"the node's headers for {release}, under {host_root}"
        if usable(build):
            return Headers(build, how, env=build)
        if exists(os.path.join(build, "include")) and usable(source):
            return Headers(build, how, parts=(source, build))
    if exists(KHEADERS):
        return Headers(KHEADERS, "in-kernel headers (CONFIG_IKHEADERS)")
    if usable(PREPARED_HEADERS):
        real = os.path.realpath(PREPARED_HEADERS)
        return Headers(real, f"generic {os.path.basename(real)}, copied by scripts/setup",
                       env=real)
    return None


def merge_trees(dst: str, trees: Sequence[str]) -> None:
    """Make dst one tree of symlinks into `trees` (a later tree wins):
    directories present in more than one are merged, all else linked."""
    entries: Dict[str, List[str]] = {}
    for tree in trees:
        for name in sorted(os.listdir(tree)):
            entries.setdefault(name, []).append(os.path.join(tree, name))
    for name, paths in entries.items():
        dirs = [p for p in paths if os.path.isdir(p)]
        if len(dirs) > 1:
            os.mkdir(os.path.join(dst, name))
            merge_trees(os.path.join(dst, name), dirs)
        else:
            os.symlink(dirs[0] if dirs else paths[-1], os.path.join(dst, name))


_merged: Dict[Tuple[str, ...], str] = {}


def merged_tree(parts: Tuple[str, ...]) -> str:
    """A private merge of a split tree, made once per process, removed at exit."""
    if parts not in _merged:
        dst = tempfile.mkdtemp(prefix="bpf-pytools-headers-")
        atexit.register(shutil.rmtree, dst, True)
        merge_trees(dst, parts)
        _merged[parts] = dst
    return _merged[parts]


def read_link(path: str) -> Optional[str]:
    try:
        return os.readlink(path)
    except OSError:
        return None


def struct_layout_problem(headers: Headers, release: str) -> Optional[str]:
    """Why programs that read kernel structs cannot trust these headers'
    layouts: the tree scripts/setup merges is another kernel's."""
    # By path, not by how it was found: the loader exports BCC_KERNEL_SOURCE
    # for the merged tree, and its children find it there.
    if os.path.realpath(headers.path).startswith(
            os.path.realpath(os.path.dirname(PREPARED_HEADERS)) + os.sep):
        return (f"it reads kernel structs, and the headers are {headers.how}, "
                f"not kernel {release}'s own")
    return None


def find_headers() -> Headers:
    release = kernel_release()
    headers = choose_headers(release, os.environ.get("BCC_KERNEL_SOURCE"), os.path.exists,
                             host_root(), read_link)
    if headers is None:
        if os.environ.get("BCC_KERNEL_SOURCE"):
            raise ToolError(f"BCC_KERNEL_SOURCE={os.environ['BCC_KERNEL_SOURCE']} has no "
                            "include/ folder", "point it at a kernel header tree")
        raise ToolError(f"no kernel headers found for kernel {release}",
                        f"apt-get install linux-headers-{release}, or run scripts/setup; in a "
                        f"container, mount the node's /lib/modules and /usr/src under {HOST_ROOT}")
    if headers.parts:
        try:
            headers = dataclasses.replace(headers, env=merged_tree(headers.parts))
        except OSError as e:
            raise ToolError(f"cannot merge the node's headers {' and '.join(headers.parts)}: "
                            f"{e.strerror}", "set TMPDIR to a writable directory") from None
    return headers
