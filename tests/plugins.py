"""Optimizers that misbehave on purpose, and a sweep job that knows them (imported by subprocesses too).

Importing this module registers them; a process that runs them (a `bench` subprocess, a submitit
job) imports it first: ``python -c "import tests.plugins; ..."`` from the repository root, or a
pickled :class:`PluginSweepJob`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from bench.core.optimizer import Observations, Optimizer, Proposal
from bench.core.registry import register_optimizer
from bench.core.space import CodeGrid
from bench.sweep.job import SweepJob


@register_optimizer("test-sleepy", marker="", sleep_s=30.0)
class Sleepy(Optimizer):
    """Random proposals; the first call of a process writes its pid to ``marker``, then sleeps (a window for signals)."""

    def __init__(self, space: CodeGrid, seed: int, marker: str = "", sleep_s: float = 30.0) -> None:
        super().__init__(space, seed)
        self.marker = marker
        self.sleep_s = float(sleep_s)

    def propose(self, n: int, data: Observations) -> Proposal:
        marker = Path(self.marker) if self.marker else None
        if marker is not None and not marker.exists():
            marker.write_text(f"{os.getpid()}\n")  # the process to signal
            time.sleep(self.sleep_s)
        return Proposal(data.space.sample(n, self.rng))


@register_optimizer("test-exit")
class Exits(Optimizer):
    """Calls sys.exit inside propose."""

    def propose(self, n: int, data: Observations) -> Proposal:
        sys.exit(3)


@register_optimizer("test-hang")
class Hangs(Optimizer):
    """Never returns from propose (well, after a day)."""

    def propose(self, n: int, data: Observations) -> Proposal:
        time.sleep(86400)
        raise AssertionError("unreachable")


@register_optimizer("test-bad", kind="nan")
class Bad(Optimizer):
    """Returns something that is not a valid proposal; ``kind`` says what."""

    def __init__(self, space: CodeGrid, seed: int, kind: str = "nan") -> None:
        super().__init__(space, seed)
        self.kind = kind

    def propose(self, n: int, data: Observations) -> Proposal:
        good = data.space.sample(n, self.rng)
        bad = {"nan": lambda: Proposal(np.full(good.shape, np.nan)),
               "none": lambda: None,
               "out-of-range": lambda: Proposal(good + data.space.codebook_size),
               "shape": lambda: Proposal(good[:, :1]),
               "array": lambda: good,
               "raise": lambda: (_ for _ in ()).throw(RuntimeError("solver exploded"))}
        return bad[self.kind]()


class PluginSweepJob(SweepJob):
    """A :class:`~bench.sweep.job.SweepJob` whose process knows the optimizers above."""
