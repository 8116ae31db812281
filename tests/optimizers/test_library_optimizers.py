"""Optimizers wrapping Optuna, Nevergrad, cma and BoTorch: resumable, informed by the data, better than random."""

from __future__ import annotations

import numpy as np
import pytest

from bench.core import registry
from bench.core.optimizer import Observations
from bench.optimizers.cmaes_embed import NoCodebook
from bench.store import safe
from bench.testing.contracts import grown
from tests.optimizers.test_baselines import final_regret

#: cheap, library-backed optimizers that replay the data at every call
REPLAYED = ["optuna-tpe", "optuna-tpe/group", "ng-lengler-1p1", "ng-ngopt", "cmaes-embed"]


def _rounds(name: str, task_name: str, n_rounds: int, resume_after: int | None) -> list[np.ndarray]:
    """``n_rounds`` batches of 3; with ``resume_after`` the optimizer is rebuilt from its checkpoint then."""
    task = registry.task_spec(task_name).build()
    init = task.initial_data(0, 12)
    data = Observations(task.space, init.latents, init.scores, codebook=task.codebook())
    optimizer = registry.optimizer_spec(name).build(task.space, 3)
    batches = []
    for r in range(n_rounds):
        if r == resume_after:
            state = safe.loads(safe.dumps(optimizer.state_dict()))
            optimizer = registry.optimizer_spec(name).build(task.space, 3)
            optimizer.load_state_dict(state)
        batch = optimizer.propose(3, data).latents
        batches.append(batch)
        data = grown(task, data, batch)
    return batches


@pytest.mark.parametrize("name", REPLAYED)
def test_resumed_run_proposes_what_an_uninterrupted_one_does(name: str) -> None:
    straight = _rounds(name, "closed-form", 4, None)
    resumed = _rounds(name, "closed-form", 4, 2)
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(straight[2], straight[3])  # the call count moves the library's seed


@pytest.fixture(scope="module")
def random_regret() -> np.ndarray:
    return np.array([final_regret("random", s, budget=100) for s in range(3)])


@pytest.mark.parametrize("name", ["optuna-tpe", "ng-discrete-1p1", "ng-lengler-1p1", "cmaes-embed"])
def test_beats_random_search_on_closed_form(name: str, random_regret: np.ndarray) -> None:
    regret = np.array([final_regret(name, s, budget=100) for s in range(3)])
    assert regret.mean() < random_regret.mean()
    assert (regret < random_regret).sum() >= 2  # paired seeds share the initial design


def test_optuna_gp_finds_the_optimum_of_the_small_task() -> None:
    """The GP path (20 initial points, past the startup trials) finds it in one batch of 5 of 605 unseen latents."""
    assert final_regret("optuna-gp", 0, budget=25, task="closed-form/small") == pytest.approx(0.0, abs=1e-9)


def test_cmaes_embed_refuses_a_task_without_codebook() -> None:
    task = registry.task_spec("closed-form").build(overrides={"code_dim": 0})
    init = task.initial_data(0, 10)
    optimizer = registry.optimizer_spec("cmaes-embed").build(task.space, 0)
    with pytest.raises(NoCodebook, match="exposes no codebook"):
        optimizer.propose(2, Observations(task.space, init.latents, init.scores, codebook=task.codebook()))


def test_cmaes_embed_follows_the_codebook() -> None:
    """Relabelling the codes (codebook B = A[perm], data relabelled) relabels the proposals the same way."""
    task = registry.task_spec("closed-form").build()
    init = task.initial_data(0, 30)
    codebook = task.codebook()
    perm = np.random.default_rng(1).permutation(task.space.codebook_size)
    inverse = np.argsort(perm)
    first = registry.optimizer_spec("cmaes-embed").build(task.space, 0).propose(
        4, Observations(task.space, init.latents, init.scores, codebook=codebook))
    relabelled = registry.optimizer_spec("cmaes-embed").build(task.space, 0).propose(
        4, Observations(task.space, inverse[init.latents], init.scores, codebook=codebook[perm], version=1))
    assert first.info[0]["n_duplicates_replaced"] == 0
    np.testing.assert_array_equal(relabelled.latents, inverse[first.latents])


def test_botorch_cat_finds_the_optimum_of_the_small_task() -> None:
    """The categorical GP and trust-region search find it within two batches of 5 (random does not)."""
    cheap = {"n_neighbours": 32, "n_steps": 5, "fit_maxiter": 30}
    assert final_regret("botorch-cat", 0, budget=30, task="closed-form/small", overrides=cheap) == pytest.approx(0.0, abs=1e-9)
    assert final_regret("random", 0, budget=30, task="closed-form/small") > 0.5


def test_botorch_cat_trust_region_follows_success_and_failure() -> None:
    task = registry.task_spec("closed-form").build()
    optimizer = registry.optimizer_spec("botorch-cat").build(task.space, 0, overrides={"radius_init": 8})
    for best in (1.0, 2.0, 3.0, 4.0):  # three improvements in a row double the radius
        optimizer.update_trust_region(best)
    assert optimizer.radius == 16
    for _ in range(10):  # ten calls without improvement halve it
        optimizer.update_trust_region(4.0)
    assert optimizer.radius == 8
