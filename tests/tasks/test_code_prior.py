"""The learned code prior: it learns a known distribution, is seeded, immutable and stored safely."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.core.errors import UserError
from bench.tasks.closed_form import markov_latents
from bench.tasks.code_prior import PriorTraining, load_prior, nll_per_code, save_prior, train_prior

K = 16


def true_nll_per_code(latents: np.ndarray, seed: int) -> float:
    """Exact NLL per code of :func:`markov_latents` (same seeded start and transition tables)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 13]))
    start = rng.dirichlet(np.full(K, 0.3))
    transition = rng.dirichlet(np.full(K, 0.1), size=K)
    flat = latents.reshape(len(latents), -1)
    loglik = np.log(start[flat[:, 0]]) + np.log(transition[flat[:, :-1], flat[:, 1:]]).sum(axis=1)
    return float(-loglik.mean() / flat.shape[1])


@pytest.fixture(scope="module")
def markov_prior():
    latents = markov_latents(3000, 4, 4, K, seed=5)
    prior, info = train_prior(latents, K, seed=1, training=PriorTraining(epochs=20.0))
    return prior, info


def test_prior_learns_a_known_markov_chain(markov_prior) -> None:
    prior, info = markov_prior
    held_out = markov_latents(6000, 4, 4, K, seed=5)[3000:]  # same chain, later draws
    truth = true_nll_per_code(held_out, 5)
    learned = nll_per_code(prior, held_out)
    assert truth <= learned + 0.02  # no model beats the truth (up to sampling noise) ...
    assert learned < truth + 0.15 < np.log(K)  # ... and this one comes close, far below uniform codes
    uniform = np.random.default_rng(0).integers(0, K, size=(500, 4, 4))
    assert nll_per_code(prior, uniform) > np.log(K)  # unlike the data: rated below uniform
    assert info["steps"] > 0 and info["config"]["codebook_size"] == K


def test_samples_follow_the_prior_and_are_seeded(markov_prior) -> None:
    prior, _ = markov_prior
    state = torch.random.get_rng_state()
    a, b, c = prior.sample(400, seed=3), prior.sample(400, seed=3), prior.sample(400, seed=4)
    assert torch.equal(state, torch.random.get_rng_state())  # no global RNG
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.shape == (400, 4, 4) and a.dtype == np.int64
    assert abs(true_nll_per_code(a, 5) - nll_per_code(prior, a)) < 0.2


def test_sampling_respects_the_allowed_codes(markov_prior) -> None:
    prior, _ = markov_prior
    allowed = np.zeros((4, 4, K), dtype=bool)
    allowed[..., 3] = allowed[..., 7] = True
    allowed[0, 0] = False
    allowed[0, 0, 11] = True
    latents = prior.sample(50, seed=0, allowed=allowed)
    assert (latents[:, 0, 0] == 11).all()
    assert np.isin(latents[:, 1:], [3, 7]).all()


def test_fitted_returns_a_new_prior_moved_toward_the_weighted_data(markov_prior) -> None:
    prior, _ = markov_prior
    target = np.tile(np.arange(16).reshape(1, 4, 4), (64, 1, 1))
    others = markov_latents(64, 4, 4, K, seed=9)
    latents = np.concatenate([target, others])
    weights = np.r_[np.ones(64), np.zeros(64)]
    before = prior.log_likelihood(target[:1])[0]
    moved = prior.fitted(latents, weights, seed=0, steps=40)
    assert moved.log_likelihood(target[:1])[0] > before + 5
    assert prior.log_likelihood(target[:1])[0] == before  # immutable
    again = prior.fitted(latents, weights, seed=0, steps=40)
    assert np.array_equal(moved.log_likelihood(others), again.log_likelihood(others))  # seeded
    restored = prior.with_parameters(moved.parameters())
    assert np.array_equal(restored.log_likelihood(others), moved.log_likelihood(others))


def test_save_and_load_round_trip_and_bad_files(markov_prior, tmp_path: Path) -> None:
    prior, _ = markov_prior
    path = tmp_path / "prior.pt"
    save_prior(prior, path)
    loaded = load_prior(path)
    latents = markov_latents(100, 4, 4, K, seed=5)
    np.testing.assert_allclose(loaded.log_likelihood(latents), prior.log_likelihood(latents), rtol=0, atol=0.05)
    save_prior(prior, tmp_path / "again.pt")
    assert path.read_bytes() == (tmp_path / "again.pt").read_bytes()  # byte-reproducible artifacts
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="unreadable"):
        load_prior(tmp_path / "bad.pt")
    with pytest.raises(UserError, match="not found"):
        load_prior(tmp_path / "missing.pt")


def test_bad_latents_are_refused(markov_prior) -> None:
    prior, _ = markov_prior
    with pytest.raises(ValueError, match="shape"):
        prior.log_likelihood(np.zeros((2, 3, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="codes must lie"):
        prior.log_likelihood(np.full((1, 4, 4), K))
