"""What the running kernel offers BPF: tracefs and its tracepoints, kprobes,
BTF and fentry (which lockdown refuses), pid_max, its release. Parsers of
/proc, /sys and tracefs text are pure and unit-tested; nothing here
imports bcc.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import os
import re
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Optional, Tuple

from . import syscalls
from .errors import ToolError
from .privileges import CAP_SYS_ADMIN, parse_capeff

# A container's view of the host's root filesystem (the DaemonSet mounts
# the node's /lib/modules, /usr/src and securityfs facts under it).
HOST_ROOT = "/host"
TRACEFS_MOUNTPOINTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


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


def tracepoint_format(tracefs: str, name: str) -> Optional[str]:
    """The format file of tracepoint `name` ("category:event"), or None if
    it is absent (or unreadable)."""
    category, event = name.split(":", 1)
    try:
        with open(os.path.join(tracefs, "events", category, event, "format")) as f:
            return f.read()
    except OSError:
        return None


def tracepoint_fields(tracefs: str, name: str) -> Optional[frozenset]:
    """The fields of tracepoint `name` ("category:event"), or None if it is absent."""
    text = tracepoint_format(tracefs, name)
    return None if text is None else parse_format_fields(text)


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


# --------------------------------------------------------------------- fentry

BPF_PROG_LOAD = 5
BPF_RAW_TRACEPOINT_OPEN = 17   # with no name: attaches a tracing (fentry) program
ENOTSUPP = 524                 # the kernel's own "not supported" (no errno name in libc)
BPF_PROG_TYPE_TRACING = 26
BPF_TRACE_FENTRY = 24


def _prog_load_attr():
    """union bpf_attr as BPF_PROG_LOAD reads it (include/uapi/linux/bpf.h),
    up to attach_btf_id; the tail stays zero, as the kernel requires."""

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
    """Load a two-instruction fentry program on `function`, attach it and
    detach it at once: the cheapest real test of fentry. A refusal comes at
    load time (no BTF id, lockdown's EPERM) or at attach time (ENOTSUPP where
    the architecture cannot trampoline into kernel functions: arm64 before
    6.4, which had no ftrace direct calls). Saves a full BCC compile that
    would fail."""

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
    fd = libc.syscall(syscalls.SYS_BPF, BPF_PROG_LOAD, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd >= 0:
        try:
            return _fentry_attach_problem(libc, fd, function)
        finally:
            os.close(fd)
    err = ctypes.get_errno()
    error = f"{errno_mod.errorcode.get(err, err)} ({os.strerror(err)})"
    if err == errno_mod.EPERM:
        # The same for every function: said once however many are hooked.
        return FENTRY_REFUSED.format(error=error + "; kernel lockdown refuses fentry this way")
    return f"the kernel refused to load an fentry program on {function}: {error}"


def _fentry_attach_problem(libc, prog_fd: int, function: str) -> Optional[str]:
    """Attach the loaded fentry program (BPF_RAW_TRACEPOINT_OPEN with no
    name) and close the link at once: None if it attached."""
    class RawTracepointOpen(ctypes.Structure):
        _fields_ = [("name", ctypes.c_uint64), ("prog_fd", ctypes.c_uint32),
                    ("pad", ctypes.c_uint32), ("tail", ctypes.c_uint64 * 16)]

    attr = RawTracepointOpen(prog_fd=prog_fd)
    link = libc.syscall(syscalls.SYS_BPF, BPF_RAW_TRACEPOINT_OPEN, ctypes.byref(attr),
                        ctypes.sizeof(attr))
    if link >= 0:
        os.close(link)
        return None
    err = ctypes.get_errno()
    name = "ENOTSUPP" if err == ENOTSUPP else errno_mod.errorcode.get(err, str(err))
    why = (" (this architecture cannot attach fentry to kernel functions on this kernel)"
           if err == ENOTSUPP else "")
    return f"the kernel refused to attach an fentry program on {function}: {name}{why}"


def host_root() -> Optional[str]:
    root = os.environ.get("PYTOOLS_HOST_ROOT", HOST_ROOT)
    return root if root and os.path.isdir(root) else None
