"""Reading BPF hash maps: in batches where the kernel has them.

bcc's table.items() makes two bpf() calls per entry (next key, lookup);
BPF_MAP_LOOKUP_BATCH (5.6+) reads many entries per call, about 8x faster at
a few thousand entries (scripts/bench-pods). Where the kernel or the map
type refuses batches, the one-by-one walk is used, once decided per table.
Values come back as they do from items(), but scalar leaves are ints.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, List, Tuple

_no_batch: set = set()


def items(table) -> List[Tuple[Any, Any]]:
    """Every (key, value) of a bcc hash map; scalar values as ints."""
    ident = id(table)
    if ident not in _no_batch:
        try:
            return [(k, v) for k, v in table.items_lookup_batch()]
        except Exception:      # bcc raises a bare Exception: kernel or map type without batches
            _no_batch.add(ident)
    return [(k, scalar(v)) for k, v in table.items()]


def delete_keys(table, ids: Iterable[int], key_id: Callable[[Any], int]) -> None:
    """Delete every entry of a bcc hash map whose key_id(key) is in ids
    (gone pods' cgroup ids)."""
    gone = set(ids)
    for key in [k for k in table.keys() if key_id(k) in gone]:
        table.pop(key, None)


def scalar(value) -> Any:
    """An int for a scalar leaf (a ctypes number), else the value itself."""
    return value.value if hasattr(value, "value") and not hasattr(value, "_fields_") \
        else value
