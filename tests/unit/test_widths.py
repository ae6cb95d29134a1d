"""Every line of every tool's default output fits 80 columns with 20
groups, long names and large numbers (issue 29, point 6): each tool's
renderer is driven with such a snapshot."""

import pytest

from pytools import render
from pytools.hist import UNITS, Log2Hist
from pytools.names import kernel_dev
from pytools.tools.biolatency import output as bio_output
from pytools.tools.biolatency import snapshot as bio_snapshot
from pytools.tools.execve import output as execve_output
from pytools.tools.execve import snapshot as execve_snapshot
from pytools.tools.vfs_read import output as vfs_read_output
from pytools.tools.vfs_read import snapshot as vfs_read_snapshot
from pytools.tools.runqlat import output as runqlat_output
from pytools.tools.runqlat import snapshot as runqlat_snapshot
from pytools.tools.readahead import output as ro
from pytools.tools.readahead.snapshot import Counts, ReadaheadSnapshot, Usage

GROUPS = 20
LONG = "/var/lib/containers/storage/overlay/" + "d" * 64 + "/merged/usr/bin/"


def hist(i: int, unit: str = "usecs") -> Log2Hist:
    """Waits from 1 ns to ~17 s: every slot used, a wide histogram."""
    values = [2 ** k + i for k in range(0, 35)] * (1000 + i)
    return Log2Hist.from_values(values, UNITS[unit], unit)


def fits(text: str) -> None:
    too_wide = [line for line in text.splitlines() if len(line) > render.WIDTH]
    assert not too_wide, too_wide


def test_execve_table_with_20_long_keys_and_large_counts():
    counts = {f"{LONG}prog-{i}": 10 ** 9 + i for i in range(GROUPS)}
    snap = execve_snapshot.ExecveSnapshot("filename", counts, 10 ** 9,
                                 failed={k: 10 ** 8 for k in counts}, failed_overflow=10 ** 8)
    fits(execve_output.execve_table(snap, GROUPS, 0.5, "12:00:00", outcome=None))


@pytest.mark.parametrize("by", ["pid", "comm"])
@pytest.mark.parametrize("histograms", [False, True])
def test_vfsread_latency_with_20_processes(by, histograms):
    procs = {(4_194_000 + i if by == "pid" else 0, f"comm-long-{i:05d}"): hist(i)
             for i in range(GROUPS)}
    total = sum(procs.values(), hist(0))
    snap = vfs_read_snapshot.LatencySnapshot(total, 10 ** 9, procs, elapsed=1.0)
    text = vfs_read_output.latency_text(snap, "vfs_read via kprobe", 1.0, GROUPS, "12:00:00",
                                        None, by, histograms)
    fits(text)
    if not histograms:      # the compact view: one line per group
        assert len(text.splitlines()) <= len(render.hist_text(total).splitlines()) + GROUPS + 6


@pytest.mark.parametrize("unit", ["usecs", "msecs", "nsecs"])
def test_runqlat_with_20_threads_and_every_note(unit):
    keys = {4_194_000 + i: hist(i, unit) for i in range(GROUPS)}
    snap = runqlat_snapshot.RunqSnapshot(sum(keys.values(), hist(0, unit)), keys, 10 ** 9, 10 ** 9,
                                10 ** 9, elapsed=1.0)
    text = runqlat_output.runqlat_text(snap, "scheduler via raw tracepoints", 1.0, GROUPS, "tid",
                                None, "12:00:00")
    fits(text)      # one line per thread under the machine's histogram and notes
    assert len(text.splitlines()) <= len(render.hist_text(snap.hist).splitlines()) + GROUPS + 6


def test_biolatency_with_20_disks_and_ops():
    hists = {(kernel_dev(259, i), op): hist(i) for i in range(GROUPS // 2)
             for op in ("sync-read", "write")}
    snap = bio_snapshot.BioSnapshot(hists, 10 ** 9, 10 ** 9, 10 ** 9, elapsed=1.0)
    fits(bio_output.biolatency_text(snap, "block I/O via tracepoints", 1.0, "usecs",
                             lambda d: f"nvme{d & 0xff}n1p{d & 0xff}", "12:00:00", GROUPS))


def test_readahead_with_20_files_and_efficiency():
    dev = kernel_dev(259, 1)
    big = Counts(10 ** 9, 10 ** 10, 10 ** 9, 10 ** 10)
    files = {(dev, i): big for i in range(GROUPS)}
    snap = ReadaheadSnapshot({(dev, "sync"): big, (dev, "async"): big}, files,
                             hist(1, "usecs"), 10 ** 9, elapsed=1.0,
                             usage={dev: Usage(10 ** 10, 10 ** 10, 10 ** 10, 10 ** 10)},
                             unused_now={dev: 10 ** 10})
    fits(ro.readahead_text(snap, "readahead via tracepoints", 1.0, GROUPS,
                           lambda d: "nvme0n1p1", lambda k: f"{LONG}file-{k[1]}", "12:00:00"))


def test_doctor_is_short_and_within_80_columns_and_v_gives_every_detail(monkeypatch):
    """Each tool one row (its mode, the modes refused) unless -v asks why
    they were refused, what it compiled against and why the modes are in
    their order."""
    from types import SimpleNamespace

    from pytools import doctor, tools
    from pytools.probes import Hook
    attempts = [SimpleNamespace(mode="fentry", error="EPERM: " + "lockdown " * 12),
                SimpleNamespace(mode="tracepoint", error=None)]
    feature = SimpleNamespace(name="efficiency", detail="",
                              hooks=[Hook("tracepoint", f"filemap:e{i}") for i in range(5)])
    program = SimpleNamespace(attempts=attempts, candidate=SimpleNamespace(label="x via y"),
                              features=[feature], missing_features={}, structs=None)

    class Reader:
        def __enter__(self):
            return SimpleNamespace(program=program)

        def __exit__(self, *exc):
            return False
    fake = [SimpleNamespace(command=f"tool-{i}", order_reason="because " * 30,
                            open=lambda opts: Reader()) for i in range(5)]
    monkeypatch.setattr(tools, "TOOLS", fake)
    monkeypatch.setattr(doctor, "headers_how", lambda: "generic headers, " * 4)
    short = doctor.render(doctor.tool_checks(lambda tool: {}, verbose=False)).splitlines()
    full = doctor.render(doctor.tool_checks(lambda tool: {}, verbose=True)).splitlines()
    assert max(len(line) for line in short + full) <= 80
    assert len(short) == 1 + 5 * 2 and "(not fentry: -v says why)" in "\n".join(short)
    assert "measured via 5 tracepoint hooks" in "\n".join(short)
    assert len(full) > 3 * len(short) and "order" in "\n".join(full)
    # where a mode reads kernel structs, even the short form says from what
    program.structs = "BTF (/sys/kernel/btf/vmlinux)"
    short = doctor.render(doctor.tool_checks(lambda tool: {}, verbose=False)).splitlines()
    assert max(len(line) for line in short) <= 80
    assert "\n".join(short).count("structs from BTF") == 5
