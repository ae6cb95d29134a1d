"""Decoders from kernel ids to names users know, off the hot path.

Every tool and the exporter use these (ebpf_exporter's "decoders"): C
strings from maps, device numbers to `vda`, (device, inode) to a path.
Pure parsers are unit-tested; the readers touch /sys and /proc only.
"""

from __future__ import annotations

import os
import stat
from typing import Callable, Dict, Optional, Tuple

FileKey = Tuple[int, int]    # (kernel dev, inode)


def c_string(raw) -> str:
    """A fixed-size C char array from a map (bytes or ctypes array) as text:
    up to the first NUL, bad UTF-8 replaced."""
    return bytes(raw).split(b"\0", 1)[0].decode(errors="replace")


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


def device_name(dev: int, sys_root: str = SYS_DEV_BLOCK) -> str:
    """'vda' for a block device, else 'major:minor' (tmpfs, overlay, NFS...)."""
    try:
        with open(f"{sys_root}/{dev_text(dev)}/uevent") as f:
            name = parse_uevent_devname(f.read())
    except OSError:
        name = None
    return name or dev_text(dev)


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


class FileNames:
    """Cached names for (dev, ino): a path where one was found, else dev:inode."""

    def __init__(self, finder: Callable[[int, int], Optional[str]] = find_open_path):
        self.finder = finder
        self.cache: Dict[FileKey, str] = {}

    def __call__(self, key: FileKey) -> str:
        if key not in self.cache:
            dev, ino = key
            self.cache[key] = self.finder(dev, ino) or f"{dev_text(dev)}:{ino}"
        return self.cache[key]
