"""bpf-exporter's readahead families: pages, requests and windows by kind
and device, the window-size histogram, efficiency by device, and pages by
pod."""

from __future__ import annotations

from typing import Dict, Optional

from .snapshot import KINDS, ReadaheadSnapshot
from ...series import OTHER, fold, label_value


READAHEAD_COUNTERS = (   # (metric, field of Counts, help)
    ("readahead_requests", "requests", "Readahead requests (sync: cache miss; async: "
     "PG_readahead marker hit; forced: fadvise/madvise/readahead(2))."),
    ("readahead_requested_pages", "req_pages", "Pages the readers asked for in those requests."),
    ("readahead_windows", "windows", "Readahead windows submitted for reading."),
    ("readahead_pages", "pages", "Pages in the submitted readahead windows."),
)
# Window sizes in pages: slot k holds [2^(k-1), 2^k - 1]; buckets up to
# 2^16 - 1 pages (256 MiB of 4 KiB pages).
WINDOW_LAST_SLOT = 16


def readahead_families(snapshot: Optional[ReadaheadSnapshot], collector) -> list:
    """readahead_*_total{kind, device}, and the window-size histogram. Devices
    beyond the cap are summed into device="~other" (per kind)."""
    # prometheus_client is the exporter's alone: the commands start without it.
    from prometheus_client.core import CounterMetricFamily
    # (families imports prometheus_client too)
    from ...families import counters, histogram_family
    families = [CounterMetricFamily(name, doc, labels=["kind", "device"])
                for name, _, doc in READAHEAD_COUNTERS]
    hist = histogram_family("readahead_window_pages", "Readahead window sizes, in pages.",
                            snapshot.window_hist if snapshot is not None else None, 1,
                            WINDOW_LAST_SLOT)
    if snapshot is not None:
        cells, folded = fold(collector.cap, (
            ((label_value(collector.device(dev)),), (kind,), counts)
            for (dev, kind), counts in snapshot.devices.items()),
            weight=lambda c: c.pages + c.requests)
        ordered = sorted(((kind, name), counts) for (name, kind), counts in cells.items())
        ordered.sort(key=lambda kv: KINDS.index(kv[0][0]))
        for family, (_, attr, _) in zip(families, READAHEAD_COUNTERS, strict=True):
            for (kind, name), counts in ordered:
                family.add_metric([kind, name], getattr(counts, attr))
        collector.stats.record_folded("readahead", folded)
    return families + [hist] + counters(READAHEAD_SCALARS, snapshot)


READAHEAD_SCALARS = (   # unlabelled counters: (name, help, value of a snapshot)
    ("readahead_map_full", "Readahead events whose device found the map full.",
     lambda s: s.overflow),
)


USAGE_COUNTERS = (
    ("readahead_tracked_pages", "added", "Pages read ahead and followed to their first use "
     "or eviction (--readahead-efficiency)."),
    ("readahead_used_pages", "used", "Of the pages followed, those reached by a read or "
     "mapped by a page fault."),
    ("readahead_dropped_pages", "dropped", "Of the pages followed, those that left the page "
     "cache unused."),
    ("readahead_untracked_pages", "untracked", "Pages read ahead but not followed: the "
     "pending-page map was full."),
)


def readahead_efficiency_families(snapshot: Optional[ReadaheadSnapshot], collector) -> list:
    """readahead_{tracked,used,dropped,untracked}_pages_total{device}, where
    the kernel lets them be measured (absent otherwise, never zeros)."""
    # prometheus_client is the exporter's alone: the commands start without it.
    from prometheus_client.core import CounterMetricFamily
    families = [CounterMetricFamily(name, doc, labels=["device"])
                for name, _, doc in USAGE_COUNTERS]
    if snapshot is not None and snapshot.usage is not None:
        for family, (_, attr, _) in zip(families, USAGE_COUNTERS, strict=True):
            for dev, usage in sorted(snapshot.usage.items()):
                family.add_metric([collector.device(dev)], getattr(usage, attr))
    return families


def readahead_pod_families(snapshot: Optional[ReadaheadSnapshot], collector) -> list:
    """readahead_pod_pages_total{kind, namespace, pod} (--readahead-by pod):
    pages read ahead for each pod's reads; pods beyond the cap (pod_cap) in
    ~other."""
    # prometheus_client is the exporter's alone: the commands start without it.
    from prometheus_client.core import CounterMetricFamily
    family = CounterMetricFamily("readahead_pod_pages", "Pages read ahead by kind, for "
                                 "the reads of each pod.", labels=["kind", "namespace", "pod"])
    if snapshot is not None:
        series, cap = collector.cgroup_series("pod"), collector.pod_cap
        totals: Dict[int, int] = {}
        for (cgroup_id, _), c in (snapshot.cgroups or {}).items():
            totals[cgroup_id] = totals.get(cgroup_id, 0) + c.pages
        live = series.sweep(series.group(totals), cap)
        alive_ids = {i for _, ids in live.values() for i in ids}
        cells, _ = fold(cap, ((series.label_of(cgroup_id)[:2], (kind,), c.pages)
                              for (cgroup_id, kind), c in (snapshot.cgroups or {}).items()
                              if cgroup_id in alive_ids), weight=lambda pages: pages)
        rows = {(key[2],) + key[:2]: pages for key, pages in cells.items()}
        if cap.retired:
            key = (KINDS[0], OTHER, OTHER)
            rows[key] = rows.get(key, 0) + cap.retired
        for key, pages in sorted(rows.items()):
            family.add_metric(list(key), pages)
    return [family]
