"""bpf-exporter end to end: the real daemon on a loopback port, real BPF,
scraped over HTTP while the tests generate execs, slow reads and a cold
sequential read."""

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from typing import Tuple

import pytest

from pytools.names import device_name, kernel_dev
from pytools.tools import TOOLS

from .exporter import Exporter, diff, free_port, parse, value
from .modes import mode_problem, scratch_dir
from .workload import (NOBODY, SYSCALL_SLACK_NS, bpf_program_ids, evict_and_read, execs_as_comm,
                       make_executables, programs_gone, run_execs, slow_pipe_reads,
                       tool_command, write_file)

PAGE = os.sysconf("SC_PAGE_SIZE")


@pytest.fixture(scope="module")
def exporter():
    before = bpf_program_ids()
    exp = Exporter("--execve-by", "filename")
    exp.assert_serving()
    exp.programs = bpf_program_ids() - before
    yield exp
    exp.stop()


@pytest.fixture(scope="module")
def cold_file():
    path = write_file(scratch_dir(), 16 << 20)
    yield path
    os.unlink(path)


def test_scrape_deltas_match_the_workload_and_counters_only_grow(exporter, cold_file):
    workdir = tempfile.mkdtemp()
    try:
        (true_copy,) = make_executables(workdir, ["pytools-exporter-true"])
        first = exporter.scrape()
        run_execs(true_copy, 7)
        missing = os.path.join(workdir, "pytools-exporter-missing")
        for _ in range(4):
            with pytest.raises(FileNotFoundError):
                subprocess.run([missing])
        durations = slow_pipe_reads(5)
        evict_and_read(cold_file)
        second = exporter.scrape()
    finally:
        shutil.rmtree(workdir)

    assert diff(second, first, "execve_total", filename=true_copy) == 7
    assert diff(second, first, "execve_failed_total", filename=true_copy) == 0
    assert value(second, "execve_total", filename=missing) == 4     # calls, as before
    assert value(second, "execve_failed_total", filename=missing) == 4

    # The histogram counts every process's reads: ours are a lower bound.
    hist = "vfs_read_latency_seconds"
    slow = diff(second, first, f"{hist}_bucket", le="+Inf") - \
        diff(second, first, f"{hist}_bucket", le="0.00390625")     # 2^-8 s
    assert slow >= 5                                      # each of ours took ~22 ms
    assert diff(second, first, f"{hist}_sum") >= (sum(durations) - 5 * SYSCALL_SLACK_NS) / 1e9
    assert diff(second, first, f"{hist}_count") == diff(second, first, f"{hist}_bucket", le="+Inf")

    st = os.stat(cold_file)
    dev = device_name(kernel_dev(os.major(st.st_dev), os.minor(st.st_dev)))
    pages = sum(diff(second, first, "readahead_pages_total", kind=k, device=dev)
                for k in ("sync", "async", "forced"))
    assert pages >= (16 << 20) // PAGE * 0.8

    third = exporter.scrape()
    for scrape_before, scrape_after in ((first, second), (second, third)):
        for (name, labels), v in scrape_before.items():
            if name.endswith(("_total", "_bucket", "_count", "_sum")):
                assert scrape_after.get((name, labels), 0) >= v, (name, labels)


def test_info_and_self_metrics(exporter):
    samples = exporter.scrape()
    kernel = os.uname().release
    for tool in (t.name for t in TOOLS if t.exporter_default):    # the fixture's collectors
        infos = [labels for (name, labels) in samples if name == f"{tool}_probe_info"]
        assert len(infos) == 1 and ("kernel", kernel) in infos[0]
        assert value(samples, "bpf_exporter_collector_up", collector=tool) == 1
        assert value(samples, "bpf_exporter_map_read_errors_total", collector=tool) == 0
        assert value(samples, "bpf_exporter_map_read_duration_seconds", collector=tool) > 0


def test_build_info_agrees_with_pyproject_and_version(exporter):
    """bpf_pytools_build_info carries pyproject's version, and the same
    labels `bpf-exporter --version` prints."""
    import platform
    import tomllib

    with open(os.path.join(os.path.dirname(__file__), "..", "..", "pyproject.toml"), "rb") as f:
        version = tomllib.load(f)["project"]["version"]
    infos = [dict(labels) for (name, labels), v in exporter.scrape().items()
             if name == "bpf_pytools_build_info" and v == 1]
    assert len(infos) == 1
    (info,) = infos
    assert info["version"] == version
    assert info["kernel"] == os.uname().release and info["arch"] == platform.machine()
    import bcc
    assert info["bcc_version"] == bcc.__version__
    printed = subprocess.run(tool_command("bpf-exporter") + ["--version"], capture_output=True,
                             text=True, timeout=60).stdout
    assert printed == (f"bpf-exporter {version} (bcc {bcc.__version__}, Python "
                       f"{info['python_version']}, kernel {info['kernel']} {info['arch']})\n")


def test_exposition_passes_promtool(exporter):
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: scripts/test installs Debian's prometheus package"
    text = exporter.get()
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_gzip_when_asked_the_same_samples_either_way(exporter):
    """Prometheus asks for gzip: it gets the same exposition, compressed, in
    text and in protobuf; a scraper that does not ask gets it plain."""
    import gzip

    from pytools.exposition_protobuf import parse as parse_protobuf

    def fetch(accept_encoding, accept=None):
        headers = {"Accept-Encoding": accept_encoding}
        if accept:
            headers["Accept"] = accept
        request = urllib.request.Request(exporter.url + "/metrics", headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.headers.get("Content-Encoding"), response.read()

    encoding, body = fetch("gzip")
    assert encoding == "gzip"
    zipped = {key for key in parse(gzip.decompress(body).decode())}
    encoding, body = fetch("identity")
    assert encoding is None
    plain = {key for key in parse(body.decode())}
    # the same series (counters move between the two scrapes, names do not)
    assert {name for name, _ in zipped} == {name for name, _ in plain}
    proto = ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
             "encoding=delimited")
    encoding, body = fetch("gzip, deflate", proto)
    assert encoding == "gzip"
    names = {f.name for f in parse_protobuf(gzip.decompress(body))}
    assert "vfs_read_latency_seconds" in names and "execve_total" in names


def test_index_and_health_pages(exporter):
    assert 'href="/metrics"' in exporter.get("/")
    assert exporter.get("/healthz") == "ok\n"


def compiler_resident_kib(pid: int) -> Tuple[int, int]:
    """(file-backed, anonymous) KiB resident in the process's mappings of
    the compiler's libraries (libLLVM, libclang-cpp)."""
    from pytools.memory import compiler_mappings
    with open(f"/proc/{pid}/smaps") as f:
        mappings = compiler_mappings(f.read())
    anon_kib = sum(m.anonymous_kib or 0 for m in mappings)
    return sum(m.rss_kib for m in mappings) - anon_kib, anon_kib


def test_the_compilers_pages_are_given_back_once_serving(exporter):
    """BCC compiled in the process with libLLVM and libclang-cpp (~75 MiB
    of their pages resident after the compiles); the exporter never
    compiles again and pages them out once every program is loaded."""
    assert exporter.get().startswith("# HELP")
    file_kib, anon_kib = compiler_resident_kib(exporter.proc.pid)
    assert file_kib + anon_kib > 0, "no compiler library mapped: is BCC linked another way?"
    assert file_kib < 8 << 10, (file_kib, anon_kib)


def test_fifty_concurrent_scrapers(exporter):
    errors, scrapes = [], [0] * 50
    deadline = time.monotonic() + 5

    def scraper(i):
        try:
            while True:     # at least once: under emulation a thread may start late
                # 60 s: under QEMU emulation one scrape takes ~1 s, and 50
                # of them queue behind each collector's map-read lock.
                samples = exporter.scrape(timeout=60)
                assert value(samples, "bpf_exporter_collector_up", collector="execve") == 1
                scrapes[i] += 1
                if time.monotonic() >= deadline:
                    break
        except Exception as e:   # collected and reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=scraper, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "scrapers still waiting after 300 s"
    assert not errors, errors[:3]
    assert all(n >= 1 for n in scrapes), scrapes
    assert exporter.proc.poll() is None


@pytest.mark.userspace   # series folding is the exporter's code: host run only
def test_a_real_value_equal_to_the_fold_value_keeps_its_own_series():
    """Processes named like the fold series ("~other") and like its old name
    ("other"), with --max-series 2 and other comms to fold: every series is
    unique, the real "~other" is exported as "~~other" with its exact count."""
    workdir = tempfile.mkdtemp()
    exp = Exporter("--collectors", "execve", "--execve-by", "comm", "--max-series", "2")
    try:
        exp.assert_serving()
        (true_copy,) = make_executables(workdir, ["pytools-true"])
        execs_as_comm("~other", true_copy, 40)
        execs_as_comm("pyt-first", true_copy, 50)
        before = exp.scrape()       # admits the two largest: ours
        assert value(before, "execve_total", comm="~~other") == 40
        execs_as_comm("other", true_copy, 5)
        execs_as_comm("~other", true_copy, 3)
        text = exp.get()
    finally:
        exp.stop()
        shutil.rmtree(workdir)
    series = [line.rsplit(" ", 1)[0] for line in text.splitlines()
              if line.startswith("execve_total{")]
    assert len(series) == len(set(series)), series
    after = parse(text)
    assert diff(after, before, "execve_total", comm="~~other") == 3
    assert diff(after, before, "execve_total", comm="~other") >= 5      # the fold
    assert ("execve_total", (("comm", "other"),)) not in after            # folded


def missing_collector_mode():
    """A collector and a probe mode this kernel lacks, to make one fail for real."""
    if mode_problem("kprobe"):
        return "vfs_read", "kprobe"
    if mode_problem("tracepoint", tracepoint="readahead:page_cache_sync_ra"):
        return "readahead", "tracepoint"
    return None


def test_a_collector_that_cannot_attach_is_reported_and_the_others_serve():
    missing = missing_collector_mode()
    if missing is None:
        pytest.skip("this kernel has every probe mode: no collector can be made to fail")
    name, mode = missing
    exp = Exporter("--collectors", f"execve,{name}", "--probe", f"{name}={mode}")
    try:
        exp.assert_serving()
        samples = exp.scrape()
        assert value(samples, "bpf_exporter_collector_up", collector=name) == 0
        assert value(samples, "bpf_exporter_collector_up", collector="execve") == 1
        assert any(n == "execve_probe_info" for n, _ in samples)
    finally:
        code, err = exp.stop()
    assert code == 0
    assert any(f"collector {name} left out" in line for line in exp.early)

    strict = Exporter("--collectors", f"execve,{name}", "--probe", f"{name}={mode}", "--strict")
    code, err = strict.stop(timeout=120)
    assert code == 1
    lines = ("".join(strict.early) + err).splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"bpf-exporter: error: collector {name}:")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_detaches_and_exits_zero(sig):
    before = bpf_program_ids()
    exp = Exporter("--collectors", "execve")
    exp.assert_serving()
    ours = bpf_program_ids() - before
    assert ours
    exp.scrape()
    code, err = exp.stop(sig)
    assert code == 0 and "Traceback" not in err
    assert programs_gone(ours), f"programs {bpf_program_ids() & ours} still loaded after exit"


def test_non_root_gets_one_line_error():
    result = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        + tool_command("bpf-exporter") + ["--listen", f"127.0.0.1:{free_port()}"],
        cwd="/", capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "bpf-exporter: error:" in result.stderr
    assert "sudo" in result.stderr and "Traceback" not in result.stderr
