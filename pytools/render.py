"""Text and JSON output. Pure: plain data in, strings or dicts out."""

from __future__ import annotations

import datetime as _dt
from typing import Dict, Hashable, List, Optional, Tuple

from tabulate import tabulate

WIDTH = 80


def top_entries(counts: Dict[Hashable, int], top: int
                ) -> Tuple[List[Tuple[Hashable, int]], int, int]:
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


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def clock_time(when: Optional[_dt.datetime] = None) -> str:
    return (when or _dt.datetime.now()).strftime("%H:%M:%S")


def iso_time(when: Optional[_dt.datetime] = None) -> str:
    return (when or _dt.datetime.now().astimezone()).isoformat(timespec="milliseconds")


# ------------------------------------------------------------- execve counter

KEY_HEADERS = {"filename": "FILENAME", "comm": "COMM", "uid": "UID", "cgroup": "CGROUP ID"}


def execve_table(snap, top: int, seconds: float, timestamp: Optional[str] = None) -> str:
    """A table of the top keys with counts and rates, then the total.

    `snap` is an ExecveSnapshot covering `seconds` of time."""
    with_failed = snap.failed is not None
    key_width = WIDTH - (31 if with_failed else 22)
    shown, other_keys, other_count = top_entries(snap.counts, top)
    rows = []
    for key, count in shown:
        row = [shorten(str(key), key_width), count, f"{rate(count, seconds):.1f}"]
        if with_failed:
            row.append(snap.failed.get(key, 0))
        rows.append(row)
    if other_keys:
        row = [f"[{other_keys} other keys]", other_count, f"{rate(other_count, seconds):.1f}"]
        if with_failed:
            shown_keys = {k for k, _ in shown}
            row.append(sum(v for k, v in snap.failed.items() if k not in shown_keys))
        rows.append(row)
    if snap.overflow or snap.failed_overflow:
        row = ["[map full: not keyed]", snap.overflow, f"{rate(snap.overflow, seconds):.1f}"]
        if with_failed:
            row.append(snap.failed_overflow)
        rows.append(row)
    total = ["TOTAL", snap.total, f"{rate(snap.total, seconds):.1f}"]
    if with_failed:
        total.append(snap.total_failed)
    rows.append(total)
    headers = [KEY_HEADERS[snap.by], "COUNT", "RATE/s"] + (["FAILED"] if with_failed else [])
    table = tabulate(rows, headers=headers, tablefmt="plain", disable_numparse=True,
                     colalign=("left",) + ("right",) * (len(headers) - 1))
    lines = table.splitlines()
    # A rule above the total line, as wide as the table.
    lines.insert(len(lines) - 1, "-" * max(len(line) for line in lines))
    title = f"{timestamp} " if timestamp else ""
    return "\n".join([title + f"execve calls over {seconds:.1f}s"] + lines)


def execve_json(snap, top: int, seconds: float, probe: dict, when: str) -> dict:
    shown, other_keys, other_count = top_entries(snap.counts, top)
    entries = []
    for key, count in shown:
        entry = {"key": key, "count": count, "rate": round(rate(count, seconds), 3)}
        if snap.failed is not None:
            entry["failed"] = snap.failed.get(key, 0)
        entries.append(entry)
    out = {
        "time": when,
        "interval_s": round(seconds, 3),
        "by": snap.by,
        "entries": entries,
        "other": {"keys": other_keys, "count": other_count},
        "overflow": snap.overflow,
        "total": snap.total,
        "probe": probe,
    }
    if snap.failed is not None:
        out["failed_total"] = snap.total_failed
        out["failed_overflow"] = snap.failed_overflow
    return out


# ------------------------------------------------------------- latency histograms

def hist_json(hist) -> dict:
    """A Log2Hist as plain JSON: used slots, exact count/sum, estimated percentiles."""
    from .hist import slot_range
    rng = hist.nonzero_range()
    slots = []
    if rng:
        for k in range(rng[0], rng[1] + 1):
            lo, hi = slot_range(k)
            slots.append({"lo": lo, "hi": hi, "count": hist.slots[k]})
    out = {"unit": hist.unit_name, "count": hist.count, "sum_ns": hist.total, "slots": slots}
    if hist.count:
        out["avg"] = round(hist.mean_units(), 3)
        out["estimates"] = {f"p{q}": round(hist.percentile(q / 100), 3) for q in (50, 90, 99)}
    return out


def proc_label(key) -> str:
    tgid, comm = key
    return f"{comm} [{tgid}]" if tgid else comm


def latency_text(snap, probe_label: str, seconds: float, top: int,
                 timestamp: Optional[str] = None) -> str:
    from .hist import bars, summary
    title = (f"{timestamp} " if timestamp else "") + f"{probe_label}, {seconds:.1f}s"
    parts = [title, bars(snap.hist), summary(snap.hist, snap.hist.unit_name)]
    if snap.start_clashes:
        parts.append(f"({snap.start_clashes} reads not timed: thread id slot clash)")
    if snap.per_process is not None:
        ordered = sorted(snap.per_process.items(), key=lambda kv: (-kv[1].count, kv[0]))
        for key, hist in ordered[:top]:
            parts += ["", proc_label(key), bars(hist), summary(hist, hist.unit_name)]
        if len(ordered) > top:
            parts.append(f"[{len(ordered) - top} more processes]")
    return "\n".join(parts)


def latency_json(snap, probe: dict, seconds: float, top: int, when: str) -> dict:
    out = {"time": when, "interval_s": round(seconds, 3), "probe": probe,
           "hist": hist_json(snap.hist), "start_clashes": snap.start_clashes}
    if snap.per_process is not None:
        ordered = sorted(snap.per_process.items(), key=lambda kv: (-kv[1].count, kv[0]))
        out["per_process"] = [{"pid": key[0] or None, "comm": key[1], "hist": hist_json(h)}
                              for key, h in ordered[:top]]
        out["other_processes"] = max(0, len(ordered) - top)
    return out


# ------------------------------------------------------------------ readahead

def efficiency_line(snap, problem: Optional[str]) -> str:
    """One line: what became of the pages read ahead, or why it is unknown."""
    total = snap.total_usage()
    if total is None:
        return f"efficiency: not measured: {problem}"
    unused_now = sum(snap.unused_now.values())
    line = (f"efficiency: {total.added} pages read ahead; used {total.used}, "
            f"dropped unused {total.dropped}; unused now {unused_now}")
    if total.untracked:
        line += f" [{total.untracked} not followed: map full]"
    return line


def efficiency_json(snap, problem: Optional[str], device_name) -> Optional[dict]:
    from .tools.readahead import Usage

    def usage(u, unused_now: int) -> dict:
        return {"read_ahead_pages": u.added, "used_pages": u.used,
                "dropped_unused_pages": u.dropped, "unused_now_pages": unused_now,
                "untracked_pages": u.untracked}

    total = snap.total_usage()
    if total is None:
        return None
    devices = sorted(set(snap.usage) | set(snap.unused_now))
    return {**usage(total, sum(snap.unused_now.values())),
            "devices": [{"dev": "%d:%d" % (d >> 20, d & 0xFFFFF), "name": device_name(d),
                         **usage(snap.usage.get(d, Usage()), snap.unused_now.get(d, 0))}
                        for d in devices]}


def _counts_row(name: str, c) -> list:
    return [name, c.requests, c.req_pages, c.windows, c.pages]


def readahead_text(snap, probe_label: str, seconds: float, top: int,
                   device_name, file_name, timestamp: Optional[str] = None,
                   efficiency_problem: Optional[str] = None) -> str:
    from .hist import bars
    title = (f"{timestamp} " if timestamp else "") + f"{probe_label}, {seconds:.1f}s"
    headers = ["", "REQUESTS", "REQ PAGES", "WINDOWS", "PAGES"]
    align = ("left",) + ("right",) * 4
    kinds = [_counts_row(k, c) for k, c in snap.by_kind().items()]
    devices = [_counts_row(device_name(d), c)
               for d, c in sorted(snap.by_device().items(), key=lambda kv: -kv[1].pages)]
    files = sorted(snap.files.items(), key=lambda kv: (-kv[1].pages, kv[0]))
    file_rows = [_counts_row(shorten(file_name(k), 40), c) for k, c in files[:top]]
    parts = [title,
             tabulate(kinds, headers=["KIND"] + headers[1:], tablefmt="plain",
                      disable_numparse=True, colalign=align)]
    if devices:
        parts += ["", tabulate(devices, headers=["DEVICE"] + headers[1:], tablefmt="plain",
                               disable_numparse=True, colalign=align)]
    if file_rows:
        parts += ["", tabulate(file_rows, headers=["FILE"] + headers[1:], tablefmt="plain",
                               disable_numparse=True, colalign=align)]
        if len(files) > top:
            parts.append(f"[{len(files) - top} more files]")
    if snap.overflow:
        parts.append(f"[{snap.overflow} events not keyed: map full]")
    parts += ["", efficiency_line(snap, efficiency_problem)]
    parts += ["", bars(snap.window_hist, "window pages")]
    return "\n".join(parts)


def readahead_json(snap, probe: dict, seconds: float, top: int, device_name, file_name,
                   when: str, efficiency_problem: Optional[str] = None) -> dict:
    from .tools.readahead import EFFICIENCY_MEANING

    def counts(c) -> dict:
        return {"requests": c.requests, "req_pages": c.req_pages,
                "windows": c.windows, "pages": c.pages}

    files = sorted(snap.files.items(), key=lambda kv: (-kv[1].pages, kv[0]))
    return {
        "time": when, "interval_s": round(seconds, 3), "probe": probe,
        "kinds": {k: counts(c) for k, c in snap.by_kind().items()},
        "devices": [{"dev": "%d:%d" % (d >> 20, d & 0xFFFFF), "name": device_name(d), **counts(c)}
                    for d, c in sorted(snap.by_device().items())],
        "files": [{"dev": "%d:%d" % (k[0] >> 20, k[0] & 0xFFFFF), "ino": k[1],
                   "name": file_name(k), **counts(c)} for k, c in files[:top]],
        "other_files": max(0, len(files) - top),
        "overflow": snap.overflow,
        "window_pages_hist": hist_json(snap.window_hist),
        "efficiency": efficiency_json(snap, efficiency_problem, device_name),
        "efficiency_note": (EFFICIENCY_MEANING if snap.usage is not None
                            else efficiency_problem),
    }


def readahead_event_line(e: dict, device_name) -> str:
    return (f"{e['ts_ns'] / 1e9:14.6f} {e['pid']:>7} {e['comm']:<16.16} {e['event']:<7} "
            f"{e['kind']:<6} {device_name(e['dev']):<6} {e['ino']:>10} {e['index']:>8} "
            f"{e['size']:>5} {e['async_size']:>5}")


READAHEAD_EVENT_HEADER = (f"{'TIME(s)':>14} {'PID':>7} {'COMM':<16} {'EVENT':<7} {'KIND':<6} "
                          f"{'DEV':<6} {'INODE':>10} {'INDEX':>8} {'SIZE':>5} {'ASYNC':>5}")
