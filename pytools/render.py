"""Output pieces every tool shares. Pure: plain data in, strings or dicts
out. Each tool's own text and JSON live in its module (pytools/tools/)."""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Hashable, List, Mapping, Optional, Sequence, Tuple, TypeVar

if TYPE_CHECKING:       # annotations only: the functions import it where they use it
    from .hist import Log2Hist

from .hist import slot_range
from .hist import estimate_text
from .hist import bars, summary


WIDTH = 80


K = TypeVar("K", bound=Hashable)


def top_entries(counts: Mapping[K, int], top: int) -> Tuple[List[Tuple[K, int]], int, int]:
    """The `top` largest entries (ties by key), plus how many keys and how
    much count the rest hold."""
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    shown, rest = ordered[:top], ordered[top:]
    return shown, len(rest), sum(v for _, v in rest)


def shorten(text: str, width: int) -> str:
    """Fit `text` in `width` columns keeping its end (a path's file name)."""
    if len(text) <= width:
        return text
    return "…" + text[-(width - 1):]


def shorten_middle(text: str, width: int) -> str:
    """Fit `text` in `width` columns cutting its middle: a path keeps its
    first directories and its file name."""
    if len(text) <= width:
        return text
    tail = (width - 1) * 2 // 3
    return text[:width - 1 - tail] + "…" + text[-tail:]


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def clock_time(when: Optional[_dt.datetime] = None) -> str:
    return (when or _dt.datetime.now()).strftime("%H:%M:%S")


def iso_time(when: Optional[_dt.datetime] = None) -> str:
    return (when or _dt.datetime.now().astimezone()).isoformat(timespec="milliseconds")


def table(rows: Sequence[Sequence], headers: Sequence[str]) -> str:
    """A plain table: first column left, the numbers right, as printed."""
    from tabulate import tabulate     # here: the exporter never prints tables (~5 MiB)
    return tabulate(rows, headers=list(headers), tablefmt="plain", disable_numparse=True,
                    colalign=("left",) + ("right",) * (len(headers) - 1))


def fitted_table(rows: Sequence[Sequence], headers: Sequence[str],
                 shorten_first=shorten_middle, width: int = WIDTH) -> str:
    """table() in `width` columns where the first column (names, paths) can
    give way: it is shortened by as much as the table is too wide."""
    text = table(rows, headers)
    excess = max(len(line) for line in text.splitlines()) - width
    if excess <= 0:
        return text
    longest = max(len(str(row[0])) for row in rows)
    keep = max(len(headers[0]), longest - excess)
    return table([[shorten_first(str(row[0]), keep), *row[1:]] for row in rows], headers)


def process_label(comm: str, pid: Optional[int]) -> str:
    """How every tool names a process (or thread): `dd [10642]`."""
    return f"{comm} [{pid}]" if pid else comm


def wrap_parts(parts: Sequence[str], sep: str = "  ", indent: str = "  ",
               width: int = WIDTH) -> List[str]:
    """`parts` joined by `sep` on as few lines as fit `width`, a part never
    cut, each further line indented."""
    lines = [parts[0]]
    for part in parts[1:]:
        if len(lines[-1]) + len(sep) + len(part) <= width:
            lines[-1] += sep + part
        else:
            lines[-1] += sep.rstrip()
            lines.append(indent + part)
    return lines


def title(text: str, timestamp: Optional[str]) -> str:
    return (f"{timestamp} " if timestamp else "") + text


# ------------------------------------------------------------- log2 histograms

def hist_json(hist) -> dict:
    """A Log2Hist as plain JSON: used slots, exact count/sum, estimated
    percentiles. For durations each slot and each estimate's slot also has
    its bounds in seconds, [lo_s, hi_s): an estimate is only as good as its
    slot, and slot 0 (under one unit) has no estimate (null)."""
    rng = hist.nonzero_range()
    slots = []
    if rng:
        for k in range(rng[0], rng[1] + 1):
            lo, hi = slot_range(k)
            slot = {"lo": lo, "hi": hi, "count": hist.slots[k]}
            if hist.timed:
                slot["lo_s"], slot["hi_s"] = hist.slot_seconds(k)
            slots.append(slot)
    sum_key = "sum_ns" if hist.timed else "sum"
    out = {"unit": hist.unit_name, "count": hist.count, sum_key: hist.total, "slots": slots}
    if hist.count:
        out["avg"] = round(hist.mean_units(), 3)
        quantiles = [(f"p{q}", q / 100, hist.quantile_slot(q / 100)) for q in (50, 90, 99)]
        out["estimates"] = {name: None if hist.timed and k == 0 else
                            round(hist.estimate(q), 3) for name, q, k in quantiles}
        if hist.timed:
            out["estimate_slots_s"] = {name: list(hist.slot_seconds(k))
                                       for name, _, k in quantiles}
    return out


def groups_json(groups: Sequence[Tuple[str, dict, Log2Hist]], top: int) -> Tuple[list, dict]:
    """Grouped histograms as every tool writes them in JSON: `groups[]`, the
    `top` first of (key, labels, hist), each {"key", its labels, "hist"};
    and `other`, the rest: how many keys and what they counted."""
    shown = [{"key": key, **labels, "hist": hist_json(hist)}
             for key, labels, hist in groups[:top]]
    rest = groups[top:]
    return shown, {"keys": len(rest), "count": sum(h.count for _, _, h in rest)}


# Grouped histograms: more groups than this are shown one line each
# (compact) unless --histograms asks for every histogram.
COMPACT_AFTER = 3


def max_column(hist) -> str:
    """The max's slot in few columns: 16384-32767, or <1 (under one unit)."""
    k = hist.nonzero_range()[1]
    if hist.timed and k == 0:
        return "<1"
    lo, hi = slot_range(k)
    return f"{lo}-{hi}"


def compact_table(groups: Sequence[Tuple[str, dict, Log2Hist]], key_header: str,
                  unit_label: str, width: int = WIDTH) -> str:
    """One line per group: count, exact average, p50 and p99 estimates and
    the slot of the max, in `width` columns (keys shortened as needed)."""
    rows = []
    for key, _, hist in groups:
        if not hist.count:
            rows.append([key, 0, "-", "-", "-", "-"])
            continue
        rows.append([key, hist.count, f"{hist.mean_units():.1f}",
                     estimate_text(hist, 0.5), estimate_text(hist, 0.99),
                     max_column(hist)])
    return fitted_table(rows, [key_header, "COUNT", f"AVG {unit_label}", "P50", "P99", "MAX"],
                        width=width)


def grouped_text(groups: Sequence[Tuple[str, dict, Log2Hist]], top: int, key_header: str,
                 unit_label: str, histograms: bool = False, noun: str = "groups") -> List[str]:
    """The `top` first groups: a histogram each (--histograms, or a few
    groups), else one line each; then how many more there are."""
    shown = groups[:top]
    if histograms or len(shown) <= COMPACT_AFTER:
        lines = []
        for key, _, hist in shown:
            lines += ["", key, hist_text(hist)]
    else:
        lines = [""] + compact_table(shown, key_header, unit_label).splitlines()
    if len(groups) > top:
        lines.append(f"[{len(groups) - top} more {noun}]")
    return lines


def hist_text(hist, label: str = "") -> str:
    """BCC-style bars with the summary line under them."""
    return bars(hist, label) + "\n" + summary(hist, label or hist.unit_name)
