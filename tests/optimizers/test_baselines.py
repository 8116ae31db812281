"""Baselines beat nothing-at-all: lower regret than uniform random search at equal budget."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench.core.config import RunConfig
from bench.run.loop import run
from bench.core.registry import optimizer_spec, task_spec

SEEDS = range(4)


def final_regret(optimizer: str, seed: int, budget: int = 150, task: str = "closed-form",
                 overrides: dict[str, Any] | None = None) -> float:
    """Regret of the best point after ``budget`` queries in batches of 5."""
    problem = task_spec(task).build()
    config = RunConfig(task=task, optimizer=optimizer, seed=seed, budget=budget, batch_size=5)
    best = -np.inf
    built = optimizer_spec(optimizer).build(problem.space, seed, overrides=overrides)
    for result in run(problem, built, config, preset_hash=""):
        best = result.state.best
    return problem.optimum_value - best


@pytest.fixture(scope="module")
def random_regret() -> np.ndarray:
    return np.array([final_regret("random", s) for s in SEEDS])


@pytest.mark.parametrize("optimizer", ["evolution", "local-search"])
def test_beats_random_search(optimizer: str, random_regret: np.ndarray) -> None:
    regret = np.array([final_regret(optimizer, s) for s in SEEDS])
    assert regret.mean() < random_regret.mean() - 1.0
    assert (regret < random_regret).sum() >= 3  # paired: same seed, same initial design


def test_local_search_reaches_optimum_on_tiny_task() -> None:
    assert final_regret("local-search", 0, budget=60, task="closed-form/small") == pytest.approx(0.0, abs=1e-9)
