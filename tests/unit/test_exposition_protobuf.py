"""The protobuf exposition and the native slots it carries: the Accept
negotiation Prometheus does, every family decoded back equal to the text
exposition's samples, native buckets equal to the slots, and the kernel's
slot arithmetic (bpf/log2.h, transcribed) equal to the definition."""

import math

from hypothesis import given, strategies as st
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from pytools.families import labelled_histogram_family

from pytools.self_metrics import SelfCollector, SelfStats
from pytools.exposition import text_format
from pytools.exposition_protobuf import native_spans, parse, protobuf_format, wants_protobuf
from pytools.hist import NATIVE, NS_PER_SECOND, Log2Hist, native_slot
from pytools.tools.biolatency.snapshot import BioSnapshot
from pytools.tools.readahead.snapshot import ReadaheadSnapshot
from pytools.tools.vfs_read.snapshot import LatencySnapshot

from .sources import FixedSource, registry_with, tool_collector

# What Prometheus 2.42 sends with --enable-feature=native-histograms, and without.
NATIVE_ACCEPT = ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
                 "encoding=delimited;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,"
                 "application/openmetrics-text;version=0.0.1;q=0.3,text/plain;version=0.0.4;"
                 "q=0.2,*/*;q=0.1")
CLASSIC_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                  "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


def test_negotiation():
    assert wants_protobuf(NATIVE_ACCEPT)
    assert not wants_protobuf(CLASSIC_ACCEPT)
    assert not wants_protobuf(None) and not wants_protobuf("") and not wants_protobuf("*/*")
    proto = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily"
    assert wants_protobuf(proto + ";encoding=delimited")
    assert not wants_protobuf(proto + ";encoding=text")                  # not what we write
    assert not wants_protobuf(proto + ";encoding=delimited;q=0,text/plain")
    assert not wants_protobuf("text/plain," + proto + ";encoding=delimited")   # a tie: first
    assert wants_protobuf("text/plain;q=0.1," + proto + ";encoding=delimited")
    assert not wants_protobuf(proto + ";encoding=delimited;q=bad,text/plain")


def c_unit_slot(ns: int) -> int:
    """bpf/log2.h's unit_slot under NATIVE_EDGES, line by line."""
    edge, edge_bits = 1953125, 21
    ns = min(ns, 1 << 52)
    x = ns << 11
    if x <= edge:
        return 0
    q = x - 1
    k = q.bit_length() - edge_bits
    if q >= edge << k:
        k += 1
    return k


def exact_slot(ns: int) -> int:
    """The smallest k with ns <= 2^(k-20) seconds."""
    return max(0, math.ceil(math.log2(ns * 2 ** 20 / NS_PER_SECOND))) if ns else 0


EDGES_NS = [NS_PER_SECOND * 2 ** (k - 20) for k in range(0, 44)]


@given(st.one_of(st.integers(0, 1 << 52),
                 st.sampled_from(EDGES_NS).flatmap(
                     lambda e: st.integers(math.floor(e) - 2, math.ceil(e) + 2))))
def test_the_kernels_native_slot_is_the_definition(ns):
    assert c_unit_slot(ns) == native_slot(ns)
    if ns < 1 << 40:          # float log2 is exact enough here, and only here
        assert native_slot(ns) == exact_slot(ns) or \
            any(abs(ns - e) < 1e-6 * e for e in EDGES_NS)


def test_native_edges_are_upper_inclusive():
    assert native_slot(0) == 0 and native_slot(953) == 0 and native_slot(954) == 1
    assert native_slot(1_953_125) == 11 and native_slot(1_953_126) == 12   # 2^-9 s exactly
    assert native_slot(NS_PER_SECOND) == 20 and native_slot(NS_PER_SECOND + 1) == 21
    hist = Log2Hist.from_values([0, 954, NS_PER_SECOND], unit_name=NATIVE)
    buckets = hist.prometheus_buckets(last_slot=27)
    assert buckets[0] == (2 ** -20, 1) and buckets[20] == (1.0, 3) and buckets[27] == (128.0, 3)
    assert hist.native_buckets() == (1, [(-19, 1), (0, 1)])


def test_spans():
    assert native_spans([]) == ([], [])
    assert native_spans([(-19, 1), (-8, 1), (0, 1)]) == ([(-19, 1), (10, 1), (7, 1)], [1, 0, 0])
    # gaps of one and two buckets travel as zeros; three start a span
    assert native_spans([(-19, 1), (-17, 3), (-14, 2), (-10, 5)]) == \
        ([(-19, 6), (3, 1)], [1, -1, 3, -3, 0, 2, 3])


def decoded_native(histogram):
    """{native bucket index: count} from spans and deltas."""
    out, index, count, deltas = {}, None, 0, iter(histogram.positive_delta)
    for span in histogram.positive_span:
        index = span.offset if index is None else index + span.offset
        for _ in range(span.length):
            count += next(deltas)
            out[index] = count
            index += 1
    return {k: v for k, v in out.items() if v}


def text_samples(registry):
    out = {}
    for family in text_string_to_metric_families(text_format(registry.collect()).decode()):
        for s in family.samples:
            if family.name != "bpf_exporter_map_read_duration_seconds":
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def proto_samples(registry):
    """The protobuf answer decoded, in the text format's sample names."""
    out, natives = {}, {}
    for family in parse(protobuf_format(registry.collect())):
        if family.name == "bpf_exporter_map_read_duration_seconds":
            continue
        for metric in family.metric:
            labels = tuple(sorted((p.name, p.value) for p in metric.label))
            if family.type == 4:
                h = metric.histogram
                for b in h.bucket:
                    le = ("le", str(float(b.upper_bound)))
                    out[(family.name + "_bucket", tuple(sorted(labels + (le,))))] = \
                        b.cumulative_count
                out[(family.name + "_bucket", tuple(sorted(labels + (("le", "+Inf"),))))] = \
                    h.sample_count
                out[(family.name + "_count", labels)] = h.sample_count
                out[(family.name + "_sum", labels)] = h.sample_sum
                if h.zero_threshold:
                    natives[(family.name, labels)] = (h.schema, h.zero_threshold, h.zero_count,
                                                      decoded_native(h))
            else:
                value = {0: metric.counter, 1: metric.gauge}.get(family.type, metric.untyped)
                out[(family.name, labels)] = value.value
    return out, natives


def le_key(samples):
    """Bucket bounds as the text parser writes them."""
    out = {}
    for (name, labels), v in samples.items():
        out[(name, tuple(sorted((k, str(float(val)) if k == "le" and val != "+Inf" else val)
                                for k, val in labels)))] = v
    return out


def test_every_family_decodes_to_the_text_expositions_samples():
    stats = SelfStats()
    latency = Log2Hist.from_values([0, 800, 1500, 70_000, 2_000_000, 3 * NS_PER_SECOND],
                                   unit_name=NATIVE)
    bio = Log2Hist.from_values([90_000, 100_000, 4_000_000], unit_name=NATIVE)
    windows = Log2Hist.from_values([4, 32, 32, 64], 1, "pages")
    collectors = [
        tool_collector("vfs_read", FixedSource(LatencySnapshot(latency)), stats, "6.1", 10),
        tool_collector("biolatency", FixedSource(BioSnapshot({((7 << 20, "read")): bio})),
                       stats, "6.1", 10),
        tool_collector("readahead", FixedSource(ReadaheadSnapshot({}, {}, windows)), stats,
                       "6.1", 10),
        SelfCollector(stats)]
    registry = registry_with(*collectors)
    text = le_key(text_samples(registry))
    proto, natives = proto_samples(registry)
    assert le_key(proto) == text
    schema, zero_threshold, zero, buckets = natives[("vfs_read_latency_seconds", ())]
    assert (schema, zero_threshold, zero) == (0, 2 ** -20, 2)
    # each value in the bucket whose bounds hold it: (2^(i-1), 2^i] seconds
    expected = {}
    for ns in (1500, 70_000, 2_000_000, 3 * NS_PER_SECOND):
        i = math.ceil(math.log2(ns / NS_PER_SECOND))
        expected[i] = expected.get(i, 0) + 1
    assert buckets == expected
    (bio_native,) = [v for (name, _), v in natives.items() if name == "block_io_latency_seconds"]
    assert bio_native[2:] == (0, {-13: 2, -7: 1})      # 90 us, 100 us; 4 ms
    # integer page counts stay classic: no native buckets
    assert not any(name == "readahead_window_pages" for name, _ in natives)


def test_gauges_counters_and_info_keep_their_names_and_types():
    counter = CounterMetricFamily("c", "a counter", labels=["a"])
    counter.add_metric(["x"], 5)
    gauge = GaugeMetricFamily("g", "a gauge")
    gauge.add_metric([], -2.5)
    info = InfoMetricFamily("i", "an info", labels=["kernel"])
    info.add_metric(["6.1"], {})

    class Fixed:
        def collect(self):
            return [counter, gauge, info]
    families = parse(protobuf_format(Fixed().collect()))
    assert [(f.name, f.type, f.help) for f in families] == [
        ("c_total", 0, "a counter"), ("g", 1, "a gauge"), ("i_info", 1, "an info")]
    assert families[0].metric[0].counter.value == 5
    assert families[0].metric[0].label[0].name == "a"
    assert families[1].metric[0].gauge.value == -2.5
    assert families[2].metric[0].gauge.value == 1


def test_the_protobuf_kept_across_scrapes_follows_the_counts():
    stats = SelfStats()
    first = Log2Hist.from_values([1000, 5000], unit_name=NATIVE)
    later = Log2Hist.from_values([1000, 5000, 9000], unit_name=NATIVE)
    snaps = [LatencySnapshot(first, per_cgroup={1: first})] * 2 + \
        [LatencySnapshot(later, per_cgroup={1: later})] * 3
    collector = tool_collector("vfs_read", FixedSource(*snaps), stats, "6.1", 10, by="pod")
    registry = registry_with(collector)
    counts = []
    for _ in range(3):
        text_format(registry.collect())          # the text cache beside it changes nothing
        families = {f.name: f for f in parse(protobuf_format(registry.collect()))}
        counts.append(families["vfs_read_latency_seconds"].metric[0].histogram.sample_count)
    assert counts == [2, 3, 3]
    assert set(collector.render_cache("vfs_read_latency_seconds")) == {"text", "protobuf"}


def test_an_empty_native_histogram_is_still_native():
    """Prometheus 2.42 takes a histogram as native when it has a zero
    threshold (or buckets): an empty one must not look classic."""
    family = labelled_histogram_family("x_seconds", "x", [], [((), Log2Hist((0,) * 64, 1, 0,
                                                                             NATIVE))],
                                       NS_PER_SECOND, 27)
    (decoded,) = parse(protobuf_format([family]))
    h = decoded.metric[0].histogram
    assert h.zero_threshold == 2 ** -20 and h.sample_count == 0 and not h.positive_span
