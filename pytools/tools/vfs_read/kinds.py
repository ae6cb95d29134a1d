"""The kind of file a read is on, for vfsread-latency: regular file, pipe,
socket, tty (character device) or other, told in the kernel from the
file's inode (bpf/vfs_read.c, KIND), and what the command counts by
default (regular files, where the kind can be told)."""

from __future__ import annotations

import stat
from typing import Optional

from ... import cdefs
from ...probes import Feature, place_fields
from ...structs import Field


# The kinds of file a read can be on, by its inode's type (KIND_* in C).
KINDS = ("file", "pipe", "socket", "tty", "other")
KIND_HELP = {"file": "regular files", "pipe": "pipes and FIFOs", "socket": "sockets",
             "tty": "ttys and other character devices",
             "other": "directories, block devices, eventfds and the like"}
# What bpf/vfs_read.c takes from here (its `// shared:` lines): the kinds,
# and the inode type bits that tell them (Python's stat has Linux's values).
KIND_SHARED = {**cdefs.enum("KIND", KINDS), "KIND_COUNT": len(KINDS), "MODE_FMT": 0o170000,
               "MODE_REG": stat.S_IFREG, "MODE_FIFO": stat.S_IFIFO,
               "MODE_SOCK": stat.S_IFSOCK, "MODE_CHR": stat.S_IFCHR}
# Where the kind is read (bpf/vfs_read.c's `// btf:` line): the fd's file
# (current->files->fdt->fd[fd], tracepoint modes) and its inode's mode.
KIND_FIELDS = (
    Field("FD_ARRAY", "task_struct->files->fdt->fd"),
    Field("MAX_FDS", "task_struct->files->fdt->max_fds"),
    Field("FILE_MODE", "file->f_inode->i_mode"),
)


def kind_feature() -> Feature:
    """The kind of file, where its struct reads can be placed: the kernel's
    BTF first, else its own headers (pytools/probes.py place_fields): with
    headers the program includes linux/fs.h and linux/sched.h, ~1.1 s more
    compile at every start (scripts/bench-btf), for the same offsets."""
    # the loader (headers, tempfiles) only where a program is loaded: --help starts without it.
    from ...loader import prepare
    flags, source, problem = place_fields(KIND_FIELDS, prepare().facts, btf_first=True)
    return Feature("kind", defines=tuple(flags) + ("-DKIND",), problem=problem,
                   detail=f"the kind of file, from {source}" if source else "")


def kind_of(by: Optional[str], kind: Optional[str]) -> str:
    """What is counted: every kind with --by kind, else --kind, by default
    (None) regular files."""
    if by == "kind":
        return "all"
    return "file" if kind is None else kind


def wants_kind(by: Optional[str], kind: Optional[str]) -> bool:
    return kind_of(by, kind) != "all" or by == "kind"


def counted(kind: Optional[str], missing: Optional[str]) -> str:
    """What the histograms count, for the banner."""
    if missing:
        return f"reads on every kind of file (the kind is unknown here: {missing})"
    if kind in KINDS:
        return f"reads on {KIND_HELP[kind]} only"
    return "reads on every kind of file"
