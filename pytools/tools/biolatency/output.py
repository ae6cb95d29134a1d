"""biolatency: text and JSON output, from a snapshot."""

from __future__ import annotations

from typing import List, Optional, Tuple

from ... import render
from ...hist import SLOTS, UNITS, Log2Hist
from ...names import dev_text
from .plan import HistKey
from .snapshot import BioSnapshot


def _ordered(snap: BioSnapshot) -> List[Tuple[HistKey, Log2Hist]]:
    return sorted(snap.hists.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1] or ""))


def key_label(key: HistKey, device_name) -> str:
    """`vda read`, `vda` or `read`: the disk, then the operation."""
    dev, op = key
    return " ".join(([device_name(dev)] if dev is not None else []) +
                    ([op] if op is not None else []))


BY_CHOICES = ("disk", "op", "disk,op")


def grouping(opts) -> Tuple[bool, bool]:
    """(by disk, by op) from --by or -D/-F."""
    by = opts.get("by") or ""
    return (bool(opts.get("by_device")) or "disk" in by.split(","),
            bool(opts.get("by_op")) or "op" in by.split(","))


def bio_groups(snap: BioSnapshot, device_name) -> List[Tuple[str, dict, Log2Hist]]:
    return [(key_label((dev, op), device_name),
             {"dev": dev_text(dev) if dev is not None else None,
              "device": device_name(dev) if dev is not None else None, "op": op}, hist)
            for (dev, op), hist in _ordered(snap)]


def _total(snap: BioSnapshot, unit_name: str) -> Log2Hist:
    total = Log2Hist((0,) * SLOTS, UNITS[unit_name], 0, unit_name)
    for hist in snap.hists.values():
        total = total + hist
    return total


def counted_line(snap: BioSnapshot) -> Optional[str]:
    notes = []
    if snap.unmatched:
        notes.append(f"{snap.unmatched} completions unmatched (in flight at start)")
    if snap.untimed:
        notes.append(f"{snap.untimed} flushes not timed (no sector)")
    if snap.map_full:
        notes.append(f"{snap.map_full} not counted (map full)")
    if not notes:
        return None
    return "\n".join(render.wrap_parts([f"[{n};" for n in notes[:-1]] + [notes[-1] + "]"]
                                       if len(notes) > 1 else [f"[{notes[0]}]"], sep=" "))


def biolatency_text(snap: BioSnapshot, probe_label: str, seconds: float, unit_name: str,
                    device_name, timestamp: Optional[str] = None, top: int = 10 ** 6,
                    histograms: bool = False) -> str:
    parts = [render.title(f"{probe_label}, {seconds:.1f}s", timestamp)]
    groups = [g for g in bio_groups(snap, device_name) if g[0]]
    if not groups:
        parts.append(render.hist_text(_total(snap, unit_name)))
    else:
        header = {(True, True): "DISK OP", (True, False): "DISK", (False, True): "OP"}[
            (groups[0][1]["device"] is not None, groups[0][1]["op"] is not None)]
        lines = render.grouped_text(groups, top, header, unit_name, histograms, "groups")
        parts += lines[1:]              # no blank line under the title
    line = counted_line(snap)
    if line:
        parts.append(line)
    return "\n".join(parts)


def biolatency_json(snap: BioSnapshot, probe: dict, seconds: float, device_name,
                    when: str, unit_name: str = "usecs", by: Optional[str] = None,
                    top: int = 10 ** 6) -> dict:
    out = {"time": when, "interval_s": round(seconds, 3), "probe": probe,
           "hist": render.hist_json(_total(snap, unit_name)), "by": by}
    if by:
        out["groups"], out["other"] = render.groups_json(bio_groups(snap, device_name), top)
    out.update({"unmatched": snap.unmatched, "untimed_flushes": snap.untimed,
                "map_full": snap.map_full})
    return out
