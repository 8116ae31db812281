"""Fixtures shared by every test folder."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests import REPO_ROOT, BenchCLI


@pytest.fixture
def bench_subprocess() -> BenchCLI:
    """``bench ARGS...`` in a fresh Python process from the repository root (exit code, stdout, stderr).

    For what only a real process shows: the entry point, exit codes, signals, nothing shared with
    the test process. In-process checks call :func:`bench.cli.main.main` directly.
    """
    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bench.cli", *args], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=timeout)
    return run
