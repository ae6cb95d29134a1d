"""Facts about the running kernel and process that decide whether BPF can run.

Nothing here imports bcc. Functions that parse text are pure and unit-tested;
the thin readers around them touch /proc and /sys only.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from . import syscalls
from .errors import ToolError

CAP_DAC_READ_SEARCH = 2
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39

# The fewest capabilities every tool and the exporter run with on 5.8+
# (tested with setpriv as a non-root user; used by the systemd unit and the
# DaemonSet): BPF and PERFMON to load and attach, DAC_READ_SEARCH to read
# tracefs (root's, mode 0700) and open closed files by handle.
LEAST_CAPABILITIES = ("bpf", "perfmon", "dac_read_search")

TRACEFS_MOUNTPOINTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
# Where scripts/setup prepares a merged header tree when the distribution has
# no headers package for the running kernel (see scripts/setup).
PREPARED_HEADERS = "/var/lib/bpf-pytools/kernel-headers/current"
BCC_PACKAGE_HINT = "install it with: apt-get install python3-bpfcc"


# ---------------------------------------------------------------- privileges

def parse_capeff(status_text: str) -> int:
    """The effective capability mask from the text of /proc/<pid>/status."""
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def missing_privilege(euid: int, capeff: int) -> Optional[str]:
    """Why this process cannot load tracing programs, or None if it can."""
    def has(cap: int) -> bool:
        return bool(capeff >> cap & 1)

    if has(CAP_SYS_ADMIN) or (has(CAP_BPF) and has(CAP_PERFMON)):
        return None
    who = "root without CAP_SYS_ADMIN" if euid == 0 else f"uid {euid}"
    return (f"running as {who}: tracing needs root, or CAP_BPF, CAP_PERFMON and "
            "CAP_DAC_READ_SEARCH")


def check_privileges() -> None:
    status = Path("/proc/self/status").read_text()
    capeff = parse_capeff(status)
    problem = missing_privilege(os.geteuid(), capeff)
    if problem:
        raise ToolError(problem, "run it with sudo")
    filtered = seccomp_refused(status)
    if filtered:
        raise ToolError(filtered, SECCOMP_FIX)
    if not capeff >> CAP_SYS_ADMIN & 1:
        refused = perf_event_refused()
        if refused:
            raise ToolError(refused, PERF_PARANOID_FIX)


# ------------------------------------------------------------------- seccomp

SECCOMP_MODES = {0: "disabled", 1: "strict", 2: "filter"}
SECCOMP_FIX = ("run it with seccomp profile Unconfined, or the project's "
               "deploy/seccomp/bpf-pytools.json (Kubernetes: securityContext.seccompProfile, as "
               "deploy/kubernetes/bpf-exporter.yaml does; docker, podman: --security-opt "
               "seccomp=...)")


def parse_seccomp(status_text: str) -> Optional[int]:
    """The Seccomp: mode from /proc/<pid>/status text (0 none, 1 strict,
    2 filter), or None where the kernel does not say."""
    for line in status_text.splitlines():
        if line.startswith("Seccomp:"):
            return int(line.split()[1])
    return None


def _errno_of(number: int, *args) -> int:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    ctypes.set_errno(0)
    result = libc.syscall(number, *args)
    if result >= 0:
        os.close(result)
        return 0
    return ctypes.get_errno()


def seccomp_blocked_syscalls(errno_of: Callable[..., int] = _errno_of) -> List[str]:
    """Which of bpf(2) and perf_event_open(2) a seccomp filter refuses this
    process. Each is called with arguments the kernel itself rejects before
    any permission check (bpf: no such command, EINVAL; perf_event_open: a
    NULL attribute, EFAULT), so EPERM can only come from the filter: a
    container runtime's default profile allows both only with CAP_SYS_ADMIN."""
    blocked = []
    if errno_of(SYS_BPF, 0x7FFFFFFF, 0, 0) == errno.EPERM:
        blocked.append("bpf")
    if errno_of(SYS_PERF_EVENT_OPEN, 0, 0, -1, -1, 0) == errno.EPERM:
        blocked.append("perf_event_open")
    return blocked


def seccomp_refused(status_text: str,
                    blocked: Callable[[], List[str]] = seccomp_blocked_syscalls) -> Optional[str]:
    """Why seccomp keeps this process from tracing, or None."""
    if parse_seccomp(status_text) != 2:
        return None
    calls = blocked()
    if not calls:
        return None
    return (f"seccomp refuses {' and '.join(c + '()' for c in calls)} to this process (a "
            "container runtime's default profile allows them only with CAP_SYS_ADMIN)")


def seccomp_summary(status_text: str,
                    blocked: Callable[[], List[str]] = seccomp_blocked_syscalls
                    ) -> Tuple[Optional[bool], str]:
    """(ok, detail) for doctor: None where seccomp is off."""
    mode = parse_seccomp(status_text)
    if mode is None:
        return None, "unknown (no Seccomp: line in /proc/self/status)"
    if mode != 2:
        return None, SECCOMP_MODES.get(mode, str(mode))
    calls = blocked()
    if calls:
        return False, seccomp_refused(status_text, lambda: calls) or ""
    return True, "filter: allows bpf() and perf_event_open()"


SYS_PERF_EVENT_OPEN = syscalls.number("perf_event_open")
PERF_TYPE_SOFTWARE, PERF_COUNT_SW_DUMMY = 1, 9
PERF_PARANOID_FIX = ("sysctl -w kernel.perf_event_paranoid=2 (the documented capabilities "
                     "then suffice), or run as root")


def read_perf_paranoid() -> Optional[int]:
    try:
        return int(Path("/proc/sys/kernel/perf_event_paranoid").read_text())
    except (OSError, ValueError):
        return None


def perf_event_refused() -> Optional[str]:
    """Why this process may open no perf event at all, or None. Debian's and
    Ubuntu's kernels add kernel.perf_event_paranoid=3 (their default), which
    refuses every perf_event_open without CAP_SYS_ADMIN, CAP_PERFMON or
    not; BCC attaches every probe through perf_event_open. Found by opening
    a dummy software event on this process, which any other level allows."""
    import ctypes
    attr = (ctypes.c_uint32 * 32)()            # struct perf_event_attr, zeroed
    attr[0], attr[1] = PERF_TYPE_SOFTWARE, ctypes.sizeof(attr)
    attr[2] = PERF_COUNT_SW_DUMMY               # config (low half)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(SYS_PERF_EVENT_OPEN, ctypes.byref(attr), 0, -1, -1, 0)
    if fd >= 0:
        os.close(fd)
        return None
    err = ctypes.get_errno()
    if err not in (errno.EACCES, errno.EPERM):
        return None          # something else (no perf events at all): the attach says
    level = read_perf_paranoid()
    return (f"perf_event_open is refused to this process (kernel.perf_event_paranoid is "
            f"{level}: this kernel lets only CAP_SYS_ADMIN open perf events at that level)")


def read_pid_max() -> int:
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read())


def start_slots(pid_max: int) -> int:
    """Smallest power of two covering every thread id, capped at 2^22 (64 MiB)."""
    n = 1
    while n < min(pid_max, 1 << 22):
        n <<= 1
    return n


# -------------------------------------------------------------------- tracefs

def tracefs_from_mounts(mounts_text: str) -> Optional[str]:
    """The first tracefs mount point in /proc/mounts text where BCC looks
    (/sys/kernel/tracing, /sys/kernel/debug/tracing), or None: BCC reads
    tracepoint formats from those paths only, so a tracefs mounted
    elsewhere (a node's root under /host in a debug pod) does not count."""
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "tracefs" and fields[1] in TRACEFS_MOUNTPOINTS:
            return fields[1]
    return None


def find_tracefs() -> Optional[str]:
    return tracefs_from_mounts(Path("/proc/mounts").read_text())


def bcc_importable() -> bool:
    """Whether `import bcc` would find a module (without importing it:
    bcc picks its tracefs path at import time)."""
    import importlib.util
    return importlib.util.find_spec("bcc") is not None


def ensure_tracefs() -> str:
    """Return tracefs's mount point, mounting it on /sys/kernel/tracing if needed.

    Must run before `import bcc`: bcc picks its tracefs path at import time.
    """
    found = find_tracefs()
    if found:
        return found
    target = TRACEFS_MOUNTPOINTS[0]
    result = subprocess.run(["mount", "-t", "tracefs", "nodev", target],
                            capture_output=True, text=True)
    if result.returncode != 0 or not find_tracefs():
        detail = (result.stderr or "").strip().splitlines()
        raise ToolError(
            f"tracefs is not mounted and mounting it on {target} failed"
            + (f": {detail[-1]}" if detail else ""),
            f"mount -t tracefs nodev {target}")
    return target


def tracefs_unreadable(tracefs: str, can_read: Callable[[str], bool]) -> Optional[str]:
    """Why this process cannot read tracefs's tracepoint ids (BCC reads
    events/<category>/<event>/id to attach), or None. tracefs is root's
    (mode 0700, ids 0440), so a non-root user with only CAP_BPF and
    CAP_PERFMON is refused; CAP_DAC_READ_SEARCH lets it read."""
    events = os.path.join(tracefs, "events")
    sample = os.path.join(events, "syscalls", "sys_enter_execve", "id")
    if can_read(events) and (not os.path.exists(sample) or can_read(sample)):
        return None
    try:
        mode = f"mode {os.stat(tracefs).st_mode & 0o7777:04o}"
    except OSError:
        mode = "no access"
    return f"cannot read tracepoint ids in {tracefs} ({mode}, root's)"


def can_read(path: str) -> bool:
    """Whether this process may read path, capabilities included."""
    return os.access(path, os.R_OK, effective_ids=True)


def check_tracefs_access(tracefs: str) -> None:
    problem = tracefs_unreadable(tracefs, can_read)
    if problem:
        raise ToolError(problem, "add CAP_DAC_READ_SEARCH to CAP_BPF and CAP_PERFMON, "
                                 "or run as root")


def tracepoint_exists(tracefs: str, name: str) -> bool:
    category, event = name.split(":", 1)
    return os.path.isdir(os.path.join(tracefs, "events", category, event))


def parse_format_fields(text: str) -> frozenset:
    """Field names of a tracepoint's format file, common_* ones left out."""
    names = set()
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("field:"):
            continue
        declaration = line[len("field:"):].split(";", 1)[0]
        name = declaration.split()[-1].split("[", 1)[0] if declaration.split() else ""
        if name and not name.startswith("common_"):
            names.add(name)
    return frozenset(names)


def tracepoint_fields(tracefs: str, name: str) -> Optional[frozenset]:
    """The fields of tracepoint `name` ("category:event"), or None if it is absent."""
    category, event = name.split(":", 1)
    try:
        with open(os.path.join(tracefs, "events", category, event, "format")) as f:
            return parse_format_fields(f.read())
    except OSError:
        return None


@lru_cache(maxsize=4)
def traceable_functions(tracefs: str) -> Optional[frozenset]:
    """Kernel functions that kprobes and fentry may hook, or None if unknown.

    ftrace's available_filter_functions is the exact list; lockdown can
    forbid reading it, and then kallsyms's text symbols are the next best
    (they include notrace functions, so the real attach still decides)."""
    try:
        with open(os.path.join(tracefs, "available_filter_functions")) as f:
            return frozenset(parse_filter_functions(f))
    except OSError:
        pass
    try:
        with open("/proc/kallsyms") as f:
            return frozenset(parse_kallsyms_text(f)) or None
    except OSError:
        return None


def parse_filter_functions(lines: Iterable[str]) -> Iterable[str]:
    """Names from available_filter_functions lines ("name [module]")."""
    for line in lines:
        name = line.split(None, 1)[0] if line.strip() else ""
        if name:
            yield name


def parse_kallsyms_text(lines: Iterable[str]) -> Iterable[str]:
    """Function names from /proc/kallsyms lines ("addr T name [module]")."""
    for line in lines:
        fields = line.split()
        if len(fields) >= 3 and fields[1] in ("T", "t"):
            yield fields[2]


def kprobes_supported(tracefs: Optional[str]) -> Optional[str]:
    """None if the kernel has kprobes, else why not."""
    if os.path.isdir("/sys/bus/event_source/devices/kprobe"):
        return None
    if tracefs and os.path.exists(os.path.join(tracefs, "kprobe_events")):
        return None
    return "kernel built without kprobes (CONFIG_KPROBES)"


def btf_available() -> bool:
    return os.path.exists("/sys/kernel/btf/vmlinux")


def parse_lockdown(text: str) -> Optional[str]:
    """The active mode from /sys/kernel/security/lockdown ("none [integrity] ...")."""
    match = re.search(r"\[(\w+)\]", text)
    return match.group(1) if match else None


SECURITYFS = "/sys/kernel/security"


def parse_cmdline_lockdown(cmdline: str) -> Optional[str]:
    """The lockdown= mode asked for on the kernel command line, if any."""
    for word in cmdline.split():
        if word.startswith("lockdown="):
            return word.split("=", 1)[1] or None
    return None


def lockdown_mode() -> Tuple[Optional[str], str]:
    """(mode, where it was read). securityfs is mounted first where it is
    not (as root with CAP_SYS_ADMIN); a container reads the host's where it
    is mounted under the host root; else the kernel command line's
    lockdown= is the hint, and failing that the reason it cannot be read."""
    path = os.path.join(SECURITYFS, "lockdown")
    capeff = parse_capeff(Path("/proc/self/status").read_text())
    if not os.path.exists(path) and capeff >> CAP_SYS_ADMIN & 1 \
            and not os.path.ismount(SECURITYFS) and os.path.isdir(SECURITYFS):
        try:
            subprocess.run(["mount", "-t", "securityfs", "securityfs", SECURITYFS],
                           capture_output=True)
        except OSError:
            pass
    root = host_root()
    candidates = [path] + ([root + path] if root else [])
    for candidate in candidates:
        try:
            return parse_lockdown(Path(candidate).read_text()), candidate
        except OSError:
            pass
    try:
        mode = parse_cmdline_lockdown(Path("/proc/cmdline").read_text())
    except OSError:
        mode = None
    if mode:
        return mode, "lockdown= on the kernel command line"
    if os.path.ismount(SECURITYFS):
        return None, "securityfs has no lockdown file (no lockdown LSM)"
    if not capeff >> CAP_SYS_ADMIN & 1:
        return None, (f"securityfs is not mounted on {SECURITYFS} and mounting it needs "
                      "CAP_SYS_ADMIN (a container: mount the host's read-only under "
                      f"{root or HOST_ROOT}{SECURITYFS} to read it); the kernel command line "
                      "has no lockdown=")
    return None, f"securityfs cannot be mounted on {SECURITYFS}; no lockdown= on the command line"


def kernel_release() -> str:
    return os.uname().release


def kernel_version_code(release: Optional[str] = None) -> int:
    """0xMMmmpp from a release string like '6.1.0-13-amd64' (default: this kernel's)."""
    release = release or kernel_release()
    parts = (release.split("-", 1)[0].split(".") + ["0", "0"])[:3]
    nums = [int("".join(ch for ch in p if ch.isdigit()) or 0) for p in parts]
    return nums[0] << 16 | min(nums[1], 255) << 8 | min(nums[2], 255)


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
# own fallback (deploy/kubernetes/bpf-exporter.yaml).
HOST_ROOT = "/host"
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
        import atexit
        import shutil
        import tempfile
        dst = tempfile.mkdtemp(prefix="bpf-pytools-headers-")
        atexit.register(shutil.rmtree, dst, True)
        merge_trees(dst, parts)
        _merged[parts] = dst
    return _merged[parts]


def host_root() -> Optional[str]:
    root = os.environ.get("PYTOOLS_HOST_ROOT", HOST_ROOT)
    return root if root and os.path.isdir(root) else None


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
            raise ToolError(f"BCC_KERNEL_SOURCE={os.environ['BCC_KERNEL_SOURCE']} has no include/ folder",
                            "point it at a kernel header tree")
        raise ToolError(f"no kernel headers found for kernel {release}",
                        f"apt-get install linux-headers-{release}, or run scripts/setup; in a "
                        f"container, mount the node's /lib/modules and /usr/src under {HOST_ROOT}")
    if headers.parts:
        import dataclasses
        try:
            headers = dataclasses.replace(headers, env=merged_tree(headers.parts))
        except OSError as e:
            raise ToolError(f"cannot merge the node's headers {' and '.join(headers.parts)}: "
                            f"{e.strerror}", "set TMPDIR to a writable directory") from None
    return headers


# --------------------------------------------------------------------- fentry

SYS_BPF = syscalls.number("bpf")
BPF_PROG_LOAD = 5
BPF_PROG_TYPE_TRACING = 26
BPF_TRACE_FENTRY = 24


def _prog_load_attr():
    """union bpf_attr as BPF_PROG_LOAD reads it (include/uapi/linux/bpf.h),
    up to attach_btf_id; the tail stays zero, as the kernel requires."""
    import ctypes

    class ProgLoadAttr(ctypes.Structure):
        _fields_ = [
            ("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
            ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
            ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
            ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
            ("prog_flags", ctypes.c_uint32), ("prog_name", ctypes.c_char * 16),
            ("prog_ifindex", ctypes.c_uint32), ("expected_attach_type", ctypes.c_uint32),
            ("prog_btf_fd", ctypes.c_uint32), ("func_info_rec_size", ctypes.c_uint32),
            ("func_info", ctypes.c_uint64), ("func_info_cnt", ctypes.c_uint32),
            ("line_info_rec_size", ctypes.c_uint32), ("line_info", ctypes.c_uint64),
            ("line_info_cnt", ctypes.c_uint32), ("attach_btf_id", ctypes.c_uint32),
            ("tail", ctypes.c_uint8 * 16),
        ]
    return ProgLoadAttr()


FENTRY_REFUSED = "the kernel refuses fentry programs: {error}"


@lru_cache(maxsize=64)
def fentry_load_problem(function: str) -> Optional[str]:
    """Load (not attach) a two-instruction fentry program on `function`:
    the cheapest real test of fentry, since a refusal (no BTF id, lockdown's
    EPERM) comes at load time. Saves a full BCC compile that would fail."""
    import ctypes
    import errno as errno_mod

    try:
        libbpf = ctypes.CDLL("libbpf.so.1", use_errno=True)
    except OSError:
        return None  # cannot tell: let the real BCC attempt decide
    btf_id = libbpf.libbpf_find_vmlinux_btf_id(function.encode(), BPF_TRACE_FENTRY)
    if btf_id < 0:
        return f"no BTF type for kernel function {function}"
    insns = (ctypes.c_uint64 * 2)(0xB7, 0x95)        # r0 = 0; exit
    license = ctypes.create_string_buffer(b"GPL")
    attr = _prog_load_attr()
    attr.prog_type = BPF_PROG_TYPE_TRACING
    attr.insn_cnt = len(insns)
    attr.insns = ctypes.addressof(insns)
    attr.license = ctypes.addressof(license)
    attr.expected_attach_type = BPF_TRACE_FENTRY
    attr.attach_btf_id = btf_id
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(SYS_BPF, BPF_PROG_LOAD, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd >= 0:
        os.close(fd)
        return None
    err = ctypes.get_errno()
    error = f"{errno_mod.errorcode.get(err, err)} ({os.strerror(err)})"
    if err == errno_mod.EPERM:
        # The same for every function: said once however many are hooked.
        return FENTRY_REFUSED.format(error=error + "; kernel lockdown refuses fentry this way")
    return f"the kernel refused to load an fentry program on {function}: {error}"
