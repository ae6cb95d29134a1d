"""Kernel struct fields a BPF program reads, placed from the running
kernel's BTF, for programs compiled without this kernel's own headers.

A probe candidate that reads structs names each field it reads as a Field:
a macro name and a C-like path from a pointer to a struct, e.g.
Field("TASK_CGROUP", "task_struct->cgroups->dfl_cgrp->kn->id"). Each `->`
is a pointer the program follows, each `.` a struct embedded in place, and
`a|b` names a member that was renamed (the first this kernel has wins). The
program gets -D<NAME>_OFF<i> (the byte offset read at the i-th pointer) and
-D<NAME>_SIZE (the last member's size), and reads with bpf/btf.h's FIELD_AT
and PTR_AT; an Enumerator passes an enum constant's value the same way. The
C side lists the names in a `// btf:` line (tests/unit/test_cdefs.py). A
field the kernel does not have, or has in another shape (a pointer where an
embedded struct was, a bitfield), is a Missing reason: the candidate is not
tried, never compiled to read the wrong place.

Parsing the BTF costs ~90 ms of Python; what was resolved is cached under
CACHE_DIR, keyed by the BTF's identity (its header, size and time, and the
kernel's build id), so later starts read one small JSON file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

from . import btf as btf_reader

CACHE_DIR = "/var/cache/bpf-pytools/btf"
NOTES = "/sys/kernel/notes"         # the kernel's ELF notes: its build id


@dataclass(frozen=True)
class Field:
    name: str     # macro prefix: NAME_OFF0.., NAME_SIZE
    path: str     # "task_struct->cgroups->dfl_cgrp->kn->id"

    def key(self) -> str:
        return "field:" + self.path


@dataclass(frozen=True)
class Enumerator:
    name: str     # macro
    enumerator: str   # "__REQ_SYNC"

    def key(self) -> str:
        return "enum:" + self.enumerator


Wanted = Union[Field, Enumerator]


class Missing(Exception):
    """This kernel's BTF does not have what a program reads, in the shape
    it reads it."""


_STEP = re.compile(r"(->|\.)([\w|]+)")


def parse_path(path: str) -> Tuple[str, List[Tuple[str, List[str]]]]:
    """("task_struct", [("->", ["cgroups"]), ...]); the first step is "->"."""
    head, _, rest = path.partition("->")
    steps = [(sep, names.split("|")) for sep, names in _STEP.findall("->" + rest)]
    if not head or not rest or "".join(s + "|".join(n) for s, n in steps) != "->" + rest:
        raise ValueError(f"bad field path {path!r}")
    return head, steps


def resolve_field(btf: btf_reader.Btf, path: str) -> dict:
    """{"offsets": [offset read at each pointer], "size": bytes}; raises
    Missing."""
    head, steps = parse_path(path)
    current = btf.struct(head)
    if current is None:
        raise Missing(f"no struct {head}")
    where, offsets, offset = head, [], 0
    member: Optional[btf_reader.Member] = None      # the step before's
    for sep, names in steps:
        if member is not None:      # a step after the first: from the member before
            want = (btf_reader.PTR,) if sep == "->" else (btf_reader.STRUCT, btf_reader.UNION)
            if member.kind not in want:
                raise Missing(f"{where} is {'not a pointer' if sep == '->' else 'a pointer'}")
            if sep == "->":
                offsets.append(offset)
                offset, current = 0, btf.pointee(member.type_id)
                if btf.kind(current) not in (btf_reader.STRUCT, btf_reader.UNION):
                    raise Missing(f"{where} does not point to a struct")
            else:
                current = member.type_id
        found = [(n, m) for n in names for m in [btf.member(current, n)] if m is not None]
        if not found:
            raise Missing(f"struct {btf.type_name(current)} has no member "
                          f"{' or '.join(names)}")
        name, member = found[0]
        where = f"{where}{sep}{name}"
        if member.bits or member.bit_offset % 8:
            raise Missing(f"{where} is a bitfield")
        offset += member.offset
    if member is None:
        raise ValueError(f"bad field path {path!r}")    # parse_path gives one step at least
    offsets.append(offset)
    return {"offsets": offsets, "size": member.size}


def resolve(btf: btf_reader.Btf, wanted: Wanted) -> dict:
    """What a Field or Enumerator is on this kernel, or {"missing": why}."""
    try:
        if isinstance(wanted, Field):
            return resolve_field(btf, wanted.path)
        value = btf.enum_value(wanted.enumerator)
        if value is None:
            raise Missing(f"no enumerator {wanted.enumerator}")
        return {"value": value}
    except (Missing, btf_reader.BtfError) as e:
        return {"missing": str(e)}


def flags(wanted: Wanted, resolved: dict) -> List[str]:
    if "value" in resolved:
        return [f"-D{wanted.name}={resolved['value']}"]
    return [f"-D{wanted.name}_OFF{i}={o}" for i, o in enumerate(resolved["offsets"])] + \
        [f"-D{wanted.name}_SIZE={resolved['size']}"]


# ------------------------------------------------------------------ identity

def build_id(notes: bytes) -> Optional[str]:
    """The GNU build id among the kernel's ELF notes (type 3, name "GNU")."""
    at = 0
    while at + 12 <= len(notes):
        namesz, descsz, kind = (int.from_bytes(notes[at + i:at + i + 4], "little")
                                for i in (0, 4, 8))
        name_end = at + 12 + (namesz + 3) // 4 * 4
        if kind == 3 and notes[at + 12:at + 12 + namesz].rstrip(b"\0") == b"GNU":
            return notes[name_end:name_end + descsz].hex()
        at = name_end + (descsz + 3) // 4 * 4
    return None


def identity(path: str) -> str:
    """What names this BTF without reading it all: its header, size and
    modification time, and the kernel's build id where readable."""
    st = os.stat(path)
    with open(path, "rb") as f:
        header = f.read(24)
    try:
        with open(NOTES, "rb") as f:
            kernel = build_id(f.read()) or ""
    except OSError:
        kernel = ""
    text = f"{header.hex()}:{st.st_size}:{st.st_mtime_ns}:{kernel}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# ------------------------------------------------------------------ lookup

class BtfFields:
    """Resolves what programs read against one BTF file, cached on disk."""

    def __init__(self, path: str = btf_reader.VMLINUX, cache_dir: Optional[str] = CACHE_DIR):
        self.path, self.cache_dir = path, cache_dir
        self._known: Optional[Dict[str, dict]] = None
        self.parsed = False        # whether this process parsed the BTF (not all cached)

    def _cache_file(self) -> Optional[str]:
        if not self.cache_dir:
            return None
        return os.path.join(self.cache_dir, identity(self.path) + ".json")

    def _load_cache(self) -> Dict[str, dict]:
        if self._known is None:
            self._known = {}
            try:
                with open(self._cache_file() or "") as f:
                    self._known = json.load(f)
            except (OSError, ValueError):
                pass
        return self._known

    def _save_cache(self) -> None:
        path = self._cache_file()
        if not path:
            return
        try:       # a read-only or absent cache only costs the parse again
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}"
            with open(tmp, "w") as f:
                json.dump(self._known, f, sort_keys=True)
            os.replace(tmp, path)
        except OSError:
            pass

    def lookup(self, wanted: Sequence[Wanted]) -> Tuple[List[str], Optional[str]]:
        """(-D flags, None), or ([], why one of them cannot be read)."""
        if not os.path.exists(self.path):
            return [], f"the kernel has no BTF ({self.path})"
        try:
            known = self._load_cache()
            new = [w for w in wanted if w.key() not in known]
            if new:     # parsed, resolved, and let go (~12 MiB while held)
                parsed = btf_reader.load(self.path)
                self.parsed = True
                for w in new:
                    known[w.key()] = resolve(parsed, w)
                del parsed
                self._save_cache()
        except (OSError, btf_reader.BtfError) as e:
            return [], f"cannot read the kernel's BTF {self.path}: {e}"
        out: List[str] = []
        for w in wanted:
            result = known[w.key()]
            if "missing" in result:
                what = w.path if isinstance(w, Field) else w.enumerator
                return [], f"this kernel's BTF lacks {what}: {result['missing']}"
            out += flags(w, result)
        return out, None
