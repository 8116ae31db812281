"""The optimizer interface: batched ask with the full current data set.

An optimizer sees the whole data set at every call rather than a stream of ``tell``\\ s, because
weighted retraining re-encodes every point into a new latent space: the data do not only grow.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.core.space import CodeGrid


@dataclass(frozen=True)
class Observations:
    """Everything evaluated so far, in the *current* latent space.

    ``latents`` has shape (N, height, width), ``scores`` shape (N,) (higher is better) and
    ``weights`` is None or shape (N,) (the rank weights of weighted retraining, when enabled).
    ``version`` is the latent-space version: it changes whenever the task re-encodes the data.
    """

    space: CodeGrid
    latents: np.ndarray
    scores: np.ndarray
    weights: np.ndarray | None = None
    version: int = 0

    def __post_init__(self) -> None:
        if len(self.latents) != len(self.scores):
            raise ValueError(f"{len(self.latents)} latents but {len(self.scores)} scores")
        if self.weights is not None and len(self.weights) != len(self.scores):
            raise ValueError(f"{len(self.weights)} weights but {len(self.scores)} scores")

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def flat(self) -> np.ndarray:
        """Latents as an (N, height * width) int64 matrix, row-major positions."""
        return self.latents.reshape(len(self.latents), -1).astype(np.int64, copy=False)

    def best_index(self) -> int:
        """Index of the best observation (first one on ties)."""
        return int(np.argmax(self.scores))

    def top(self, m: int) -> np.ndarray:
        """Indices of the ``m`` best observations, best first (stable on ties)."""
        return np.argsort(-self.scores, kind="stable")[:m]


class Optimizer(ABC):
    """Base class of every optimizer.

    Subclasses take ``space`` and ``seed`` first and their own hyperparameters as keyword
    arguments (these are what presets set). They must draw all randomness from ``self.rng``
    (or generators seeded from ``self.seed``), never from a global RNG.
    """

    def __init__(self, space: CodeGrid, seed: int) -> None:
        self.space = space
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.last_info: list[dict[str, Any]] = []

    @abstractmethod
    def propose(self, n: int, data: Observations) -> np.ndarray:
        """Return ``n`` latents to evaluate next, an int array of shape (n, height, width).

        ``data.space`` is authoritative (its mask may change after retraining). The proposals
        should be distinct from each other and from ``data.latents``; the harness flags, but
        still evaluates, duplicates. Diagnostics for the proposals (solver status, gap, ...)
        go in ``self.last_info``, one dict per proposal or per solve.
        """

    def state_dict(self) -> dict[str, Any]:
        """A picklable snapshot from which :meth:`load_state_dict` restores the exact state.

        The default deep-copies the instance attributes, which is right for optimizers whose
        state is plain Python/numpy objects; override when that is not picklable or too big.
        """
        return copy.deepcopy(vars(self))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a snapshot made by :meth:`state_dict` (on an instance built the same way)."""
        vars(self).update(copy.deepcopy(state))
