"""pytools/btf.py and pytools/structs.py on BTF blobs built here, record by
record as Documentation/bpf/btf.rst lays them out: offsets found through
pointers, embedded structs, anonymous unions and typedefs; a field this
kernel lacks (task_struct.state on 5.14+) makes the candidate unavailable
with one reason, never a wrong offset; resolutions are cached by the BTF's
identity."""

import struct

import pytest

from pytools import btf, structs
from pytools.probes import BTF_SOURCE, Candidate, Facts, Hook, usable_hooks


class Blob:
    """A BTF blob: add types (ids from 1), then bytes()."""

    def __init__(self):
        self.strings = b"\0"
        self.types = b""
        self.count = 0

    def s(self, name: str) -> int:
        if not name:
            return 0
        at = self.strings.find(b"\0" + name.encode() + b"\0")
        if at >= 0:
            return at + 1
        self.strings += name.encode() + b"\0"
        return len(self.strings) - len(name) - 1

    def add(self, name, kind, vlen, size_type, extra=b"", kind_flag=0) -> int:
        info = kind_flag << 31 | kind << 24 | vlen
        self.types += struct.pack("<III", self.s(name), info, size_type) + extra
        self.count += 1
        return self.count

    def int(self, name, size):
        return self.add(name, btf.INT, 0, size, struct.pack("<I", size * 8))

    def ptr(self, to):
        return self.add("", btf.PTR, 0, to)

    def typedef(self, name, to):
        return self.add(name, btf.TYPEDEF, 0, to)

    def array(self, elem, index, n):
        return self.add("", btf.ARRAY, 0, 0, struct.pack("<III", elem, index, n))

    def struct(self, name, size, members, kind=btf.STRUCT, bitfields=False):
        """members: (name, type id, bit offset[, bitfield size])."""
        extra = b""
        for m in members:
            offset = (m[3] << 24 | m[2]) if bitfields else m[2]
            extra += struct.pack("<III", self.s(m[0]), m[1], offset)
        return self.add(name, kind, len(members), size, extra, int(bitfields))

    def enum(self, name, values):
        extra = b"".join(struct.pack("<Ii", self.s(n), v) for n, v in values)
        return self.add(name, btf.ENUM, len(values), 4, extra)

    def bytes(self) -> bytes:
        header = struct.pack("<HBBIIIII", btf.MAGIC, 1, 0, 24, 0, len(self.types),
                             len(self.types), len(self.strings))
        return header + self.types + self.strings


def kernel_blob(state="__state", cgroups_embedded=False) -> bytes:
    """task_struct (after a forward declaration of it) with pid, tgid, the
    state field named `state`, comm, and the cgroup chain
    task->cgroups->dfl_cgrp->kn->id (id inside an anonymous union, pid_t a
    typedef, cgroups const)."""
    b = Blob()
    b.add("task_struct", btf.FWD, 0, 0)      # a forward declaration first
    i32 = b.int("int", 4)
    u32 = b.int("unsigned int", 4)
    u64 = b.int("u64", 8)
    char = b.int("char", 1)
    pid_t = b.typedef("pid_t", i32)
    anon = b.struct("", 8, [("id", u64, 0), ("raw", u64, 0)], kind=btf.UNION)
    kn_full = b.struct("kernfs_node", 128, [("flags", u32, 0), ("", anon, 96 * 8)])
    cgroup = b.struct("cgroup", 512, [("self", u64, 0), ("kn", b.ptr(kn_full), 256 * 8)])
    css_set = b.struct("css_set", 256, [("dfl_cgrp", b.ptr(cgroup), 112 * 8)])
    const_css = b.add("", btf.CONST, 0, css_set)
    comm = b.array(char, i32, 16)
    cgroups = css_set if cgroups_embedded else b.ptr(const_css)
    b.struct("task_struct", 4096, [
        (state, u32, 24 * 8, 0), ("pid", pid_t, 1264 * 8, 0), ("tgid", pid_t, 1268 * 8, 0),
        ("flags_bits", u32, 1272 * 8, 3), ("comm", comm, 1800 * 8, 0),
        ("cgroups", cgroups, 2376 * 8, 0)], bitfields=True)
    b.enum("req_flag_bits", [("__REQ_FAILFAST_DEV", 8), ("__REQ_SYNC", 11)])
    b.enum("req_op", [("REQ_OP_READ", 0), ("REQ_OP_WRITE", 1)])
    return b.bytes()


def test_members_are_found_through_typedefs_pointers_and_anonymous_unions():
    k = btf.Btf(kernel_blob())
    task = k.struct("task_struct")
    assert k.member(task, "tgid") == btf.Member(1268 * 8, 0, 2, btf.INT, 4)
    assert k.member(task, "comm").size == 16
    assert k.member(task, "flags_bits").bits == 3
    assert k.member(task, "nonexistent") is None
    assert k.enum_value("__REQ_SYNC") == 11 and k.enum_value("REQ_OP_WRITE") == 1
    assert k.enum_value("NO_SUCH") is None


def test_a_path_gives_the_offset_read_at_each_pointer_and_the_last_size():
    k = btf.Btf(kernel_blob())
    assert structs.resolve_field(k, "task_struct->cgroups->dfl_cgrp->kn->id") == \
        {"offsets": [2376, 112, 256, 96], "size": 8}
    assert structs.resolve_field(k, "task_struct->tgid") == {"offsets": [1268], "size": 4}


def test_a_renamed_field_takes_the_name_this_kernel_has():
    for name in ("__state", "state"):
        k = btf.Btf(kernel_blob(state=name))
        assert structs.resolve_field(k, "task_struct->__state|state") == \
            {"offsets": [24], "size": 4}


@pytest.mark.parametrize("path, reason", [
    ("task_struct->state", "struct task_struct has no member state"),
    ("task_struct->flags_bits", "task_struct->flags_bits is a bitfield"),
    ("task_struct->tgid->x", "task_struct->tgid is not a pointer"),
    ("inode->i_mode", "no struct inode"),
])
def test_a_field_this_kernel_lacks_or_shapes_otherwise_is_a_reason(path, reason):
    k = btf.Btf(kernel_blob())
    with pytest.raises(structs.Missing, match=reason):
        structs.resolve_field(k, path)


def test_an_embedded_struct_where_the_program_follows_a_pointer_is_refused():
    k = btf.Btf(kernel_blob(cgroups_embedded=True))
    with pytest.raises(structs.Missing, match="task_struct->cgroups is not a pointer"):
        structs.resolve_field(k, "task_struct->cgroups->dfl_cgrp")
    assert structs.resolve_field(k, "task_struct->cgroups.dfl_cgrp") == \
        {"offsets": [2376 + 112], "size": 8}


def test_not_btf_is_an_error_not_a_guess():
    with pytest.raises(btf.BtfError):
        btf.Btf(b"\x9f\xeb" + b"\0" * 30)
    with pytest.raises(ValueError):
        structs.parse_path("task_struct.tgid")


FIELDS = (structs.Field("TASK_TGID", "task_struct->tgid"),
          structs.Field("TASK_STATE", "task_struct->__state|state"),
          structs.Field("TASK_CGROUP", "task_struct->cgroups->dfl_cgrp->kn->id"),
          structs.Enumerator("SYNC_BIT", "__REQ_SYNC"))
RAW = Candidate("raw_tracepoint", "scheduler via raw tracepoints", "PROBE_RAW",
                (Hook("raw_tracepoint", "sched:sched_switch"),), reads_structs=True,
                fields=FIELDS)
GENERIC = "the headers are generic linux-headers-6.1, not kernel 6.18's own"


def facts_on(path, cache, layout=GENERIC, prefer_btf=False):
    return Facts(tracepoint_exists=lambda n: True, kprobes_problem=None,
                 fentry_problem=lambda f: None, traceable=lambda f: True,
                 struct_layout_problem=layout,
                 btf_fields=structs.BtfFields(str(path), str(cache)).lookup,
                 prefer_btf=prefer_btf, headers_how="kernel headers (exact)")


def test_without_exact_headers_a_candidate_reads_at_btf_offsets(tmp_path):
    path = tmp_path / "vmlinux"
    path.write_bytes(kernel_blob())
    sel = usable_hooks(RAW, facts_on(path, tmp_path / "cache"))
    assert sel.problem is None and sel.structs == BTF_SOURCE
    assert sel.cflags == ["-DTASK_TGID_OFF0=1268", "-DTASK_TGID_SIZE=4",
                          "-DTASK_STATE_OFF0=24", "-DTASK_STATE_SIZE=4",
                          "-DTASK_CGROUP_OFF0=2376", "-DTASK_CGROUP_OFF1=112",
                          "-DTASK_CGROUP_OFF2=256", "-DTASK_CGROUP_OFF3=96",
                          "-DTASK_CGROUP_SIZE=8", "-DSYNC_BIT=11", "-DSTRUCTS_BTF"]


def test_a_missing_field_makes_the_mode_unavailable_with_one_reason(tmp_path):
    path = tmp_path / "vmlinux"
    path.write_bytes(kernel_blob(state="task_state"))
    sel = usable_hooks(RAW, facts_on(path, tmp_path / "cache"))
    assert sel.problem == (f"{GENERIC}, and this kernel's BTF lacks task_struct->__state|state: "
                           "struct task_struct has no member __state or state")
    assert sel.hooks == [] and sel.cflags == []


def test_exact_headers_come_first_and_no_btf_means_the_old_reason(tmp_path):
    path = tmp_path / "vmlinux"
    path.write_bytes(kernel_blob())
    sel = usable_hooks(RAW, facts_on(path, tmp_path / "cache", layout=None))
    assert sel.problem is None and sel.structs == "kernel headers (exact)" and not sel.cflags
    forced = usable_hooks(RAW, facts_on(path, tmp_path / "c", layout=None, prefer_btf=True))
    assert forced.structs == BTF_SOURCE
    none = usable_hooks(RAW, facts_on(tmp_path / "absent", tmp_path / "cache"))
    assert none.problem == f"{GENERIC}, and the kernel has no BTF ({tmp_path / 'absent'})"


def test_resolutions_are_cached_by_the_btfs_identity(tmp_path):
    path, cache = tmp_path / "vmlinux", tmp_path / "cache"
    path.write_bytes(kernel_blob())
    first = structs.BtfFields(str(path), str(cache))
    assert first.lookup(FIELDS)[1] is None and first.parsed
    again = structs.BtfFields(str(path), str(cache))
    assert again.lookup(FIELDS) == first.lookup(FIELDS) and not again.parsed
    path.write_bytes(kernel_blob(state="task_state"))     # another kernel: another key
    other = structs.BtfFields(str(path), str(cache))
    assert "lacks task_struct->__state|state" in other.lookup(FIELDS)[1] and other.parsed
    assert len(list(cache.iterdir())) == 2


def test_an_unwritable_cache_only_costs_a_parse(tmp_path):
    path = tmp_path / "vmlinux"
    path.write_bytes(kernel_blob())
    (tmp_path / "file").write_text("")
    fields = structs.BtfFields(str(path), str(tmp_path / "file" / "cache"))
    assert fields.lookup(FIELDS)[1] is None


def test_the_kernels_build_id_is_read_from_its_notes():
    note = struct.pack("<III", 4, 20, 3) + b"GNU\0" + bytes(range(20))
    other = struct.pack("<III", 6, 4, 1) + b"Linux\0\0\0" + b"\1\2\3\4"
    assert structs.build_id(other + note) == bytes(range(20)).hex()
    assert structs.build_id(other) is None


def test_btf_first_takes_btf_over_exact_headers_and_headers_where_btf_lacks_a_field(tmp_path):
    from pytools.probes import place_fields
    path = tmp_path / "vmlinux"
    path.write_bytes(kernel_blob())
    exact = facts_on(path, tmp_path / "cache", layout=None)
    flags, source, problem = place_fields(FIELDS, exact, btf_first=True)
    assert source == BTF_SOURCE and "-DSTRUCTS_BTF" in flags and problem is None
    path.write_bytes(kernel_blob(state="task_state"))
    lacking = facts_on(path, tmp_path / "cache2", layout=None)
    assert place_fields(FIELDS, lacking, btf_first=True) == ([], "kernel headers (exact)", None)
    generic = facts_on(path, tmp_path / "cache2")
    assert "lacks task_struct->__state|state" in place_fields(FIELDS, generic, True)[2]
