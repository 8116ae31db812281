"""The task interface: a black-box function over a :class:`~bench.space.CodeGrid`.

Image tasks (a VQ-VAE decoder followed by a scorer) additionally implement
:class:`RetrainableTask`, which the run loop uses for weighted retraining.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.core.space import CodeGrid


@dataclass(frozen=True)
class InitialData:
    """The starting data of a run.

    ``images`` (float32, (N, C, H, W) in [0, 1]) is set by image tasks: it is what weighted
    retraining fine-tunes on and re-encodes.
    """

    latents: np.ndarray
    scores: np.ndarray
    images: np.ndarray | None = None


class Task(ABC):
    """A maximisation problem over a grid of codes."""

    #: registry name, set by :func:`bench.registry.register_task`
    name: str = ""
    #: initial design size used when the run config does not set one
    default_n_initial: int = 20

    @property
    @abstractmethod
    def space(self) -> CodeGrid:
        """The current search space (its mask may change after retraining)."""

    @abstractmethod
    def initial_data(self, seed: int, n: int) -> InitialData:
        """``n`` starting points and their scores, a pure function of (task, seed, n).

        Every optimizer run with the same seed starts from these same points.
        """

    @abstractmethod
    def evaluate(self, latents: np.ndarray) -> np.ndarray:
        """Scores (float64, shape (n,), higher is better) of a batch of (n, height, width) latents."""

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """Images (float32, (n, C, H, W) in [0, 1]) for a batch of latents, where that makes sense."""
        raise NotImplementedError(f"task {self.name!r} has no images")

    def diagnostics(self, latents: np.ndarray) -> dict[str, np.ndarray]:
        """Optional per-point columns beside the score, e.g. ``regret`` or ``heldout_score``.

        Keys must be record column names from :mod:`bench.constants`.
        """
        return {}

    def set_metrics(self, images: np.ndarray, subset: str) -> list[dict[str, Any]]:
        """Set-level metrics (FID, KID, ...) of a batch of images; rows for ``metrics.parquet``.

        Each row holds the metric name, value, std, n, reference set and feature extractor
        (see the ``METRIC_*`` names in :mod:`bench.constants`). Default: none.
        """
        return []

    def probe_latents(self) -> np.ndarray:
        """Fixed latents on which :meth:`signature` evaluates the task."""
        rng = np.random.default_rng(20230613)
        return self.space.sample(16, rng)

    def fingerprint(self) -> bytes:
        """Bytes identifying the task's models and parameters (checkpoint hashes and config)."""
        return self.name.encode()

    def signature(self) -> str:
        """Hash of :meth:`fingerprint` and of the scores on :meth:`probe_latents`.

        Two runs with equal signatures optimized the same function.
        """
        h = hashlib.sha256(self.fingerprint())
        scores = np.asarray(self.evaluate(self.probe_latents()), dtype=np.float64)
        h.update(np.round(scores, 6).tobytes())
        return h.hexdigest()[:16]


class RetrainableTask(Task):
    """A task whose latent space comes from a generative model that can be fine-tuned."""

    #: increments after every :meth:`fine_tune`; stored in every record row
    model_version: int = 0

    @abstractmethod
    def encode(self, images: np.ndarray) -> np.ndarray:
        """Codes (int64, (n, height, width)) of a batch of images under the current model."""

    @abstractmethod
    def decode(self, latents: np.ndarray) -> np.ndarray:
        """Images (float32, (n, C, H, W) in [0, 1]) of a batch of latents under the current model."""

    @abstractmethod
    def score_images(self, images: np.ndarray) -> np.ndarray:
        """Black-box scores of images (the same scorer for initial data and queries)."""

    @abstractmethod
    def fine_tune(self, images: np.ndarray, weights: np.ndarray, epochs: float, seed: int) -> dict[str, Any]:
        """Fine-tune the generative model on ``images`` sampled with probability ∝ ``weights``.

        ``epochs`` may be fractional. Increments :attr:`model_version` and refreshes
        :attr:`space`. Returns training statistics (loss, codebook usage, ...).
        """

    @abstractmethod
    def model_state(self) -> dict[str, Any]:
        """Picklable state of everything fine-tuning changes (weights, optimizer, version)."""

    @abstractmethod
    def load_model_state(self, state: dict[str, Any]) -> None:
        """Restore a snapshot made by :meth:`model_state`."""

    def evaluate(self, latents: np.ndarray) -> np.ndarray:
        return self.score_images(self.decode(latents))
