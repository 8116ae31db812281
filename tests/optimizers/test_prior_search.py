"""prior-sample, DbAS and CbAS: they need a prior, search toward high scores, and weight as the paper says."""

from __future__ import annotations

import numpy as np
import pytest

from bench.core import registry
from bench.core.optimizer import Observations
from bench.optimizers.prior_search import CbAS, DbAS, NoPrior


@pytest.fixture(scope="module")
def task():
    return registry.task_spec("closed-form/prior").build()


def observations(task, latents: np.ndarray, scores: np.ndarray | None = None) -> Observations:
    scores = task.evaluate(latents).scores if scores is None else scores
    return Observations(task.space, latents, scores, prior=task.code_prior())


def run(task, name: str, rounds: int, batch: int = 5, seed: int = 0) -> np.ndarray:
    init = task.initial_data(seed, 20)
    data = observations(task, init.latents, init.scores)
    optimizer = registry.optimizer_spec(name).build(task.space, seed)
    for _ in range(rounds):
        latents = optimizer.propose(batch, data).latents
        data = observations(task, np.concatenate([data.latents, latents]))
    return data.scores[20:]


@pytest.mark.parametrize("name", ["prior-sample", "dbas", "cbas"])
def test_without_a_prior_the_optimizer_says_what_to_do(name: str) -> None:
    plain = registry.task_spec("closed-form").build()
    init = plain.initial_data(0, 10)
    optimizer = registry.optimizer_spec(name).build(plain.space, 0)
    with pytest.raises(NoPrior, match=r"bench prepare.*retrain"):
        optimizer.propose(2, Observations(plain.space, init.latents, init.scores))


def test_prior_samples_are_likely_under_the_prior(task) -> None:
    latents = registry.optimizer_spec("prior-sample").build(task.space, 0).propose(20, observations(
        task, task.initial_data(0, 20).latents)).latents
    uniform = task.space.sample(20, np.random.default_rng(0))
    prior = task.code_prior()
    assert prior.log_likelihood(latents).mean() > prior.log_likelihood(uniform).mean() + 10


@pytest.mark.parametrize("name", ["dbas", "cbas"])
def test_adaptive_sampling_climbs_above_prior_sampling(task, name: str) -> None:
    baseline = run(task, "prior-sample", rounds=8)
    adaptive = run(task, name, rounds=8)
    # the refits pull the search distribution toward the observed top scores
    assert adaptive[-10:].mean() > baseline[-10:].mean() + 0.5
    assert adaptive.max() > baseline.max()


def test_cbas_weights_are_selection_times_prior_over_source(task) -> None:
    init = task.initial_data(0, 20)
    data = observations(task, init.latents, init.scores)
    cbas = CbAS(task.space, 0, quantile=0.5)
    latents = cbas.propose(4, data).latents
    grown = observations(task, np.concatenate([data.latents, latents]))
    weights = cbas.weights(grown, task.code_prior())
    selected = grown.scores >= np.quantile(grown.scores, 0.5)
    assert np.array_equal(weights > 0, selected)
    log_ratio = np.zeros(len(grown))
    log_ratio[20:] = task.code_prior().log_likelihood(latents) - cbas.sampled_loglik  # q_src: the refit q
    expected = np.where(selected, np.exp(log_ratio - log_ratio[selected].max()), 0.0)
    np.testing.assert_allclose(weights, expected, rtol=1e-9)
    assert np.all(weights[:20][selected[:20]] == weights[:20][selected[:20]].max())  # the initial design: p0 = q_src
    dbas = DbAS(task.space, 0, quantile=0.5)
    assert np.array_equal(dbas.weights(grown, task.code_prior()), selected.astype(float))
