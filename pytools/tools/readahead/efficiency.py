"""Readahead efficiency, an optional feature of bpf/readahead.c: which
hooks this kernel offers to follow a page read ahead to its first use or
its eviction."""

from __future__ import annotations

from typing import Callable, List, Mapping, Optional, Tuple

from ...probes import Facts, Feature, Hook, hook_problem
from ... import kernel

# Readahead efficiency (bpf/readahead.c, EFFICIENCY): pages enter and leave
# the cache through these tracepoints (6.1 and 6.18 have them), with the
# fields it reads...
PAGE_TRACEPOINTS = {
    "filemap:mm_filemap_add_to_page_cache": ("s_dev", "i_ino", "index", "order"),
    "filemap:mm_filemap_delete_from_page_cache": ("s_dev", "i_ino", "index", "order"),
}
# ...and are used through these (6.18 has them, 6.1 does not)...
USE_TRACEPOINTS = {
    "filemap:mm_filemap_get_pages": ("s_dev", "i_ino", "index", "last_index"),
    "filemap:mm_filemap_map_pages": ("s_dev", "i_ino", "index", "last_index"),
    "filemap:mm_filemap_fault": ("s_dev", "i_ino", "index"),
}
# ...or, where those are missing, through the exit of these functions (fexit).
USE_FUNCTIONS = ("filemap_read", "filemap_map_pages", "filemap_fault")
EFFICIENCY_MEANING = ("used: reached by read(2), splice or sendfile, or mapped by a page "
                      "fault (fault-around included); dropped: left the page cache before "
                      "any use; unused now: read ahead while the tool ran, neither yet")


EFFICIENCY = "efficiency"


def _missing(tracepoints: Mapping[str, Tuple[str, ...]],
             fields_of: Callable[[str], Optional[frozenset]]) -> List[str]:
    missing = []
    for name, needed in tracepoints.items():
        fields = fields_of(name)
        if fields is None:
            missing.append(f"tracepoint {name}")
        elif not set(needed) <= fields:
            missing.append(f"tracepoint {name} fields {','.join(sorted(set(needed) - fields))}")
    return missing


def fexit_problem(facts: Facts) -> Callable[[str], Optional[str]]:
    return lambda function: hook_problem(Hook("fexit", function), facts)


def efficiency_plan(fields_of: Callable[[str], Optional[frozenset]],
                    fexit_problem: Callable[[str], Optional[str]]) -> Feature:
    """How readahead efficiency can be measured here: the page tracepoints,
    with the use tracepoints or else fexit on the use functions.
    fields_of(name): a tracepoint's field names, None if absent;
    fexit_problem(function): why fexit cannot hook it, or None."""
    lacks = _missing(PAGE_TRACEPOINTS, fields_of)
    page_hooks = tuple(Hook("tracepoint", name) for name in PAGE_TRACEPOINTS)
    if not lacks:
        no_tracepoints = _missing(USE_TRACEPOINTS, fields_of)
        if not no_tracepoints:
            return Feature(EFFICIENCY, ("-DEFFICIENCY", "-DUSE_TRACEPOINTS"), page_hooks +
                                  tuple(Hook("tracepoint", name) for name in USE_TRACEPOINTS))
        no_fexit = [f"fexit {fn}: {p}" for fn in USE_FUNCTIONS for p in [fexit_problem(fn)] if p]
        if not no_fexit:
            return Feature(EFFICIENCY, ("-DEFFICIENCY", "-DUSE_FEXIT"), page_hooks +
                                  tuple(Hook("fexit", fn) for fn in USE_FUNCTIONS))
        lacks = no_tracepoints + no_fexit[:1]
    return Feature(EFFICIENCY, problem="readahead efficiency (pages read ahead but never used) "
                                       "is not measured: this kernel lacks " + "; ".join(lacks))


def kernel_efficiency_feature() -> Feature:
    """efficiency_plan asked of this kernel (needs the loader's prepare())."""
    # the loader (headers, tempfiles) only where a program is loaded: --help starts without it.
    from ...loader import prepare
    env = prepare()
    return efficiency_plan(lambda name: kernel.tracepoint_fields(env.tracefs, name),
                           fexit_problem(env.facts))
