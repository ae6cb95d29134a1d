"""Giving back what BCC's compiles leave behind once every program is loaded.

BCC compiles with clang and LLVM inside the process. After the last compile
glibc keeps the freed heap for reuse, and the libraries' code and data that
the compile touched stay resident (about 75 MiB of libLLVM and libclang-cpp
here), although an exporter never compiles again. Both are given back:
malloc_trim(0) returns the free heap, madvise(MADV_PAGEOUT) on the compiler
libraries' mappings (5.4+) reclaims their pages. Neither changes what the
memory holds: a page needed again is read back in from the file (or swap).
"""

from __future__ import annotations

import ctypes
import re
from typing import List, Tuple

MADV_PAGEOUT = 21
# the compiler's libraries: libLLVM-14.so.1, libclang-cpp.so.14 (Debian's bcc)
COMPILER_LIBRARY = re.compile(r"/lib(LLVM|clang)[-.][^/]*$")


def compiler_mappings(maps_text: str) -> List[Tuple[int, int]]:
    """(start, end) of each mapping of a compiler library in a
    /proc/PID/maps text."""
    out = []
    for line in maps_text.splitlines():
        fields = line.split(None, 5)
        if len(fields) == 6 and COMPILER_LIBRARY.search(fields[5].strip()):
            start, _, end = fields[0].partition("-")
            out.append((int(start, 16), int(end, 16)))
    return out


def release_compile_memory() -> None:
    """Return the compile's leftovers to the kernel (see the module doc).
    Best effort: without glibc or before 5.4 some of it stays."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)
    try:
        with open("/proc/self/maps") as f:
            ranges = compiler_mappings(f.read())
    except OSError:
        return
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    for start, end in ranges:
        libc.madvise(start, end - start, MADV_PAGEOUT)   # EINVAL before 5.4: kept
