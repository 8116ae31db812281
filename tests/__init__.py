"""The test suite; its folders mirror the packages (core, store, run, sweep, analysis, cli, tasks, optimizers).

``REPO_ROOT`` is the checkout the tests run from (specs, shipped artifacts, the ``bench`` module).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parents[1]

#: the ``bench_subprocess`` fixture (tests/conftest.py): ``bench ARGS...`` in a fresh process
BenchCLI = Callable[..., subprocess.CompletedProcess]
