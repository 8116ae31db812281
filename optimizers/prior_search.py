"""Optimizers built on the task's learned prior over codes (:attr:`Observations.prior`).

- ``prior-sample``: latents sampled from the prior, the random baseline whose latents decode to
  realistic images (``random`` draws uniform codes, which decode to noise).
- ``dbas`` / ``cbas``: design and conditioning by adaptive sampling (Brookes, Park & Listgarten,
  ICML 2019). A search distribution q, initialised at the prior p0, is refit at every call by
  weighted maximum likelihood to the observations scoring at least the ``quantile``-th quantile
  γ of all scores so far, and the next latents are sampled from it. CbAS multiplies each weight
  by p0(x) / q_src(x), q_src being the distribution x was sampled from (the prior itself for the
  initial design, which are encodings of the VQ-VAE's training images), so the search stays
  anchored where the prior, i.e. the training data, has mass; DbAS has no such term.

Departures from the paper, because the harness asks for small batches (often one latent) rather
than generations of hundreds: the weighted training set is every observation so far, not the
last generation only, and γ is taken over all scores (so it never decreases, as the paper
requires). Each refit continues from the previous q for ``steps`` minibatch steps.

A task without a prior (or whose latent space weighted retraining changed, which makes its
prior describe other codes) makes these optimizers raise :class:`NoPrior`.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import numpy as np

from bench.core.errors import UserError
from bench.core.optimizer import Observations, Optimizer, Proposal
from bench.core.prior import CodePrior
from bench.core.registry import register_optimizer
from bench.core.space import CodeGrid
from bench.optimizers._common import call_seed, distinct_batch, latent_key


class NoPrior(UserError, ValueError):
    """A prior-based optimizer ran on data without a code prior."""


def require_prior(name: str, data: Observations) -> CodePrior:
    """``data.prior``, or :class:`NoPrior` saying why it may be missing and what to do."""
    if data.prior is None:
        raise NoPrior(f"{name} needs the task's learned code prior, and this task offers none: either the task "
                      f"has no prior (VQ tasks get one from `bench prepare --task NAME`; closed-form needs "
                      f"--task-opt prior_samples=2000), or weighted retraining changed the latent space (the "
                      f"prior describes the shipped VQ-VAE's codes): run {name} without --retrain-every")
    return data.prior


def sample_new(prior: CodePrior, n: int, data: Observations, seed: int) -> np.ndarray:
    """``n`` distinct latents from ``prior`` not in ``data``, restricted to the allowed codes."""
    allowed = None if data.space.mask is None else data.space.mask
    draws = itertools.count()
    return distinct_batch(n, data, lambda m: prior.sample(m, call_seed(seed, next(draws)), allowed))


@register_optimizer("prior-sample", package="torch")
class PriorSample(Optimizer):
    """Latents sampled from the task's learned code prior (a realistic-image random baseline)."""

    def __init__(self, space: CodeGrid, seed: int) -> None:
        super().__init__(space, seed)
        self.calls = 0

    def propose(self, n: int, data: Observations) -> Proposal:
        prior = require_prior("prior-sample", data)
        seed = call_seed(self.seed, self.calls)
        self.calls += 1
        latents = sample_new(prior, n, data, seed)
        return Proposal(latents, ({"solver": "prior-sample", "sample_seed": seed},))


class AdaptiveSampling(Optimizer):
    """The loop DbAS and CbAS share: refit the search distribution toward the top scores, then sample."""

    #: CbAS's p0 / q_src factor in the weights (False: DbAS)
    anchored: ClassVar[bool] = True

    def __init__(self, space: CodeGrid, seed: int, quantile: float = 0.8, steps: int = 50) -> None:
        super().__init__(space, seed)
        if not 0.0 <= quantile < 1.0:
            raise ValueError(f"quantile must be in [0, 1), got {quantile!r}")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps!r}")
        self.quantile = float(quantile)
        self.steps = int(steps)
        self.calls = 0
        self.search_parameters: dict[str, np.ndarray] | None = None  # q; None: still the prior
        self.sampled = np.zeros((0, space.n_positions), dtype=np.int64)  # what q proposed ...
        self.sampled_loglik = np.zeros(0)  # ... and log q_src of each, for CbAS's weights

    def weights(self, data: Observations, prior: CodePrior) -> np.ndarray:
        """1[y >= γ] per observation, times p0(x) / q_src(x) for CbAS (normalised to max 1)."""
        selected = data.scores >= np.quantile(data.scores, self.quantile)
        if not self.anchored:
            return selected.astype(np.float64)
        source = {latent_key(z): ll for z, ll in zip(self.sampled, self.sampled_loglik)}
        log_ratio = np.zeros(len(data))
        ours = [i for i, z in enumerate(data.flat) if selected[i] and latent_key(z) in source]
        if ours:
            rows = data.latents[ours]
            log_ratio[ours] = prior.log_likelihood(rows) - np.array([source[latent_key(z)] for z in data.flat[ours]])
        log_ratio = np.where(selected, log_ratio, -np.inf)
        return np.exp(log_ratio - log_ratio[selected].max())

    def propose(self, n: int, data: Observations) -> Proposal:
        name = "cbas" if self.anchored else "dbas"
        prior = require_prior(name, data)
        seed = call_seed(self.seed, self.calls)
        self.calls += 1
        search = prior if self.search_parameters is None else prior.with_parameters(self.search_parameters)
        weights = self.weights(data, prior)
        search = search.fitted(data.latents, weights, seed, self.steps)
        latents = sample_new(search, n, data, seed)
        self.search_parameters = search.parameters()
        self.sampled = np.concatenate([self.sampled, latents.reshape(n, -1)])
        self.sampled_loglik = np.concatenate([self.sampled_loglik, search.log_likelihood(latents)])
        effective = float(weights.sum() ** 2 / max((weights ** 2).sum(), 1e-300))
        info: dict[str, Any] = {"solver": name, "sample_seed": seed, "n_selected": int((weights > 0).sum()),
                                "effective_n": effective, "threshold": float(np.quantile(data.scores, self.quantile))}
        return Proposal(latents, (info,))


@register_optimizer("dbas", package="torch")
class DbAS(AdaptiveSampling):
    """Design by adaptive sampling: the prior refit toward the top scores at every call, then sampled."""

    anchored = False


@register_optimizer("cbas", package="torch")
class CbAS(AdaptiveSampling):
    """Conditioning by adaptive sampling: as DbAS, with weights p0/q that keep the search near the prior."""

    anchored = True
