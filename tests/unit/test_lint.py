"""Lint and types are part of the suite: ruff (pyflakes, pycodestyle, the
bugbear checks) on pytools/ and tests/, and mypy on pytools/, configured in
pyproject.toml, run with this Python (the venv: both come with the `test`
extra, which scripts/setup installs). A finding fails here like any other
test."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
CHECKS = {
    "ruff": ["ruff", "check", "--no-cache", "pytools", "tests"],
    "mypy": ["mypy"],              # files = pytools, from pyproject.toml; its cache: .mypy_cache
}


@pytest.mark.parametrize("name", CHECKS)
def test_the_code_is_clean(name):
    result = subprocess.run([sys.executable, "-m", *CHECKS[name]], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    if f"No module named {name}" in result.stderr:
        pytest.fail(f"{name} is not installed in {sys.prefix}: it comes with the test extra "
                    "(scripts/setup, or pip install -e '.[test]')")
    assert result.returncode == 0, result.stdout + result.stderr
