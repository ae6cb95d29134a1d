"""A web config file read from disk (--web.config.file), with the state
that tells when it or a file it names was replaced: pytools.access rereads
it on SIGHUP and on change."""

from __future__ import annotations

import os
from typing import List, Optional, Tuple

from .webconfig import WebConfig, WebConfigError, parse_web_config

MAX_FILE_BYTES = 1 << 20        # a web config is a few hundred bytes


def load_web_config(path: str) -> WebConfig:
    """Read and parse the web config at `path`: WebConfigError with one
    line for whatever is wrong with it."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise WebConfigError(f"cannot read it: {e.strerror}") from None
    except ValueError as e:         # a NUL byte in the path
        raise WebConfigError(str(e)) from None
    if len(data) > MAX_FILE_BYTES:
        raise WebConfigError(f"over {MAX_FILE_BYTES >> 20} MiB: not a web config")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise WebConfigError("not UTF-8 text") from None
    try:
        return parse_web_config(text, os.path.dirname(os.path.abspath(path)))
    except WebConfigError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError,
            MemoryError) as e:   # the last line of defence: one line, never a traceback
        raise WebConfigError(f"cannot be used: {type(e).__name__}: {e}") from None


def file_state(paths: Tuple[str, ...]) -> Tuple:
    """What changes when a file is replaced or rewritten in place (a
    Kubernetes Secret swaps a symlink; cert-manager rewrites): for each,
    (device, inode, size, mtime), None where unreadable."""
    state: List[Optional[Tuple[int, int, int, int]]] = []
    for path in paths:
        try:
            st = os.stat(path)
            state.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
        except (OSError, ValueError):
            state.append(None)
    return tuple(state)
