from pytools.memory import compiler_mappings

MAPS = """\
55d0c0a00000-55d0c0b00000 r--p 00000000 08:01 123 /usr/bin/python3.11
7f0000000000-7f0000100000 r--p 00000000 08:01 456 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
7f0000100000-7f0002000000 r-xp 00100000 08:01 456 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
7f0002000000-7f0002100000 rw-p 02000000 08:01 456 /usr/lib/x86_64-linux-gnu/libLLVM-14.so.1
7f0003000000-7f0003800000 r-xp 00000000 08:01 789 /usr/lib/llvm-14/lib/libclang-cpp.so.14
7f0004000000-7f0004001000 r-xp 00000000 08:01 790 /usr/lib/x86_64-linux-gnu/libbcc.so.0.26.0
7f0005000000-7f0005001000 r-xp 00000000 08:01 791 /opt/x/libLLVMish-notes.txt.d/x
7f0006000000-7f0006100000 rw-p 00000000 00:00 0
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]
"""


def test_compiler_mappings_are_llvm_and_clang_only():
    assert compiler_mappings(MAPS) == [
        (0x7f0000000000, 0x7f0000100000), (0x7f0000100000, 0x7f0002000000),
        (0x7f0002000000, 0x7f0002100000), (0x7f0003000000, 0x7f0003800000)]


def test_compiler_mappings_of_nothing():
    assert compiler_mappings("") == []
    assert compiler_mappings("garbage line\n7f-80 r--p 0 0:0 0\n") == []
