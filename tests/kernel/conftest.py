"""Fixtures the kernel test modules share."""

import os
import shutil
import tempfile

import pytest


@pytest.fixture
def exec_dir():
    """A directory user nobody can enter (pytest's tmp_path root is 0700)."""
    path = tempfile.mkdtemp(prefix="pytools-test-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)
