"""Helpers shared by several optimizers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from bench.core.optimizer import Observations


def latent_key(latent: np.ndarray) -> bytes:
    """Hashable key of one latent grid."""
    return np.ascontiguousarray(latent, dtype=np.int64).tobytes()


def distinct_batch(n: int, data: Observations, draw: Callable[[int], np.ndarray], *,
                   max_rounds: int = 50) -> np.ndarray:
    """Collect ``n`` latents from ``draw(m)`` that are new (not in ``data``, not repeated).

    ``draw(m)`` returns an (m, height, width) batch of candidates. If fresh candidates run out
    after ``max_rounds`` draws, the batch is completed with repeats (the harness flags them).
    """
    seen = {latent_key(z) for z in data.latents}
    out: list[np.ndarray] = []
    last = None
    for _ in range(max_rounds):
        candidates = draw(max(n - len(out), 1) * 2)
        for z in candidates:
            last = z
            key = latent_key(z)
            if key not in seen:
                seen.add(key)
                out.append(z)
                if len(out) == n:
                    return np.stack(out).astype(np.int64)
    while len(out) < n:  # search space (nearly) exhausted around the candidates
        out.append(last)
    return np.stack(out).astype(np.int64)


def empirical_code_probs(data: Observations, smoothing: float = 0.0) -> np.ndarray:
    """Per-position code frequencies of the data, (height, width, K), weighted when weights exist."""
    space = data.space
    weights = data.weights if data.weights is not None else np.ones(len(data))
    probs = np.zeros((space.height, space.width, space.codebook_size))
    ii, jj = np.meshgrid(np.arange(space.height), np.arange(space.width), indexing="ij")
    for z, w in zip(data.latents, weights):
        probs[ii, jj, z] += w
    probs += smoothing * space.allowed_mask()
    return probs


def mutate(parents: np.ndarray, data: Observations, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Resample each position of each parent with probability ``rate`` (at least one per child)."""
    space = data.space
    children = parents.copy()
    m = len(parents)
    flips = rng.random(children.shape) < rate
    forced = rng.integers(0, space.n_positions, size=m)
    flips.reshape(m, -1)[np.arange(m), forced] = True
    fresh = space.sample(m, rng)
    children[flips] = fresh[flips]
    return children


@dataclass(frozen=True)
class PositionCategories:
    """Per-position categories for surrogate models whose features are one categorical per position.

    A position's categories are its allowed codes plus any code seen there in the data (after
    retraining the data may use codes the mask no longer allows; the surrogate must still read
    them). Positions with a single category are fixed and need no feature.
    """

    allowed: np.ndarray  # (P, K) bool
    categories: list[np.ndarray]  # codes of each free position
    free: np.ndarray  # indices of positions with more than one category
    fixed: np.ndarray  # (P,) the code of every position with a single allowed code (argmax elsewhere)

    @classmethod
    def of(cls, data: Observations) -> PositionCategories:
        space = data.space
        allowed = space.allowed_mask().reshape(space.n_positions, -1)
        seen = np.zeros_like(allowed)
        seen[np.arange(space.n_positions)[None, :], data.flat] = True
        candidates = allowed | seen
        free = np.flatnonzero(candidates.sum(axis=1) > 1)
        return cls(allowed, [np.flatnonzero(candidates[p]) for p in free], free, allowed.argmax(axis=1))
