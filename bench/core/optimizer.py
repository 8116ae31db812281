"""The optimizer interface: batched ask with the full current data set.

An optimizer sees the whole data set at every call rather than a stream of ``tell``\\ s, because
weighted retraining re-encodes every point into a new latent space: the data do not only grow.
``propose`` returns a :class:`Proposal` (the latents and the diagnostics of how they were
found); nothing travels through attributes set on the optimizer.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from bench.core.prior import CodePrior
from bench.core.space import CodeGrid


@dataclass(frozen=True)
class Observations:
    """Everything evaluated so far, in the *current* latent space.

    ``latents`` has shape (N, height, width), ``scores`` shape (N,) (higher is better) and
    ``weights`` is None or shape (N,) (the rank weights of weighted retraining, when enabled).
    ``version`` is the latent-space version: it changes whenever the task re-encodes the data.
    ``codebook`` is the task's current code vectors, (codebook_size, dim), when the task exposes
    them (:meth:`bench.core.task.Task.codebook`), else None; it changes with ``version``.
    ``prior`` is the task's learned distribution over codes (:meth:`bench.core.task.Task.code_prior`)
    when the task has one for the current latent space, else None.
    """

    space: CodeGrid
    latents: np.ndarray
    scores: np.ndarray
    weights: np.ndarray | None = None
    version: int = 0
    codebook: np.ndarray | None = None
    prior: CodePrior | None = None

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

    def subset(self, index: np.ndarray) -> Observations:
        """The observations at ``index`` (same space, version, codebook and prior)."""
        weights = None if self.weights is None else self.weights[index]
        return Observations(self.space, self.latents[index], self.scores[index], weights, self.version,
                            self.codebook, self.prior)


@dataclass(frozen=True)
class Proposal:
    """What one :meth:`Optimizer.propose` call produced.

    ``latents``: int array (n, height, width), the points to evaluate next.
    ``info``: diagnostics, one mapping per solve or per proposal (solver status, objective,
    bound, gap, seconds, ...); they land in ``proposals.parquet`` with an ``info_`` prefix.
    ``load_dependent``: True when a wall-clock limit decided (part of) this proposal, so the
    same seed may give other proposals on a busier machine; the run is then flagged.
    """

    latents: np.ndarray
    info: tuple[Mapping[str, Any], ...] = field(default=())
    load_dependent: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "info", tuple(dict(item) for item in self.info))


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

    @abstractmethod
    def propose(self, n: int, data: Observations) -> Proposal:
        """Return a :class:`Proposal` of ``n`` latents to evaluate next.

        ``data.space`` is authoritative (its mask may change after retraining). The proposals
        should be distinct from each other and from ``data.latents``; the harness flags, but
        still evaluates, duplicates. An exception raised here is recorded and the harness
        proposes random points instead (a run whose share of such fallbacks is too high fails).
        """

    def state_dict(self) -> dict[str, Any]:
        """A snapshot of plain data from which :meth:`load_state_dict` restores the exact state.

        Checkpoints store it without pickle (see :mod:`bench.store.safe`), so it may hold only
        None, bools, numbers, strings, bytes, lists, tuples, dicts, numpy arrays and numpy
        random generators. The default copies every instance attribute but ``space`` (rebuilt
        by the constructor); override when an attribute is anything else (solver handles,
        library objects): return the data they are rebuilt from.
        """
        return {key: copy.deepcopy(value) for key, value in vars(self).items() if key != "space"}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a snapshot made by :meth:`state_dict` (on an instance built the same way)."""
        vars(self).update(copy.deepcopy(state))
