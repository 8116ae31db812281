"""The task interface: a black-box function over a :class:`~bench.core.space.CodeGrid`.

``evaluate`` returns an :class:`Evaluation` (scores, and the decoded images and per-point extras
where the task has them). Image tasks (a VQ-VAE decoder followed by a scorer) additionally
implement :class:`RetrainableTask`, which the run loop uses for weighted retraining.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

import numpy as np

from bench.core import constants as C
from bench.core.prior import CodePrior
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


@dataclass(frozen=True)
class Evaluation:
    """What evaluating a batch of n latents produced.

    ``scores``: float64 (n,), higher is better. ``images``: float32 (n, C, H, W) in [0, 1], the
    decoded images that were scored (image tasks), else None. ``extras``: per-point float
    columns beside the score, keyed by the names in :data:`bench.core.constants.EXTRA_COLUMNS`
    (e.g. ``regret``, ``heldout_score``).
    """

    scores: np.ndarray
    images: np.ndarray | None = None
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        object.__setattr__(self, "scores", scores)
        n = len(scores)
        if self.images is not None and len(self.images) != n:
            raise ValueError(f"Evaluation: {len(self.images)} images for {n} scores")
        extras = {}
        for key, values in dict(self.extras).items():
            if key not in C.EXTRA_COLUMNS:
                raise ValueError(f"Evaluation: unknown extra column {key!r}; valid: {', '.join(C.EXTRA_COLUMNS)}")
            values = np.asarray(values, dtype=np.float64).reshape(-1)
            if len(values) != n:
                raise ValueError(f"Evaluation: {len(values)} values of {key!r} for {n} scores")
            extras[key] = values
        object.__setattr__(self, "extras", extras)

    def __len__(self) -> int:
        return len(self.scores)


class Task(ABC):
    """A maximisation problem over a grid of codes."""

    #: registry name without preset; set by :func:`bench.core.registry.register_task` on the class
    name: ClassVar[str] = ""
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
    def evaluate(self, latents: np.ndarray) -> Evaluation:
        """Scores (and images and extras, where the task has them) of (n, height, width) latents."""

    def codebook(self) -> np.ndarray | None:
        """The current code vectors, float (codebook_size, dim), or None when the task has none.

        Optimizers that search the continuous embedding space read it from
        :attr:`bench.core.optimizer.Observations.codebook`.
        """
        return None

    def code_prior(self) -> CodePrior | None:
        """The learned distribution over codes of the *current* latent space, or None.

        Prior-based optimizers read it from :attr:`bench.core.optimizer.Observations.prior`. A
        task whose latent space changed since its prior was learned (weighted retraining) returns
        None rather than a prior of another code space.
        """
        return None

    def provenance(self) -> dict[str, Any]:
        """Plain facts about the task's models that ``run.json`` records (artifact manifest hash,
        whether the artifacts are a ``--quick`` smoke build, label source, ...). Default: none.

        The key ``quick`` set to True marks a run on smoke-test artifacts: reports flag such runs
        and never average them with full ones.
        """
        return {}

    def set_metrics(self, images: np.ndarray, subset: str) -> list[dict[str, Any]]:
        """Set-level metrics (FID, KID, ...) of a batch of images; rows for ``metrics.parquet``.

        Each row holds the metric name, value, std, n, reference set and feature extractor
        (see the ``METRIC_*`` names in :mod:`bench.core.constants`). Default: none.
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
        scores = self.evaluate(self.probe_latents()).scores
        h.update(np.round(scores, 6).tobytes())
        return h.hexdigest()[:16]


class RetrainableTask(Task):
    """A task whose latent space comes from a generative model that can be fine-tuned."""

    @abstractmethod
    def encode(self, images: np.ndarray) -> np.ndarray:
        """Codes (int64, (n, height, width)) of a batch of images under the current model."""

    @abstractmethod
    def decode(self, latents: np.ndarray) -> np.ndarray:
        """Images (float32, (n, C, H, W) in [0, 1]) of a batch of latents under the current model."""

    @abstractmethod
    def fine_tune(self, images: np.ndarray, weights: np.ndarray, epochs: float, seed: int) -> dict[str, Any]:
        """Fine-tune the generative model on ``images`` sampled with probability ∝ ``weights``.

        ``epochs`` may be fractional; :attr:`space` reflects the new model afterwards. Returns
        training statistics (loss, codebook usage, ...), plain numbers for ``run.json``.
        """

    @abstractmethod
    def model_state(self) -> dict[str, Any]:
        """Snapshot of everything fine-tuning changes (weights, optimizer state), as plain data
        and tensors/arrays, so that checkpoints store it without pickle."""

    @abstractmethod
    def load_model_state(self, state: dict[str, Any]) -> None:
        """Restore a snapshot made by :meth:`model_state`."""
