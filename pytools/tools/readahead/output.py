"""readahead-stats' output: the tables and JSON of an interval, the
efficiency line, and --trace's event lines."""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional, Tuple
import datetime as dt

import click

from ... import render
from ...names import FileKey, dev_text
from .efficiency import EFFICIENCY_MEANING
from .snapshot import Counts, ReadaheadSnapshot, Usage
from ...workloads import group_by_workload
from ...workloads import describe
from ...workloads import GROUPINGS


def efficiency_line(snap: ReadaheadSnapshot, problem: Optional[str]) -> str:
    """One line: what became of the pages read ahead, or why it is unknown."""
    total = snap.total_usage()
    if total is None:
        return f"efficiency: not measured: {problem}"
    unused_now = sum(snap.unused_now.values())
    parts = [f"efficiency: {total.added} pages read ahead;", f"used {total.used},",
             f"dropped unused {total.dropped};", f"unused now {unused_now}"]
    if total.untracked:
        parts.append(f"[{total.untracked} not followed: map full]")
    return "\n".join(render.wrap_parts(parts, sep=" "))


def _usage_json(u: Usage, unused_now: int) -> dict:
    return {"read_ahead_pages": u.added, "used_pages": u.used,
            "dropped_unused_pages": u.dropped, "unused_now_pages": unused_now,
            "untracked_pages": u.untracked}


def efficiency_json(snap: ReadaheadSnapshot, problem: Optional[str],
                    device_name: Callable[[int], str]) -> Optional[dict]:
    total, usage = snap.total_usage(), snap.usage
    if total is None or usage is None:      # both None together: not measured
        return None
    devices = sorted(set(usage) | set(snap.unused_now))
    return {**_usage_json(total, sum(snap.unused_now.values())),
            "devices": [{"dev": dev_text(d), "name": device_name(d),
                         **_usage_json(usage.get(d, Usage()), snap.unused_now.get(d, 0))}
                        for d in devices]}


COUNT_HEADERS = ["REQUESTS", "REQ PAGES", "WINDOWS", "PAGES"]


def _counts_row(name: str, c: Counts) -> list:
    return [name, c.requests, c.req_pages, c.windows, c.pages]


def _busiest_workloads(snap: ReadaheadSnapshot, workloads, by: str):
    grouped = group_by_workload(snap.by_cgroup(), workloads, by)
    return sorted(grouped.items(), key=lambda kv: (-kv[1].pages, kv[0]))


def _busiest_files(snap: ReadaheadSnapshot) -> List[Tuple[FileKey, Counts]]:
    return sorted(snap.files.items(), key=lambda kv: (-kv[1].pages, kv[0]))


def readahead_text(snap: ReadaheadSnapshot, probe_label: str, seconds: float, top: int,
                   device_name: Callable[[int], str], file_name: Callable[[FileKey], str],
                   timestamp: Optional[str] = None,
                   efficiency_problem: Optional[str] = None, workloads=None,
                   by: Optional[str] = None,
                   unresolved: Optional[Dict[FileKey, str]] = None) -> str:
    kinds = [_counts_row(k, c) for k, c in snap.by_kind().items()]
    devices = [_counts_row(device_name(d), c)
               for d, c in sorted(snap.by_device().items(), key=lambda kv: -kv[1].pages)]
    files = _busiest_files(snap)
    file_rows = [_counts_row(file_name(k), c) for k, c in files[:top]]
    parts = [render.title(f"{probe_label}, {seconds:.1f}s", timestamp),
             render.table(kinds, ["KIND"] + COUNT_HEADERS)]
    if devices:
        parts += ["", render.table(devices, ["DEVICE"] + COUNT_HEADERS)]
    if snap.cgroups is not None:
        assert by is not None, "a snapshot keyed by cgroup comes with its --by"
        rows = [_counts_row(describe(key, by), c) for key, c in _busiest_workloads(
            snap, workloads, by)[:top]]
        if rows:
            parts += ["", render.fitted_table(rows, [by.upper()] + COUNT_HEADERS)]
    if file_rows:
        parts += ["", render.fitted_table(file_rows, ["FILE"] + COUNT_HEADERS)]
        if len(files) > top:
            parts.append(f"[{len(files) - top} more files]")
        for key, _ in files[:top]:
            if unresolved and key in unresolved:
                parts.append(f"{dev_text(key[0])}:{key[1]}: no path: {unresolved[key]}")
    if snap.overflow:
        parts.append(f"[{snap.overflow} events not keyed: map full]")
    parts += ["", efficiency_line(snap, efficiency_problem)]
    parts += ["", render.hist_text(snap.window_hist, "window pages")]
    return "\n".join(parts)


def readahead_json(snap: ReadaheadSnapshot, probe: dict, seconds: float, top: int,
                   device_name: Callable[[int], str], file_name: Callable[[FileKey], str],
                   when: str, efficiency_problem: Optional[str] = None, workloads=None,
                   by: Optional[str] = None) -> dict:
    def counts(c: Counts) -> dict:
        return {"requests": c.requests, "req_pages": c.req_pages,
                "windows": c.windows, "pages": c.pages}

    files = _busiest_files(snap)
    unresolved = getattr(file_name, "unresolved", {})      # a NameCache's misses
    out = {
        "time": when, "interval_s": round(seconds, 3), "probe": probe,
        "kinds": {k: counts(c) for k, c in snap.by_kind().items()},
        "devices": [{"dev": dev_text(d), "name": device_name(d), **counts(c)}
                    for d, c in sorted(snap.by_device().items())],
        "files": [{"dev": dev_text(k[0]), "ino": k[1], "name": file_name(k),
                   **({"no_path": unresolved[k]} if k in unresolved else {}), **counts(c)}
                  for k, c in files[:top]],
        "other_files": max(0, len(files) - top),
        "overflow": snap.overflow,
        "window_pages_hist": render.hist_json(snap.window_hist),
        "efficiency": efficiency_json(snap, efficiency_problem, device_name),
        "efficiency_note": (EFFICIENCY_MEANING if snap.usage is not None
                            else efficiency_problem),
    }
    if snap.cgroups is not None:
        assert by is not None, "a snapshot keyed by cgroup comes with its --by"
        ordered = _busiest_workloads(snap, workloads, by)
        out["workloads"] = [{**dict(zip(GROUPINGS[by], key, strict=True)), **counts(c)}
                            for key, c in ordered[:top]]
        out["other_workloads"] = max(0, len(ordered) - top)
    return out


def wall_clock_offset() -> float:
    """Seconds to add to a kernel timestamp (bpf_ktime_get_ns: CLOCK_MONOTONIC)
    for the wall time it happened at."""
    return time.time() - time.monotonic()


def with_wall_time_and_path(e: dict, offset: float, file_name: Callable[[FileKey], str]
                            ) -> dict:
    """An event with its wall time (ISO, local) and its file's path where
    known (else major:minor:inode, as in the tables)."""
    when = dt.datetime.fromtimestamp(e["ts_ns"] / 1e9 + offset).astimezone()
    return {**e, "time": when.isoformat(timespec="microseconds"),
            "path": file_name((e["dev"], e["ino"]))}


def readahead_event_line(e: dict, device_name: Callable[[int], str]) -> str:
    """TIME (wall clock) ... then the file: its path, or where it is not
    known, the device and inode."""
    clock = e["time"][11:26]            # HH:MM:SS.ffffff of the ISO time
    return (f"{clock:<15} {e['pid']:>7} {e['comm']:<16.16} {e['event']:<7} "
            f"{e['kind']:<6} {e['index']:>8} {e['size']:>5} {e['async_size']:>5} "
            f"{e['path']}")


READAHEAD_EVENT_HEADER = (f"{'TIME':<15} {'PID':>7} {'COMM':<16} {'EVENT':<7} {'KIND':<6} "
                          f"{'INDEX':>8} {'SIZE':>5} {'ASYNC':>5} FILE")


def run_trace(reader, session, device_name: Callable[[int], str],
              file_name: Callable[[FileKey], str]) -> None:
    """--trace: events as they come, for interval*count seconds or until Ctrl-C."""
    lost = [0]
    offset = wall_clock_offset()

    def on_event(event):
        event = with_wall_time_and_path(event, offset, file_name)
        session.emit(event if session.as_json else readahead_event_line(event, device_name))

    def on_lost(n):
        lost[0] += n

    reader.open_trace(on_event, on_lost)
    deadline = (time.monotonic() + session.interval * session.count
                if session.count else None)
    try:   # from the banner on, Ctrl-C ends the trace cleanly
        session.announce(reader.program)
        if not session.as_json:
            session.emit(READAHEAD_EVENT_HEADER)
        while deadline is None or time.monotonic() < deadline:
            reader.poll(100)
        reader.poll(0)
    except KeyboardInterrupt:
        pass
    if lost[0]:
        click.echo(f"{lost[0]} events lost: the perf buffer was full", err=True)
