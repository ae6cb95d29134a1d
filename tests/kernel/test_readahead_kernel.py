"""readahead-stats against a cold sequential read of a file on a disk-backed
filesystem: the tool must see readahead for that device and inode covering
most of the file, and next to nothing once it is cached."""

import datetime
import json
import os
import subprocess
import time

import pytest

from pytools.names import kernel_dev
from pytools.tools.readahead.spec import ReadaheadReader
from pytools.tools.readahead.snapshot import delta

from .modes import need_feature, need_mode, readahead_efficiency_problem, scratch_dir
from .workload import evict, evict_and_read, start_tool, tool_command, write_file

PAGE = os.sysconf("SC_PAGE_SIZE")
SIZE = 24 << 20


@pytest.fixture(scope="module")
def cold_file():
    """A 24 MiB file on a disk-backed filesystem (not tmpfs)."""
    path = write_file(scratch_dir(), SIZE)
    st = os.stat(path)
    if os.major(st.st_dev) == 0:
        pytest.fail(f"{path} is not on a block device (major 0): readahead needs a disk")
    yield path, kernel_dev(os.major(st.st_dev), os.minor(st.st_dev)), st.st_ino
    os.unlink(path)


def read_cached(path):
    with open(path, "rb") as f:
        while f.read(1 << 16):
            pass


@pytest.mark.parametrize("mode", ["tracepoint", "fentry", "kprobe"])
def test_cold_read_is_read_ahead_and_cached_read_is_not(mode, cold_file):
    # tracepoints: Linux 6.18+; page_cache_sync_ra: 5.10+ (older kernels
    # have page_cache_sync_readahead, which the kprobe plan also knows).
    need_mode(mode, function="page_cache_sync_ra", tracepoint="readahead:page_cache_sync_ra")
    path, dev, ino = cold_file
    with ReadaheadReader(device=dev, mode=mode) as tool:
        assert tool.program.candidate.mode == mode
        before = tool.snapshot()
        evict_and_read(path)
        cold = delta(tool.snapshot(), before)
        before = tool.snapshot()
        read_cached(path)
        warm = delta(tool.snapshot(), before)
    mine = cold.files[(dev, ino)]
    pages = SIZE // PAGE
    assert mine.pages >= pages * 0.8, mine          # most of the file came by readahead
    assert mine.windows >= 2 and mine.requests >= 2
    kinds = cold.by_kind()
    assert kinds["sync"].requests >= 1 and kinds["async"].requests >= 1
    assert cold.by_device()[dev].pages >= mine.pages
    assert cold.window_hist.count == sum(c.windows for c in cold.by_device().values())
    assert cold.window_hist.total == sum(c.pages for c in cold.by_device().values())
    assert warm.files.get((dev, ino)) is None or warm.files[(dev, ino)].pages < pages * 0.05


def read_first_half(path):
    with open(path, "rb", buffering=0) as f:
        done = 0
        while done < SIZE // 2:
            done += len(f.read(1 << 16))


def test_efficiency_follows_each_page_read_ahead_to_its_use_or_drop(cold_file):
    need_feature("readahead_efficiency", readahead_efficiency_problem())
    path, dev, ino = cold_file
    pages = SIZE // PAGE
    # Our own process only: readahead by others on this disk is not followed.
    with ReadaheadReader(device=dev, pid=os.getpid(), efficiency=True) as tool:
        assert tool.efficiency_problem is None
        before = tool.snapshot()
        evict_and_read(path)                    # every page read, 64 KiB at a time
        full = delta(tool.snapshot(), before)

        evict(path)
        before = tool.snapshot()
        read_first_half(path)                   # readahead runs past the half
        # Pages still under read I/O are locked and survive DONTNEED: evict
        # until the ones read ahead past the half are gone (or 5 s).
        for _ in range(50):
            evict(path)
            half = delta(tool.snapshot(), before)
            if half.usage[dev].dropped >= half.usage[dev].added - half.usage[dev].used:
                break
            time.sleep(0.1)

    u = full.usage[dev]
    assert pages * 0.8 <= u.added <= pages, u            # most of the file came by readahead
    assert u.used >= u.added * 0.99 and u.used <= u.added, u   # and all of it was read
    assert u.dropped == 0 and u.untracked == 0, u
    assert full.unused_now[dev] <= u.added * 0.01

    h = half.usage[dev]
    assert (pages // 2) * 0.99 <= h.used <= pages // 2, h     # the half that was read
    assert h.added > h.used, h                                # readahead went past it
    assert h.dropped == h.added - h.used, h                   # and those pages left unused
    assert half.unused_now[dev] == 0


def test_cli_json_and_trace(cold_file):
    path, dev, ino = cold_file
    major, minor = dev >> 20, dev & 0xFFFFF
    proc = start_tool(tool_command("readahead-stats") +
                      ["--json", "-d", f"{major}:{minor}", "1", "2"])
    evict_and_read(path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    objects = [json.loads(line) for line in out.splitlines()]
    pages = sum(f["pages"] for o in objects for f in o["files"] if f["ino"] == ino)
    assert pages >= SIZE // PAGE * 0.8
    problem = readahead_efficiency_problem()
    if problem:     # said, not printed as zeros
        assert all(o["efficiency"] is None and o["efficiency_note"] == problem for o in objects)
    else:           # the whole file was read: others' reads only add to the device
        used = sum(d["used_pages"] for o in objects for d in o["efficiency"]["devices"]
                   if d["dev"] == f"{major}:{minor}")
        assert used >= SIZE // PAGE * 0.8, objects

    proc = start_tool(tool_command("readahead-stats") +
                      ["--trace", "--json", "-d", f"{major}:{minor}", "1", "2"])
    evict_and_read(path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    mine = [e for e in events if e["ino"] == ino]
    assert {e["event"] for e in mine} == {"request", "window"}
    assert sum(e["size"] for e in mine if e["event"] == "window") >= SIZE // PAGE * 0.8
    assert "lost" not in err
    # wall time, not seconds since boot; the path, not only the inode
    assert all(e["path"] == path for e in mine), {e["path"] for e in mine}
    when = {datetime.datetime.fromisoformat(e["time"]).timestamp() for e in mine}
    assert all(abs(t - time.time()) < 120 for t in when), when

    proc = start_tool(tool_command("readahead-stats") +
                      ["--trace", "-d", f"{major}:{minor}", "1", "2"])
    evict_and_read(path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].split()[0] == "TIME" and lines[0].split()[-1] == "FILE"
    mine = [line for line in lines[1:] if line.endswith(" " + path)]
    assert mine and all(line[2] == ":" and line[5] == ":" for line in mine), lines[:5]


def test_ebpf_prints_the_flags_efficiency_included_that_the_tool_loads():
    with ReadaheadReader(efficiency=True) as tool:
        expected = tool.program.cflags
        missing = tool.program.missing_features
    out = subprocess.run(tool_command("readahead-stats") + ["--ebpf"], capture_output=True,
                         text=True, timeout=120, cwd="/").stdout
    first = out.split("\n", 1)[0]
    assert first == "// cflags: " + " ".join(expected)
    if not missing:
        assert "-DEFFICIENCY" in first and ("-DUSE_TRACEPOINTS" in first or "-DUSE_FEXIT" in first)
