"""What a BPF program and its Python reader share, said once, in Python.

Enumerations (op codes, counter indices, key kinds) and sizes that cross
the boundary are Python constants, handed to the C program as -D flags by
the tool's cflags (or, for the few every program may take, COMMON, by the
loader to each program); the C side only uses the names (each program lists them
in a `// shared:` line and has no #define of its own for them), so the two
cannot drift: a value changed or reordered here changes both sides, and a
name the C uses that Python does not pass fails the compile.
tests/unit/test_cdefs.py checks each program's `// shared:` line against
the flags its tool and the loader pass.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

from .names import TASK_COMM_LEN

# What any program may take, passed by the loader to every one: a comm's
# bytes with its NUL, as COMM_LEN (the kernel's TASK_COMM_LEN is an enum in
# linux/sched.h, which a -D of that name would break where it is included).
COMMON = {"COMM_LEN": TASK_COMM_LEN}


def enum(prefix: str, names: Sequence[str], first: int = 0) -> Dict[str, int]:
    """PREFIX_NAME = first + index, for each name."""
    return {f"{prefix}_{name.upper().replace('-', '_')}": first + i
            for i, name in enumerate(names)}


def flags(values: Dict[str, int]) -> List[str]:
    return [f"-D{name}={value}" for name, value in values.items()]


def common_flags() -> List[str]:
    """The -D flags of COMMON, which every program is compiled with."""
    return flags(COMMON)
