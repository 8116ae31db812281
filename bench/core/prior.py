"""The code-prior interface: a generative model over code grids that a task may expose.

A VQ task's prior is learned on the encodings of the VQ-VAE's training images, so latents it
rates likely decode to images like the training data. Optimizers reach it through
:attr:`bench.core.optimizer.Observations.prior` (sampling, re-weighted refits: ``prior-sample``,
``dbas``, ``cbas``); the task records its log-likelihood of every queried latent (the
``prior_loglik`` record column, a per-image realism diagnostic). Priors are immutable: a refit
returns a new prior, so the task's own prior never changes under an optimizer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class CodePrior(ABC):
    """A distribution over (height, width) grids of codes with exact log-likelihoods."""

    @abstractmethod
    def log_likelihood(self, latents: np.ndarray) -> np.ndarray:
        """Natural-log likelihood, float64 (n,), of int latents (n, height, width)."""

    @abstractmethod
    def sample(self, n: int, seed: int, allowed: np.ndarray | None = None) -> np.ndarray:
        """``n`` latents, int64 (n, height, width), a pure function of ``seed``.

        ``allowed`` (height, width, codebook_size) bool restricts every position to its allowed
        codes (the search space's mask); sampling renormalises over them.
        """

    @abstractmethod
    def fitted(self, latents: np.ndarray, weights: np.ndarray, seed: int, steps: int) -> CodePrior:
        """A new prior: this one trained ``steps`` minibatch steps toward weighted maximum
        likelihood on ``latents`` (minibatches drawn with probability ∝ ``weights``)."""

    @abstractmethod
    def parameters(self) -> dict[str, np.ndarray]:
        """Every learned parameter as plain arrays (what optimizer checkpoints store)."""

    @abstractmethod
    def with_parameters(self, parameters: dict[str, np.ndarray]) -> CodePrior:
        """A new prior of the same architecture with ``parameters`` (from :meth:`parameters`)."""
