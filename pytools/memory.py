"""Giving back what BCC's compiles leave behind once every program is loaded.

BCC compiles with clang and LLVM inside the process. After the last compile
glibc keeps the freed heap for reuse, and the libraries' pages that the
compile touched stay mapped (about 75 MiB of libLLVM and libclang-cpp
here), although an exporter never compiles again. Both are given back:
malloc_trim(0) returns the free heap; of the compiler libraries' mappings,
those never written to (code, constants: no anonymous pages) are dropped
with MADV_DONTNEED, which unmaps them even where another process (another
BCC tool) maps the same pages, and the others (relocated data, written at
load) are paged out with MADV_PAGEOUT (5.4+), which keeps what they hold.
Neither changes what the memory holds: a page needed again is read back
from the file (or swap).
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass, replace
from typing import List, Optional

MADV_DONTNEED = 4
MADV_PAGEOUT = 21
# the compiler's libraries: libLLVM-14.so.1, libclang-cpp.so.14 (Debian's bcc)
COMPILER_LIBRARY = re.compile(r"/lib(LLVM|clang)[-.][^/]*$")
_HEAD = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ")


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    writable: bool
    # pages written since mapped (copy-on-write); None: smaps did not say
    anonymous_kib: Optional[int] = None
    rss_kib: int = 0          # resident, written or not

    @property
    def advice(self) -> int:
        """DONTNEED only where it cannot lose a write: a mapping that is
        not writable and holds no page written since it was mapped (a
        mapping whose smaps did not say is taken as written)."""
        if not self.writable and self.anonymous_kib == 0:
            return MADV_DONTNEED
        return MADV_PAGEOUT


def compiler_mappings(smaps_text: str) -> List[Mapping]:
    """Each mapping of a compiler library in a /proc/PID/smaps text."""
    out: List[Mapping] = []
    current: Optional[Mapping] = None
    for line in smaps_text.splitlines():
        head = _HEAD.match(line)
        if head:
            if current is not None:
                out.append(current)
            fields = line.split(None, 5)
            path = fields[5].strip() if len(fields) == 6 else ""
            current = None
            if COMPILER_LIBRARY.search(path):
                current = Mapping(int(head.group(1), 16), int(head.group(2), 16),
                                  "w" in head.group(3))
        elif current is not None and line.startswith("Anonymous:"):
            current = replace(current, anonymous_kib=int(line.split()[1]))
        elif current is not None and line.startswith("Rss:"):
            current = replace(current, rss_kib=int(line.split()[1]))
    if current is not None:
        out.append(current)
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
        with open("/proc/self/smaps") as f:
            mappings = compiler_mappings(f.read())
    except OSError:
        return
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    for m in mappings:
        libc.madvise(m.start, m.end - m.start, m.advice)   # EINVAL before 5.4: kept
