"""Offsets of kernel struct members from the kernel's own BTF
(/sys/kernel/btf/vmlinux), for programs that read a struct or two where
the kernel headers at hand may be another kernel's (scripts/setup merges
generic ones): BCC compiles against headers, not BTF, so a tool passes
the offsets as -D flags and reads with bpf_probe_read_kernel.

Only what that needs of the BTF format (kernel Documentation/bpf/btf.rst):
the header, then each type's 12-byte record and its kind's trailing data.
"""

from __future__ import annotations

import struct
from typing import Dict, List, Optional, Tuple

VMLINUX = "/sys/kernel/btf/vmlinux"
MAGIC = 0xEB9F
STRUCT, UNION = 4, 5
# Bytes after the 12-byte record, by kind: a fixed part, and per member (vlen).
TAIL = {1: (4, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 13: (0, 8),
        14: (4, 0), 15: (0, 12), 17: (4, 0), 19: (0, 12)}


class BTF:
    """The types of one BTF blob: their records' positions, and names."""

    def __init__(self, blob: bytes):
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, _str_len = \
            struct.unpack_from("<HBBIIIII", blob)
        if magic != MAGIC:
            raise ValueError("not BTF (bad magic)")
        self.blob = blob
        self.strings = hdr_len + str_off
        self.records: List[int] = [0]         # type id 0 is void
        pos, end = hdr_len + type_off, hdr_len + type_off + type_len
        while pos < end:
            info = struct.unpack_from("<I", blob, pos + 4)[0]
            fixed, each = TAIL.get((info >> 24) & 0x1f, (0, 0))
            self.records.append(pos)
            pos += 12 + fixed + each * (info & 0xffff)

    def name(self, offset: int) -> str:
        end = self.blob.index(b"\0", self.strings + offset)
        return self.blob[self.strings + offset:end].decode()

    def _record(self, type_id: int) -> Tuple[int, int, int, int]:
        pos = self.records[type_id]
        name_off, info = struct.unpack_from("<II", self.blob, pos)
        return pos, name_off, (info >> 24) & 0x1f, info

    def members(self, type_id: int) -> Dict[str, int]:
        """A struct's or union's members by name, at their byte offsets;
        those of anonymous struct and union members included."""
        pos, _, _, info = self._record(type_id)
        out: Dict[str, int] = {}
        for i in range(info & 0xffff):
            name_off, member_type, offset = struct.unpack_from("<III", self.blob,
                                                               pos + 12 + 12 * i)
            bits = offset & 0xffffff if info >> 31 else offset
            if name_off:
                out[self.name(name_off)] = bits // 8
            elif self._record(member_type)[2] in (STRUCT, UNION):
                for inner, at in self.members(member_type).items():
                    out.setdefault(inner, bits // 8 + at)
        return out

    def struct_offsets(self, struct_name: str, members: List[str]) -> Dict[str, int]:
        """Byte offsets of `members` of struct `struct_name` (KeyError if absent)."""
        for type_id in range(1, len(self.records)):
            _, name_off, kind, info = self._record(type_id)
            if kind == STRUCT and info & 0xffff and self.name(name_off) == struct_name:
                found = self.members(type_id)
                return {m: found[m] for m in members}
        raise KeyError(f"no struct {struct_name} in BTF")


def kernel_offsets(struct_name: str, members: List[str],
                   path: str = VMLINUX) -> Optional[Dict[str, int]]:
    """The running kernel's offsets, or None without BTF (or those members)."""
    try:
        with open(path, "rb") as f:
            return BTF(f.read()).struct_offsets(struct_name, members)
    except (OSError, ValueError, KeyError, struct.error):
        return None
