"""A small reader of the kernel's BTF (/sys/kernel/btf/vmlinux): where a
struct member is and how big it is, and the value of an enum constant.

The format is the kernel's Documentation/bpf/btf.rst: a header, then a type
section of variable-length records (type id 1 is the first), then a string
section. Only what offsets need is decoded: one pass over the type section
records where each type starts and indexes structs, unions and enums by the
offset of their name; members are decoded only for the structs asked about.
Little-endian BTF only (the magic says which).
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

VMLINUX = "/sys/kernel/btf/vmlinux"
MAGIC = 0xEB9F

INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, \
    FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(1, 20)
# Bytes after the 12-byte record of each kind: (fixed, per vlen item).
_EXTRA = {INT: (4, 0), ARRAY: (12, 0), STRUCT: (0, 12), UNION: (0, 12), ENUM: (0, 8),
          FUNC_PROTO: (0, 8), VAR: (4, 0), DATASEC: (0, 12), DECL_TAG: (4, 0),
          ENUM64: (0, 12)}
_QUALIFIERS = (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG)


class BtfError(Exception):
    """The blob is not BTF this reader understands."""


@dataclass(frozen=True)
class Member:
    bit_offset: int      # from the start of the enclosing struct
    bits: int            # 0 unless a bitfield
    type_id: int         # the member's type, qualifiers stripped
    kind: int            # that type's kind (INT, PTR, STRUCT...)
    size: int            # its size in bytes (8 for a pointer)

    @property
    def offset(self) -> int:
        return self.bit_offset // 8


class Btf:
    def __init__(self, data: bytes):
        if len(data) < 24:
            raise BtfError("too short for a BTF header")
        magic, version, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != MAGIC:
            raise BtfError("not little-endian BTF (bad magic)")
        if version != 1:
            raise BtfError(f"BTF version {version}, this reader knows 1")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        self.data = data
        self.types_at = hdr_len + type_off
        self.types_end = self.types_at + type_len
        self.strings_at = hdr_len + str_off
        self.strings_end = self.strings_at + str_len
        if self.types_end > len(data) or self.strings_end > len(data):
            raise BtfError("sections run past the end of the blob")
        # type id -> record offset (id 0: void); 4 bytes each, not an int object
        self._starts = array("I", [0])
        self._named: Dict[int, List[int]] = {}  # name offset -> struct/union/enum ids
        self._scan()

    # ------------------------------------------------------------- scanning
    def _scan(self) -> None:
        data, at, end = self.data, self.types_at, self.types_end
        unpack = struct.Struct("<III").unpack_from
        starts, named, extra = self._starts, self._named, _EXTRA
        kinds_named = (STRUCT, UNION, ENUM, ENUM64)
        while at < end:
            name_off, info, _ = unpack(data, at)
            kind = (info >> 24) & 0x1F
            starts.append(at)
            if kind in kinds_named and name_off:
                named.setdefault(name_off, []).append(len(starts) - 1)
            fixed, each = extra.get(kind, (0, 0))
            at += 12 + fixed + each * (info & 0xFFFF)
        if at != end:
            raise BtfError("type section does not end on a record")

    def _record(self, type_id: int) -> Tuple[int, int, int, int, int]:
        """(name offset, kind, vlen, kind_flag, size or type) of a type."""
        at = self._starts[type_id]
        name_off, info, size_type = struct.unpack_from("<III", self.data, at)
        return name_off, (info >> 24) & 0x1F, info & 0xFFFF, info >> 31, size_type

    def name(self, offset: int) -> str:
        at = self.strings_at + offset
        return self.data[at:self.data.index(b"\0", at)].decode()

    def _name_offset(self, name: str) -> Optional[int]:
        """Where `name` is in the string section (BTF's strings are unique)."""
        needle = b"\0" + name.encode() + b"\0"
        at = self.data.find(needle, self.strings_at, self.strings_end)
        return None if at < 0 else at + 1 - self.strings_at

    # ------------------------------------------------------------- types
    def strip(self, type_id: int) -> int:
        """The type under typedefs, const, volatile, restrict and type tags."""
        for _ in range(64):
            _, kind, _, _, ref = self._record(type_id)
            if kind not in _QUALIFIERS:
                return type_id
            type_id = ref
        raise BtfError(f"type {type_id}: qualifier loop")

    def kind(self, type_id: int) -> int:
        return 0 if type_id == 0 else self._record(type_id)[1]

    def size(self, type_id: int) -> int:
        type_id = self.strip(type_id)
        if type_id == 0:
            return 0
        _, kind, _, _, size_type = self._record(type_id)
        if kind == PTR:
            return 8
        if kind == ARRAY:
            elem, _, count = struct.unpack_from("<III", self.data, self._starts[type_id] + 12)
            return self.size(elem) * count
        if kind in (INT, STRUCT, UNION, ENUM, ENUM64, FLOAT):
            return size_type
        raise BtfError(f"type {type_id} (kind {kind}) has no size")

    def pointee(self, type_id: int) -> int:
        """What a pointer points to, qualifiers stripped."""
        _, kind, _, _, ref = self._record(self.strip(type_id))
        if kind != PTR:
            raise BtfError(f"type {type_id} is not a pointer")
        return self.strip(ref)

    def struct(self, name: str) -> Optional[int]:
        """The id of struct or union `name` with members (not a forward
        declaration), or None."""
        offset = self._name_offset(name)
        for type_id in self._named.get(offset, ()) if offset is not None else ():
            _, kind, vlen, _, _ = self._record(type_id)
            if kind in (STRUCT, UNION):
                return type_id
        return None

    def type_name(self, type_id: int) -> str:
        return self.name(self._record(type_id)[0]) if type_id else "void"

    def member(self, struct_id: int, name: str) -> Optional[Member]:
        """Member `name` of a struct or union, also inside its anonymous
        struct and union members (as C lets one name it), or None."""
        _, kind, vlen, kind_flag, _ = self._record(struct_id)
        if kind not in (STRUCT, UNION):
            raise BtfError(f"type {struct_id} is not a struct or union")
        at = self._starts[struct_id] + 12
        for i in range(vlen):
            name_off, type_id, offset = struct.unpack_from("<III", self.data, at + 12 * i)
            bits, bit_offset = (offset >> 24, offset & 0xFFFFFF) if kind_flag else (0, offset)
            inner = self.strip(type_id)
            inner_kind = self.kind(inner)
            if name_off == 0 and inner_kind in (STRUCT, UNION):
                found = self.member(inner, name)
                if found is not None:
                    return Member(bit_offset + found.bit_offset, found.bits, found.type_id,
                                  found.kind, found.size)
            elif name_off and self.name(name_off) == name:
                size = (bits + 7) // 8 if bits else self.size(inner)
                return Member(bit_offset, bits, inner, inner_kind, size)
        return None

    def enum_value(self, name: str) -> Optional[int]:
        """The value of enumerator `name` in any enum, or None."""
        offset = self._name_offset(name)
        if offset is None:
            return None
        for type_id in range(1, len(self._starts)):
            _, kind, vlen, kind_flag, _ = self._record(type_id)
            if kind not in (ENUM, ENUM64):
                continue
            at, step = self._starts[type_id] + 12, 8 if kind == ENUM else 12
            for i in range(vlen):
                if struct.unpack_from("<I", self.data, at + step * i)[0] != offset:
                    continue
                if kind == ENUM:
                    return struct.unpack_from("<i" if kind_flag else "<I", self.data,
                                              at + step * i + 4)[0]
                low, high = struct.unpack_from("<II", self.data, at + step * i + 4)
                value = high << 32 | low
                return value - (1 << 64) if kind_flag and value >> 63 else value
        return None


def load(path: str = VMLINUX) -> Btf:
    with open(path, "rb") as f:
        return Btf(f.read())
