"""The Prometheus protobuf exposition, with native histograms.

A Prometheus started with --enable-feature=native-histograms asks for
delimited io.prometheus.client.MetricFamily messages first (the Accept
header); this answers it, and every other scraper gets the text format
(pytools.exposition). client_python has no protobuf exposition (its issue
918), so the schema is declared here and encoded by Google's protobuf
runtime (PyPI's `protobuf`, its upb core): the runtime, not hand-written
wire code, writes every message. The schema is built as a descriptor at
import, no protoc and no generated module, and holds only the fields this
exporter sets, with client_model's metrics.proto field numbers.

Histograms whose slots are on native edges (hist.NATIVE) carry both their
classic buckets and their native ones (schema 0, the zero bucket, one
span): a Prometheus ingests the native histogram, and one configured to
keep classic histograms too gets both. Other histograms (readahead window
sizes in pages, integer values whose log2 slots cannot be native buckets)
are classic only.

Each series' encoded Metric is kept across scrapes where its family keeps
a render cache (exporter.SelfRenderingFamily), as the text lines are.
"""

from __future__ import annotations

from typing import Callable, Iterable, List, Optional, Tuple

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from .exposition import TYPES
from .hist import NATIVE, NATIVE_ZERO_THRESHOLD, Log2Hist

CONTENT_TYPE = ("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
                "encoding=delimited")
MEDIA_TYPE = "application/vnd.google.protobuf"
PROTO = "io.prometheus.client.MetricFamily"

# MetricType values by client_python family type (the name suffix, _total
# or _info, is the text format's: exposition.TYPES).
COUNTER, GAUGE, UNTYPED, HISTOGRAM = 0, 1, 3, 4
METRIC_TYPES = {"counter": COUNTER, "gauge": GAUGE, "info": GAUGE, "stateset": GAUGE,
                "histogram": HISTOGRAM}


def _name_and_type(family) -> Tuple[str, int]:
    """The family's exposed name and MetricType; a type the collectors do
    not make is untyped."""
    kind = METRIC_TYPES.get(family.type, UNTYPED)
    suffix = TYPES.get(family.type, ("", ""))[0] if kind != UNTYPED else ""
    return family.name + suffix, kind


# ------------------------------------------------------------------ schema

def _schema() -> descriptor_pb2.FileDescriptorProto:
    F = descriptor_pb2.FieldDescriptorProto
    optional, repeated = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    scalar = {"double": F.TYPE_DOUBLE, "uint64": F.TYPE_UINT64, "string": F.TYPE_STRING,
              "sint32": F.TYPE_SINT32, "sint64": F.TYPE_SINT64, "uint32": F.TYPE_UINT32}
    messages = {
        "LabelPair": [("name", 1, "string"), ("value", 2, "string")],
        "Gauge": [("value", 1, "double")],
        "Counter": [("value", 1, "double")],
        "Untyped": [("value", 1, "double")],
        "Bucket": [("cumulative_count", 1, "uint64"), ("upper_bound", 2, "double")],
        "BucketSpan": [("offset", 1, "sint32"), ("length", 2, "uint32")],
        "Histogram": [("sample_count", 1, "uint64"), ("sample_sum", 2, "double"),
                      ("bucket", 3, "*Bucket"), ("schema", 5, "sint32"),
                      ("zero_threshold", 6, "double"), ("zero_count", 7, "uint64"),
                      ("positive_span", 12, "*BucketSpan"), ("positive_delta", 13, "*sint64")],
        "Metric": [("label", 1, "*LabelPair"), ("gauge", 2, "Gauge"), ("counter", 3, "Counter"),
                   ("untyped", 5, "Untyped"), ("histogram", 7, "Histogram")],
        "MetricFamily": [("name", 1, "string"), ("help", 2, "string"), ("type", 3, "MetricType"),
                         ("metric", 4, "*Metric")],
    }
    file = descriptor_pb2.FileDescriptorProto(
        name="pytools/io_prometheus_client_metrics.proto", package="io.prometheus.client",
        syntax="proto2")
    enum = file.enum_type.add(name="MetricType")
    for name, number in (("COUNTER", 0), ("GAUGE", 1), ("SUMMARY", 2), ("UNTYPED", 3),
                         ("HISTOGRAM", 4), ("GAUGE_HISTOGRAM", 5)):
        enum.value.add(name=name, number=number)
    for message, fields in messages.items():
        proto = file.message_type.add(name=message)
        for name, number, kind in fields:
            label = repeated if kind.startswith("*") else optional
            kind = kind.lstrip("*")
            field = proto.field.add(name=name, number=number, label=label)
            if kind in scalar:
                field.type = scalar[kind]
            else:
                field.type = F.TYPE_ENUM if kind == "MetricType" else F.TYPE_MESSAGE
                field.type_name = f".io.prometheus.client.{kind}"
    return file


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_schema())
MetricFamily = message_factory.GetMessageClass(
    _pool.FindMessageTypeByName("io.prometheus.client.MetricFamily"))
Metric = message_factory.GetMessageClass(_pool.FindMessageTypeByName("io.prometheus.client.Metric"))


# --------------------------------------------------------------- negotiation

def wants_protobuf(accept: Optional[str]) -> bool:
    """Whether the Accept header prefers the delimited MetricFamily protobuf
    to the text format: the protobuf range has the highest q of what this
    exporter serves (ties go to the one listed first), as client_golang's
    negotiation picks."""
    best: Optional[Tuple[float, int, bool]] = None
    for order, part in enumerate((accept or "").split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        values = {}
        for param in params:
            key, _, value = param.partition("=")
            values[key.strip().lower()] = value.strip().strip('"')
        try:
            q = float(values.get("q", "1"))
        except ValueError:
            continue
        media = media.lower()
        if media == MEDIA_TYPE:
            if values.get("proto") != PROTO or values.get("encoding") != "delimited":
                continue
            protobuf = True
        elif media in ("text/plain", "text/*", "*/*"):
            protobuf = False
        else:
            continue
        if q > 0 and (best is None or q > best[0]):
            best = (q, order, protobuf)
    return best is not None and best[2]


# ----------------------------------------------------------------- encoding

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def histogram_metric(metric, hist: Log2Hist, base: int, last_slot: int) -> None:
    """Fill metric.histogram from a Log2Hist: classic buckets up to
    last_slot (+Inf is implied by sample_count), and native buckets where
    the slots are on native edges."""
    h = metric.histogram
    h.sample_count = hist.count
    h.sample_sum = hist.total / base
    for upper, cumulative in hist.prometheus_buckets(base, last_slot)[:-1]:
        h.bucket.add(upper_bound=upper, cumulative_count=cumulative)
    if hist.unit_name != NATIVE:
        return
    zero, used = hist.native_buckets()
    h.schema = 0
    h.zero_threshold = NATIVE_ZERO_THRESHOLD
    h.zero_count = zero
    spans, deltas = native_spans(used)
    for offset, length in spans:
        h.positive_span.add(offset=offset, length=length)
    h.positive_delta.extend(deltas)


def native_spans(used: List[Tuple[int, int]]) -> Tuple[List[Tuple[int, int]], List[int]]:
    """Spans (offset, length) and count deltas of the used native buckets
    [(index, count)]: a gap of up to two empty buckets travels as zero
    counts inside a span, a longer one starts a new span (as client_golang
    encodes them); each span's offset is from the end of the previous one."""
    spans: List[List[int]] = []
    deltas: List[int] = []
    previous_count, end = 0, None
    for index, count in used:
        if end is not None and index - end <= 2:
            for _ in range(index - end):
                deltas.append(-previous_count)
                previous_count = 0
            spans[-1][1] += index - end + 1
        else:
            spans.append([index if end is None else index - end, 1])
        deltas.append(count - previous_count)
        previous_count, end = count, index + 1
    return [(offset, length) for offset, length in spans], deltas


def _labelled(values: Iterable[Tuple[str, str]]):
    metric = Metric()
    for name, value in values:
        metric.label.add(name=name, value=value)
    return metric


def _one_metric(metric) -> bytes:
    """A Metric as it sits in a MetricFamily: field 4, length-delimited.
    (A message's encoding is the concatenation of its fields', so a family
    is its head's bytes followed by each metric's.)"""
    return MetricFamily(metric=[metric]).SerializeToString()


def family_metrics(family) -> List[bytes]:
    """Each series of a client_python family (or one of the exporter's own)
    as encoded `metric` fields."""
    if hasattr(family, "proto_metrics"):        # exporter.SelfRenderingFamily
        return family.proto_metrics()
    name, kind = _name_and_type(family)
    out = []
    for sample in family.samples:
        if sample.name != name:
            continue          # _created; and a generic histogram's parts are not made here
        metric = _labelled(sorted(sample.labels.items()))
        field = {COUNTER: metric.counter, GAUGE: metric.gauge}.get(kind, metric.untyped)
        field.value = sample.value
        out.append(_one_metric(metric))
    return out


def protobuf_format(metrics: Iterable) -> bytes:
    """metrics: what a registry's collect() yields. Delimited MetricFamily
    messages: each one's length as a varint, then the message."""
    out: List[bytes] = []
    for family in metrics:
        name, kind = _name_and_type(family)
        head = MetricFamily(name=name, help=family.documentation, type=kind).SerializeToString()
        body = b"".join([head] + family_metrics(family))
        out += [_varint(len(body)), body]
    return b"".join(out)


def parse(data: bytes) -> List:
    """Delimited MetricFamily messages back into messages (for tests and
    scripts/bench-fleet)."""
    out, pos = [], 0
    while pos < len(data):
        size = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        family = MetricFamily()
        family.ParseFromString(data[pos:pos + size])
        out.append(family)
        pos += size
    return out


def labelled_metric(label_names, values, fill: Callable) -> bytes:
    """One encoded series of a SelfRenderingFamily: its labels, then
    fill(metric) sets the value."""
    metric = _labelled(zip(label_names, values, strict=True))
    fill(metric)
    return _one_metric(metric)

