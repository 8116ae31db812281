"""Helpers shared by several optimizers."""

from __future__ import annotations

import warnings
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

from bench.core.optimizer import Observations, Optimizer, Proposal
from bench.core.space import CodeGrid


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


def repair_and_dedupe(asked: np.ndarray, allowed: np.ndarray, data: Observations,
                      rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Make a library's (n, P) flat proposals valid, new and distinct.

    Codes the mask forbids (a library may propose a code it was only told through the data) are
    replaced by a uniform allowed code; latents already in ``data`` or repeated in the batch are
    replaced by fresh uniform draws. Returns the flat latents and the counts of both repairs.
    """
    space = data.space
    bad = ~allowed[np.arange(allowed.shape[0])[None, :], asked]
    n_repaired = int(bad.any(axis=1).sum())
    if bad.any():
        fresh = space.sample(len(asked), rng).reshape(len(asked), -1)
        asked = np.where(bad, fresh, asked)
    seen = {latent_key(z) for z in data.flat}
    kept: list[np.ndarray] = []
    for z in asked:
        if latent_key(z) not in seen:
            seen.add(latent_key(z))
            kept.append(z)
    n_replaced = len(asked) - len(kept)
    if n_replaced:
        known = np.concatenate([data.flat, np.stack(kept)]) if kept else data.flat
        shape = space.shape
        fill = distinct_batch(n_replaced, Observations(space, known.reshape(-1, *shape), np.zeros(len(known))),
                              lambda m: space.sample(m, rng)).reshape(n_replaced, -1)
        kept.extend(fill)
    return np.stack(kept).astype(np.int64), {"n_repaired": n_repaired, "n_duplicates_replaced": n_replaced}


def call_seed(seed: int, call: int) -> int:
    """A 31-bit seed for a library's RNG at the ``call``-th proposal of a run seeded ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(call)]).generate_state(1)[0] >> 1)


class ReplayedLibraryOptimizer(Optimizer):
    """An optimizer library rebuilt from the current data at every :meth:`propose`.

    The library object (study, optimizer, evolution strategy) is never kept: each call builds it
    afresh, seeded with :func:`call_seed` of (seed, number of calls so far), tells it every
    observation in order (the initial design included) and asks it for ``n`` points. The state
    is therefore plain data (the seed and the call count), a resumed run proposes exactly what an
    uninterrupted one does, and data the harness re-encoded after retraining are simply the data
    of the next call. Library warnings are recorded (count and first message in the proposal's
    info) instead of being printed at every call.

    Subclasses set :attr:`solver` and implement :meth:`ask_free`, which sees only the positions
    with more than one category (:class:`PositionCategories`); fixed positions keep their code.
    """

    #: name written to the proposal info
    solver: ClassVar[str] = ""

    def __init__(self, space: CodeGrid, seed: int) -> None:
        super().__init__(space, seed)
        self.calls = 0

    @abstractmethod
    def ask_free(self, n: int, data: Observations, positions: PositionCategories, seed: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        """(n, number of free positions) codes from the library seeded ``seed``, and diagnostics.

        ``rng`` is a generator from the same seed for the optimizer's own draws; the batch is
        repaired with it afterwards (see :func:`repair_and_dedupe`).
        """

    def propose(self, n: int, data: Observations) -> Proposal:
        """Rebuild the library from ``data``, ask it for ``n`` points, repair and dedupe them."""
        seed = call_seed(self.seed, self.calls)
        self.calls += 1
        rng = np.random.default_rng(seed)
        positions = PositionCategories.of(data)
        asked = np.tile(positions.fixed, (n, 1))
        details: dict[str, Any] = {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if len(positions.free):
                asked[:, positions.free], details = self.ask_free(n, data, positions, seed, rng)
        out, repairs = repair_and_dedupe(asked, positions.allowed, data, rng)
        info = {"solver": self.solver, "library_seed": seed, **details, **repairs, "n_warnings": len(caught),
                "first_warning": str(caught[0].message)[:200] if caught else ""}
        return Proposal(out.reshape(n, *data.space.shape), (info,))
