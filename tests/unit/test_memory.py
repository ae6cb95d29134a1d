from pytools.memory import MADV_DONTNEED, MADV_PAGEOUT, Mapping, compiler_mappings


def mapping(head: str, anonymous_kib: int = 0, rss_kib: int = 8) -> str:
    return (f"{head}\nSize:               64 kB\nRss:                {rss_kib} kB\n"
            f"Private_Clean:        0 kB\nAnonymous:          {anonymous_kib} kB\n"
            "VmFlags: rd mr mw me sd\n")


SMAPS = "".join([
    mapping("55d0c0a00000-55d0c0b00000 r--p 00000000 08:01 123   /usr/bin/python3.11"),
    mapping("7f0000000000-7f0000100000 r--p 00000000 08:01 456   "
            "/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1"),
    mapping("7f0000100000-7f0002000000 r-xp 00100000 08:01 456   "
            "/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1"),
    mapping("7f0002000000-7f0002100000 r--p 02000000 08:01 456   "
            "/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1", anonymous_kib=4),     # RELRO
    mapping("7f0002100000-7f0002200000 rw-p 02100000 08:01 456   "
            "/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1", anonymous_kib=12),
    mapping("7f0003000000-7f0003800000 r-xp 00000000 08:01 789   "
            "/usr/lib/llvm-14/lib/libclang-cpp.so.14"),
    mapping("7f0004000000-7f0004001000 r-xp 00000000 08:01 790   "
            "/usr/lib/x86_64-linux-gnu/libbcc.so.0.26.0"),
    mapping("7f0005000000-7f0005001000 r-xp 00000000 08:01 791   /opt/libLLVMish.d/x"),
    mapping("7f0006000000-7f0006100000 rw-p 00000000 00:00 0 ", anonymous_kib=64),
    mapping("7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0   [stack]", anonymous_kib=8),
])


def test_compiler_mappings_are_llvm_and_clang_only_with_what_they_hold():
    assert compiler_mappings(SMAPS) == [
        Mapping(0x7f0000000000, 0x7f0000100000, False, 0, 8),
        Mapping(0x7f0000100000, 0x7f0002000000, False, 0, 8),
        Mapping(0x7f0002000000, 0x7f0002100000, False, 4, 8),
        Mapping(0x7f0002100000, 0x7f0002200000, True, 12, 8),
        Mapping(0x7f0003000000, 0x7f0003800000, False, 0, 8)]


def test_only_mappings_never_written_are_dropped_the_rest_paged_out():
    advice = [m.advice for m in compiler_mappings(SMAPS)]
    assert advice == [MADV_DONTNEED, MADV_DONTNEED, MADV_PAGEOUT, MADV_PAGEOUT, MADV_DONTNEED]
    # writable but nothing written yet: still paged out, never dropped
    assert Mapping(0, 4096, True, 0).advice == MADV_PAGEOUT
    # no Anonymous line seen (an old kernel's smaps): assumed written
    (m,) = compiler_mappings("7f00-7f10 r-xp 0 08:01 1 /usr/lib/libLLVM-14.so.1\n")
    assert m.advice == MADV_PAGEOUT


def test_compiler_mappings_of_nothing():
    assert compiler_mappings("") == []
    assert compiler_mappings("garbage line\nRss: 4 kB\n") == []
