"""Decoders from kernel ids to names users know, off the hot path.

Every tool and the exporter use these (ebpf_exporter's "decoders"): C
strings from maps, device numbers to `vda`, (device, inode) to a path.
Pure parsers are unit-tested; the readers touch /sys and /proc only.
"""

from __future__ import annotations

import ctypes
import os
import stat
import sys
from typing import Callable, Dict, List, Literal, Optional, Tuple

FileKey = Tuple[int, int]    # (kernel dev, inode)


def c_string(raw) -> str:
    """A fixed-size C char array from a map (bytes or ctypes array) as text:
    up to the first NUL, bad UTF-8 replaced."""
    return bytes(raw).split(b"\0", 1)[0].decode(errors="replace")


# ---------------------------------------------------------------------- comms

TASK_COMM_LEN = 16               # a comm is at most 15 bytes and a NUL


def comm_words(data: bytes, byteorder: Literal["little", "big"] = sys.byteorder
               ) -> Tuple[int, int]:
    """The 16 bytes bpf_get_current_comm() fills for a process named `data`
    (the name, NUL-padded) as the two u64 words the program compares them
    with: any byte (quotes, backslashes) reaches the kernel as it is, and the
    compare is two instructions whatever the name's length (a 16-byte string
    literal made the program fail to load). ValueError unless 1 to 15 bytes."""
    if not data or len(data) >= TASK_COMM_LEN:
        raise ValueError(f"a comm is 1 to {TASK_COMM_LEN - 1} bytes")
    padded = data.ljust(TASK_COMM_LEN, b"\0")
    return (int.from_bytes(padded[:8], byteorder), int.from_bytes(padded[8:], byteorder))


# -------------------------------------------------------------------- devices

def kernel_dev(major: int, minor: int) -> int:
    """The kernel's internal dev_t (what tracepoints report): major << 20 | minor."""
    return major << 20 | minor


def split_kernel_dev(dev: int) -> Tuple[int, int]:
    return dev >> 20, dev & 0xFFFFF


def dev_text(dev: int) -> str:
    """'major:minor' of a kernel dev_t."""
    return "%d:%d" % split_kernel_dev(dev)


def parse_uevent_devname(text: str) -> Optional[str]:
    for line in text.splitlines():
        if line.startswith("DEVNAME="):
            return line.split("=", 1)[1]
    return None


SYS_DEV_BLOCK = "/sys/dev/block"
SYS_CLASS_BLOCK = "/sys/class/block"


def device_name(dev: int, sys_root: str = SYS_DEV_BLOCK,
                class_root: str = SYS_CLASS_BLOCK) -> str:
    """'vda' for a block device, else 'major:minor' (tmpfs, overlay, NFS...).
    /sys/class/block is asked where /sys/dev/block is not there (podman
    masks it in containers)."""
    try:
        with open(f"{sys_root}/{dev_text(dev)}/uevent") as f:
            name = parse_uevent_devname(f.read())
    except OSError:
        name = None
    if name is None and not os.path.exists(f"{sys_root}/{dev_text(dev)}"):
        name = class_block_name(dev, class_root)
    return name or dev_text(dev)


def class_block_name(dev: int, class_root: str = SYS_CLASS_BLOCK) -> Optional[str]:
    """The block device whose /sys/class/block/<name>/dev is dev's major:minor."""
    try:
        names = os.listdir(class_root)
    except OSError:
        return None
    for name in sorted(names):
        try:
            with open(f"{class_root}/{name}/dev") as f:
                if f.read().strip() == dev_text(dev):
                    return name
        except OSError:
            continue
    return None


def block_device_exists(dev: int, sys_root: str = SYS_DEV_BLOCK) -> bool:
    return os.path.exists(f"{sys_root}/{dev_text(dev)}")


def parse_device(text: str) -> int:
    """A device given as 'vda', '/dev/vda' or 'major:minor', as a kernel dev_t.
    ValueError says what is wrong with it."""
    if ":" in text:
        major, _, minor = text.partition(":")
        if major.isdigit() and minor.isdigit() and int(major) < 4096 and int(minor) < 1 << 20:
            return kernel_dev(int(major), int(minor))
        raise ValueError(f"{text!r} is not major:minor")
    path = text if text.startswith("/") else f"/dev/{text}"
    try:
        st = os.stat(path)
    except OSError:
        raise ValueError(f"no device {path}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise ValueError(f"{path} is not a block device")
    return kernel_dev(os.major(st.st_rdev), os.minor(st.st_rdev))


class DeviceNames:
    """device_name with a cache: sysfs is read once per device."""

    def __init__(self, lookup: Callable[[int], str] = device_name):
        self.lookup = lookup
        self.cache: Dict[int, str] = {}

    def __call__(self, dev: int) -> str:
        if dev not in self.cache:
            self.cache[dev] = self.lookup(dev)
        return self.cache[dev]


# ---------------------------------------------------------------------- files

def find_open_path(dev: int, ino: int, proc: str = "/proc") -> Optional[str]:
    """A path to the file (dev, ino) if some process has it open: a cheap
    look through /proc/*/fd, never a walk of the filesystem."""
    major, minor = split_kernel_dev(dev)
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        fd_dir = f"{proc}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(f"{fd_dir}/{fd}")
                if st.st_ino == ino and os.major(st.st_dev) == major \
                        and os.minor(st.st_dev) == minor:
                    return os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
    return None


def mounts_of(dev: int, mountinfo_text: str) -> List[str]:
    """Mount points of the filesystem on dev (kernel dev_t), from
    /proc/self/mountinfo text, best first: those that mount the
    filesystem's root (a bind mount of a subfolder cannot name what is
    outside it), then the others in mount order."""
    major, minor = split_kernel_dev(dev)
    found: List[Tuple[bool, int, str]] = []
    for line in mountinfo_text.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[2] == f"{major}:{minor}":
            found.append((fields[3] != "/", len(found), fields[4].replace("\\040", " ")))
    return [mount for _, _, mount in sorted(found)]


FILEID_INO32_GEN = 1      # include/linux/exportfs.h: 32-bit inode, generation


class _FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("ino", ctypes.c_uint32), ("generation", ctypes.c_uint32)]


_libc = ctypes.CDLL(None, use_errno=True)


def open_by_inode(dev: int, ino: int, mountinfo: str = "/proc/self/mountinfo"
                  ) -> Tuple[Optional[str], str]:
    """(path, "") of the file (dev, ino) opened by a file handle of type
    FILEID_INO32_GEN (inode, generation 0: not checked) on a mount of its
    filesystem, or (None, why). Each directory mount of the filesystem is
    tried, its root's first, until one reaches the file (a container has
    only bind mounts of some folders). Works where the filesystem decodes
    such handles (ext4 and others) and this process has
    CAP_DAC_READ_SEARCH; the file need not be open anywhere."""
    if ino >= 1 << 32:
        return None, "inode number over 32 bits"
    try:
        with open(mountinfo) as f:
            mounts = [m for m in mounts_of(dev, f.read()) if os.path.isdir(m)]
    except OSError as e:
        return None, f"cannot read {mountinfo}: {e.strerror}"
    if not mounts:
        return None, f"no mount of {dev_text(dev)} in this mount namespace"
    why = ""
    for mount in mounts:
        path, problem = _path_by_handle(mount, ino)
        if path is not None:
            return path, ""
        if problem is None:     # opened, but outside this mount: try the next
            why = (f"outside this mount namespace's mounts of {dev_text(dev)} (a container "
                   "names closed files only under the host folders it mounts)")
        else:
            why = problem
            if why.startswith("open_by_handle_at"):
                break           # the same for every mount of the filesystem
    return None, why


def _path_by_handle(mount: str, ino: int) -> Tuple[Optional[str], Optional[str]]:
    """(path, "") of inode `ino` opened by handle on `mount`; (None, why) if
    it cannot be opened; (None, None) if it opens but lies outside this
    mount (the kernel names such a file "/": it is not reachable here)."""
    try:
        mount_fd = os.open(mount, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        return None, f"cannot open {mount}: {e.strerror}"
    try:
        handle = _FileHandle(8, FILEID_INO32_GEN, ino, 0)
        fd = _libc.open_by_handle_at(mount_fd, ctypes.byref(handle), os.O_PATH)
        if fd < 0:
            err = ctypes.get_errno()
            return None, f"open_by_handle_at on {mount}: {os.strerror(err)}"
        try:
            st = os.fstat(fd)
            if st.st_ino != ino or os.stat(mount).st_dev != st.st_dev:
                return None, "the handle opened another file"
            path = os.readlink(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
    finally:
        os.close(mount_fd)
    return (path, "") if same_file(path, st) else (None, None)


def same_file(path: str, st: os.stat_result) -> bool:
    try:
        other = os.stat(path)
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)


class FileNames:
    """Cached names for (dev, ino): the path of a process's open file, else
    the path from a file handle (a file read and closed), else dev:inode,
    with why in `unresolved` (shown with -v)."""

    def __init__(self, finder: Callable[[int, int], Optional[str]] = find_open_path,
                 by_handle: Callable[[int, int], Tuple[Optional[str], str]] = open_by_inode):
        self.finder = finder
        self.by_handle = by_handle
        self.cache: Dict[FileKey, str] = {}
        self.unresolved: Dict[FileKey, str] = {}

    def __call__(self, key: FileKey) -> str:
        if key not in self.cache:
            dev, ino = key
            path = self.finder(dev, ino)
            if path is None:
                path, why = self.by_handle(dev, ino)
                if path is None:
                    self.unresolved[key] = ("not open in any process this one may inspect; "
                                            f"{why}")
            self.cache[key] = path or f"{dev_text(dev)}:{ino}"
        return self.cache[key]
