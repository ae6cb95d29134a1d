"""A loop block device over a scratch file, for the block I/O kernel tests."""

import mmap
import os
import subprocess
import tempfile

import pytest

from pytools.names import kernel_dev

from .modes import scratch_dir


class Loop:
    """A loop device over a sparse file; detached and removed on close."""

    def __init__(self, size: int = 16 << 20):
        if not os.path.exists("/dev/loop-control"):   # a module on Debian's stock kernel
            subprocess.run(["modprobe", "loop"], check=False)
        fd, self.path = tempfile.mkstemp(dir=scratch_dir(), suffix=".img")
        os.ftruncate(fd, size)
        os.close(fd)
        self.device = subprocess.run(["losetup", "--find", "--show", self.path],
                                     capture_output=True, text=True, check=True).stdout.strip()
        st = os.stat(self.device)
        self.dev = kernel_dev(os.major(st.st_rdev), os.minor(st.st_rdev))
        self.name = os.path.basename(self.device)

    def direct_reads(self, n: int, first_block: int = 0) -> None:
        """n O_DIRECT reads of one block each, at distinct offsets: n requests."""
        buf = mmap.mmap(-1, BLOCK)          # page aligned, as O_DIRECT wants
        fd = os.open(self.device, os.O_RDONLY | os.O_DIRECT)
        try:
            for i in range(n):
                assert os.preadv(fd, [buf], (first_block + 2 * i) * BLOCK) == BLOCK
        finally:
            os.close(fd)
            buf.close()

    def close(self) -> None:
        subprocess.run(["losetup", "-d", self.device], check=False)
        os.unlink(self.path)


@pytest.fixture
def loop():
    device = Loop()
    yield device
    device.close()


BLOCK = 4096
