"""biolatency against real block I/O: O_DIRECT reads of a loop device the
test makes (the loop driver is built into these kernels), counted exactly,
and checked against bpftrace on the same tracepoints in the same run."""

import json
import mmap
import os
import signal
import subprocess
import tempfile

import pytest

from pytools.errors import ToolError
from pytools.hist import slot_of
from pytools.names import dev_text, kernel_dev
from pytools.tools.biolatency.snapshot import delta
from pytools.tools.biolatency.spec import BioLatencyReader

from .block import BLOCK, Loop, loop  # noqa: F401 (a fixture)
from .exporter import Exporter, diff
from .modes import need_feature, need_mode, scratch_dir
from .workload import Bpftrace, start_tool, tool_command


@pytest.fixture
def other_loop():
    device = Loop()
    yield device
    device.close()


MODES = ["raw_tracepoint", "tracepoint"]


def open_mode(mode: str, **options) -> BioLatencyReader:
    """biolatency forced onto `mode`. The raw tracepoints read struct
    request, so beyond the mode this needs the kernel's own headers: the
    try itself says whether this kernel can (feature "block_request")."""
    need_mode(mode, tracepoint="block:block_rq_issue")
    try:
        return BioLatencyReader(mode=mode, **options)
    except ToolError as e:
        if mode != "raw_tracepoint":
            raise
        need_feature("block_request", str(e))


@pytest.mark.parametrize("mode", MODES)
def test_direct_reads_are_counted_exactly_per_disk_and_op(mode, loop, other_loop):
    n = 97
    with open_mode(mode, by_device=True, by_op=True) as tool:
        before = tool.snapshot()
        loop.direct_reads(n)
        other_loop.direct_reads(3)
        got = delta(tool.snapshot(), before)
    mine = {op: h for (dev, op), h in got.hists.items() if dev == loop.dev}
    assert sum(h.count for h in mine.values()) == n, mine
    assert set(mine) <= {"read", "sync-read"}
    assert sum(h.count for (dev, _), h in got.hists.items() if dev == other_loop.dev) == 3
    assert all(h.total > 0 for h in mine.values())


@pytest.mark.parametrize("mode", MODES)
def test_device_filter_keeps_only_that_disk(mode, loop, other_loop):
    with open_mode(mode, by_device=True, device=loop.dev) as tool:
        before = tool.snapshot()
        other_loop.direct_reads(11)
        loop.direct_reads(13)
        got = delta(tool.snapshot(), before)
    assert {dev for dev, _ in got.hists} == {loop.dev}
    assert got.hists[(loop.dev, None)].count == 13


# A read of the marker block, made after the counted reads, has bpftrace
# print its count and exit by itself.
MARK_BLOCK = 4000
BPFTRACE = """
tracepoint:block:block_rq_complete /args->dev == %(dev)d && args->nr_sector > 0/ {
  if (args->sector == %(mark)d) { print(@n); exit(); } else { @n = count(); }
}
"""


def test_cli_json_and_bpftrace_agree_on_the_same_reads(loop):
    n = 61
    trace = Bpftrace.attached(BPFTRACE % {"dev": loop.dev, "mark": MARK_BLOCK * BLOCK // 512})
    try:
        proc = start_tool(tool_command("biolatency") + ["-d", loop.device, "--by", "disk",
                                                        "--json", "3600"])
        try:
            loop.direct_reads(n)
        finally:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        loop.direct_reads(1, first_block=MARK_BLOCK)
        traced = trace.wait_for("@n:", timeout=60)
    finally:
        trace.close()
    assert proc.returncode == 0, err
    (obj,) = [json.loads(line) for line in out.splitlines()]
    (hist,) = obj["groups"]
    assert hist["dev"] == dev_text(loop.dev) and hist["device"] == loop.name
    assert hist["key"] == loop.name and obj["hist"]["count"] == n
    assert hist["hist"]["count"] == n
    assert traced == f"@n: {n}", trace.lines


def test_exporter_counts_the_same_reads(loop):
    exp = Exporter("--collectors", "biolatency")
    try:
        exp.assert_serving()
        first = exp.scrape()
        loop.direct_reads(29)
        second = exp.scrape()
    finally:
        exp.stop()
    count = sum(diff(second, first, "block_io_latency_seconds_count", device=loop.name, op=op)
                for op in ("read", "sync-read"))
    assert count == 29, {k: v for k, v in second.items() if k[0].startswith("block_io")}


NULL_BLK_NS = 5_000_000     # each request completes 5 ms after it is issued


@pytest.fixture
def null_blk():
    """/dev/nullb0 completing every request after NULL_BLK_NS (hrtimer,
    irqmode=2): a disk of known latency. The module is loaded for the test
    and removed after; a kernel without it skips (fails where required)."""
    subprocess.run(["modprobe", "-r", "null_blk"], capture_output=True)
    result = subprocess.run(["modprobe", "null_blk", "nr_devices=1", "queue_mode=2",
                             "irqmode=2", f"completion_nsec={NULL_BLK_NS}"],
                            capture_output=True, text=True)
    if result.returncode != 0 or not os.path.exists("/dev/nullb0"):
        need_feature("null_blk", (result.stderr.strip() or "no /dev/nullb0 after modprobe"))
    st = os.stat("/dev/nullb0")
    yield kernel_dev(os.major(st.st_rdev), os.minor(st.st_rdev))
    subprocess.run(["modprobe", "-r", "null_blk"], capture_output=True)


@pytest.mark.parametrize("mode", MODES)
def test_a_disk_of_known_latency_lands_in_its_slot(mode, null_blk):
    n = 20
    with open_mode(mode, device=null_blk) as tool:
        before = tool.snapshot()
        buf = mmap.mmap(-1, BLOCK)
        fd = os.open("/dev/nullb0", os.O_RDONLY | os.O_DIRECT)
        try:
            for i in range(n):
                assert os.preadv(fd, [buf], i * BLOCK) == BLOCK
        finally:
            os.close(fd)
        got = delta(tool.snapshot(), before)
    (hist,) = got.hists.values()
    slot = slot_of(NULL_BLK_NS // 1000)                   # [4096, 8191] us
    assert hist.count == n, hist.slots
    assert sum(hist.slots[:slot]) == 0, hist.slots       # none faster than the device
    # Emulated timers may fire late; almost all land in the slot of 5 ms.
    assert hist.slots[slot] >= n - 2, hist.slots
    assert hist.total >= n * NULL_BLK_NS


def test_direct_reads_of_a_file_reach_its_disk():
    """O_DIRECT reads of a file on a disk filesystem (the root disk on the
    host, the scratch disk in the VM): each is a read request to that disk.
    Other processes share the disk, so its count is at least ours."""
    n = 37
    fd, path = tempfile.mkstemp(dir=scratch_dir())
    try:
        os.write(fd, os.urandom(2 * n * BLOCK))
        os.fsync(fd)
        os.close(fd)
        st = os.stat(path)
        disk = whole_disk(kernel_dev(os.major(st.st_dev), os.minor(st.st_dev)))
        buf = mmap.mmap(-1, BLOCK)
        with BioLatencyReader(by_device=True, by_op=True) as tool:
            before = tool.snapshot()
            fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
            try:
                for i in range(n):
                    assert os.preadv(fd, [buf], 2 * i * BLOCK) == BLOCK
            finally:
                os.close(fd)
            got = delta(tool.snapshot(), before)
    finally:
        os.unlink(path)
    reads = sum(h.count for (dev, op), h in got.hists.items()
                if dev == disk and op in ("read", "sync-read"))
    assert reads >= n, {k: h.count for k, h in got.hists.items()}


def whole_disk(dev: int) -> int:
    """The disk a partition belongs to (the block tracepoints report disks)."""
    path = os.path.realpath(f"/sys/dev/block/{dev_text(dev)}")
    if os.path.exists(os.path.join(path, "partition")):
        with open(os.path.join(os.path.dirname(path), "dev")) as f:
            major, minor = f.read().strip().split(":")
        return kernel_dev(int(major), int(minor))
    return dev
