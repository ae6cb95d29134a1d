"""Metric families the collectors make, written fast: each series' text
(pytools.exposition) or protobuf (pytools.exposition_protobuf) is kept
across scrapes while its values do not change; histograms of Log2Hist
slots with their exact bounds; counters and info declared as data."""

from __future__ import annotations

from functools import partial
from typing import (Callable, Dict, Generic, Hashable, Iterable, List, Optional, Sequence, Tuple,
                    TypeVar)

from prometheus_client.core import (CounterMetricFamily, HistogramMetricFamily,
                                    InfoMetricFamily)
from prometheus_client.utils import floatToGoString

from .hist import Log2Hist

# --------------------------------------------------------------- converters

T = TypeVar("T")     # what a series holds: a Log2Hist, a counter's value


class SelfRenderingFamily(Generic[T]):
    """What the families that write their own text lines (pytools.exposition)
    and protobuf metrics (pytools.exposition_protobuf) share: series kept as
    (label values, item), `samples` built on demand (for client_python's
    encoders and tests) by the family's _samples(), and each series' text
    or protobuf kept across scrapes in `cache` (a dict the collector keeps,
    collector.render_cache) so it is made only when it changes: with
    hundreds of pods, most series do not change between scrapes."""

    def _init_series(self, labels: Sequence[str], cache: Optional[Dict]) -> None:
        self.label_names = list(labels)
        self.series: List[Tuple[Tuple[str, ...], T]] = []
        self.cache = cache

    samples = property(lambda self: self._samples(), lambda self, value: None)

    def add(self, values: Sequence[str], item: T) -> None:
        self.series.append((tuple(values), item))

    def _labels(self, values: Sequence[str], escape: Callable[[str], str]) -> str:
        return ",".join(f'{n}="{escape(v)}"' for n, v in zip(self.label_names, values, strict=True))

    def _cached(self, keyed: Iterable[Tuple[Hashable, Callable[[], object]]],
                exposition: str = "text") -> List:
        """What each (key, make) renders to, in order: the cache's if the key
        was made at the last scrape in this exposition, else make(). The
        cache then keeps what this scrape used, no more."""
        cache = self.cache.setdefault(exposition, {}) if self.cache is not None else None
        fresh: Dict = {}
        out = []
        for key, make in keyed:
            text = cache.get(key) if cache is not None else None
            if text is None:
                text = make()
            fresh[key] = text
            out.append(text)
        if cache is not None:
            cache.clear()
            cache.update(fresh)
        return out


class Log2HistogramFamily(SelfRenderingFamily[Log2Hist], HistogramMetricFamily):
    """A histogram family of Log2Hist series; each series' lines are made
    once per change of its counts."""

    def __init__(self, name: str, doc: str, labels: Sequence[str], base: int, last_slot: int,
                 cache: Optional[Dict] = None):
        super().__init__(name, doc, labels=list(labels))
        self._init_series(labels, cache)
        self.base, self.last_slot = base, last_slot

    def _samples(self):
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.label_names)
        for values, hist in self.series:
            buckets = [(floatToGoString(le), count)
                       for le, count in hist.prometheus_buckets(self.base, self.last_slot)]
            family.add_metric(list(values), buckets, hist.total / self.base)
        return family.samples

    def _lines(self, values: Tuple[str, ...], hist: Log2Hist,
               escape: Callable[[str], str]) -> str:
        labels = self._labels(values, escape)
        sep = "," if labels else ""
        lines = [f'{self.name}_bucket{{{labels}{sep}le="{floatToGoString(le)}"}} '
                 f'{float(count)!r}\n'
                 for le, count in hist.prometheus_buckets(self.base, self.last_slot)]
        brace = f"{{{labels}}}" if labels else ""
        lines.append(f"{self.name}_count{brace} {float(hist.count)!r}\n")
        lines.append(f"{self.name}_sum{brace} {hist.total / self.base!r}\n")
        return "".join(lines)

    def text_lines(self, escape: Callable[[str], str]) -> str:
        return "".join(self._cached(
            ((values, hist.slots, hist.total), partial(self._lines, values, hist, escape))
            for values, hist in self.series))

    def _proto_metric(self, values: Tuple[str, ...], hist: Log2Hist) -> bytes:
        # prometheus_client is the exporter's alone: the commands start without it.
        from .exposition_protobuf import histogram_metric, labelled_metric
        return labelled_metric(self.label_names, values,
                               lambda m: histogram_metric(m, hist, self.base, self.last_slot))

    def proto_metrics(self) -> List[bytes]:
        return self._cached((
            ((values, hist.slots, hist.total), partial(self._proto_metric, values, hist))
            for values, hist in self.series), "protobuf")


class LabelledCounterFamily(SelfRenderingFamily[float], CounterMetricFamily):
    """A counter family whose series' names and labels are escaped once
    and kept across scrapes (label values -> line head); only the value is
    written anew. With ~1,000 series this halves a scrape's rendering."""

    def __init__(self, name: str, doc: str, labels: Sequence[str],
                 cache: Optional[Dict] = None):
        super().__init__(name, doc, labels=list(labels))
        self._init_series(labels, cache)

    def _samples(self):
        family = CounterMetricFamily(self.name, self.documentation, labels=self.label_names)
        for values, value in self.series:
            family.add_metric(list(values), value)
        return family.samples

    def _head(self, values: Tuple[str, ...], escape: Callable[[str], str]) -> str:
        labels = self._labels(values, escape)
        return f"{self.name}_total{{{labels}}} " if labels else f"{self.name}_total "

    def text_lines(self, escape: Callable[[str], str]) -> str:
        heads = self._cached((values, partial(self._head, values, escape))
                             for values, _ in self.series)
        return "".join(f"{head}{float(value)!r}\n"
                       for head, (_, value) in zip(heads, self.series, strict=True))

    def proto_metrics(self) -> List[bytes]:
        # prometheus_client is the exporter's alone: the commands start without it.
        from .exposition_protobuf import labelled_metric

        def fill(value):
            return lambda metric: setattr(metric.counter, "value", float(value))
        return [labelled_metric(self.label_names, values, fill(value))
                for values, value in self.series]


def labelled_histogram_family(name: str, doc: str, labels: Sequence[str],
                              items: Iterable[Tuple[Sequence[str], Log2Hist]], base: int,
                              last_slot: int, cache: Optional[Dict] = None
                              ) -> HistogramMetricFamily:
    """A histogram family with one series per (label values, Log2Hist):
    cumulative buckets with the exact log2 bounds up to `last_slot`, +Inf,
    and the exact sum in base units. `cache`: a dict kept across scrapes
    for the series' rendered lines."""
    family = Log2HistogramFamily(name, doc, labels, base, last_slot, cache)
    for values, hist in items:
        family.add(values, hist)
    return family


def histogram_family(name: str, doc: str, hist: Optional[Log2Hist], base: int,
                     last_slot: int) -> HistogramMetricFamily:
    """A histogram family with no labels: one series, or none for describe()."""
    return labelled_histogram_family(name, doc, [], [((), hist)] if hist is not None else [],
                                     base, last_slot)


def info_family(tool: str, probe: Optional[dict], kernel: str) -> InfoMetricFamily:
    family = InfoMetricFamily(f"{tool}_probe", f"The probe {tool} attached and the kernel.",
                              labels=["mode", "probe", "kernel"])
    if probe is not None:
        family.add_metric([probe["mode"], probe["label"], kernel], {})
    return family


def counters(defs: Sequence[Tuple[str, str, Callable]], snapshot) -> List[CounterMetricFamily]:
    """Unlabelled counter families declared as data: (name, help, value of a
    snapshot); with no snapshot (describe()), empty."""
    out = []
    for name, doc, value_of in defs:
        family = CounterMetricFamily(name, doc)
        if snapshot is not None:
            family.add_metric([], value_of(snapshot))
        out.append(family)
    return out
