"""Nevergrad's discrete optimizers: ``ng-discrete-1p1``, ``ng-lengler-1p1``, ``ng-portfolio`` and ``ng-ngopt``.

Parametrization: one ``ng.p.Choice(m, repetitions=P)`` over the P free positions, i.e. P unordered
categorical variables held in one parameter (a (P, m) array of softmax weights). ``Choice``, not
``TransitionChoice``: codebook indices have no order (code 17 is not "between" 16 and 18), and
``TransitionChoice`` would let mutations move to neighbouring indices as if they were similar.
One repeated ``Choice`` rather than a tuple of P ``Choice`` objects because nevergrad's
per-parameter bookkeeping dominates otherwise: measured at 64 positions x 256 codes on this
2-core machine (under load), spawning a told point cost 0.5-0.8 s with a tuple and 0.02-0.03 s
with ``repetitions``. A position's choice index i means its i-th category (allowed codes plus
codes the data use there, :class:`~bench.optimizers._common.PositionCategories`), taken modulo
the position's count where a mask leaves it fewer than m categories.

Each ``propose`` rebuilds the optimizer (``budget`` as a hint NGOpt uses to pick its algorithm,
``num_workers`` = batch size), seeded through ``parametrization.random_state``, tells it every
observation in evaluation order (initial design included; losses are negated scores) and asks
``n`` points after setting its ask count to the number of observations (a fresh optimizer would
otherwise restart its ask-count schedules; see the comment in ``ask_free``) (see :class:`~bench.optimizers._common.ReplayedLibraryOptimizer`).

``ng-portfolio`` is nevergrad's ``PortfolioDiscreteOnePlusOne`` (1+1 with a portfolio of
mutation rates). Nevergrad's general ``Portfolio`` (CMA, DE, PSO, ... over the 16,384 softmax
weights) was measured at 2.3 s per told point at 64 x 256, hours per call once replayed; it is
available as ``algorithm="Portfolio"``. ``ng-ngopt`` lets NGOpt choose (on 64 x 256 Choice at
budget 1,000 it picks a chain of a DiagonalCMA/PSO/DE portfolio and a noisy 1+1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.core.optimizer import Observations
from bench.core.registry import register_optimizer
from bench.core.space import CodeGrid
from bench.optimizers._common import PositionCategories, ReplayedLibraryOptimizer


def _nevergrad() -> Any:
    """The nevergrad module; its first import draws from numpy's global RNG, which is restored."""
    state = np.random.get_state()
    try:
        import nevergrad
    finally:
        np.random.set_state(state)
    return nevergrad


# one class, four registrations: the nevergrad algorithm is the only difference
@register_optimizer("ng-discrete-1p1", package="nevergrad", algorithm="DiscreteOnePlusOne")
@register_optimizer("ng-lengler-1p1", package="nevergrad", algorithm="DiscreteLenglerOnePlusOne")
@register_optimizer("ng-portfolio", package="nevergrad", algorithm="PortfolioDiscreteOnePlusOne")
@register_optimizer("ng-ngopt", package="nevergrad", algorithm="NGOpt")
class NevergradOptimizer(ReplayedLibraryOptimizer):
    """A nevergrad optimizer (parameter ``algorithm``) over one unordered Choice per grid position."""

    solver = "nevergrad"

    def __init__(self, space: CodeGrid, seed: int, algorithm: str = "NGOpt", budget: int = 1000) -> None:
        super().__init__(space, seed)
        self.algorithm = algorithm
        self.budget = int(budget)

    def ask_free(self, n: int, data: Observations, positions: PositionCategories, seed: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        """Tell every observation to a fresh, seeded nevergrad optimizer, then ask ``n`` points."""
        ng = _nevergrad()
        if self.algorithm not in ng.optimizers.registry:
            raise ValueError(f"nevergrad has no optimizer {self.algorithm!r}; see nevergrad.optimizers.registry")
        sizes = np.array([len(c) for c in positions.categories])
        param = ng.p.Choice(int(sizes.max()), repetitions=len(sizes), deterministic=True)
        param.random_state = np.random.RandomState(seed)
        optimizer = ng.optimizers.registry[self.algorithm](parametrization=param, budget=max(self.budget, len(data) + n),
                                                           num_workers=n)
        told = data.flat[:, positions.free]
        for z, score in zip(told, data.scores.tolist()):
            index = [int(np.searchsorted(codes, code)) for codes, code in zip(positions.categories, z)]
            optimizer.tell(optimizer.parametrization.spawn_child(new_value=tuple(index)), -float(score))
        # A fresh optimizer believes it was never asked: its first ask would be the centre again and
        # schedules driven by the ask count (Lengler's mutation intensity ~ log(t)/t) would restart
        # at every call. An uninterrupted run would have been asked about once per observation.
        # NGOpt delegates to the optimizer it picked (``optim``), which keeps its own count.
        delegate = optimizer
        while delegate is not None:
            delegate._num_ask = len(data)
            delegate = getattr(delegate, "optim", None)
        asked = np.empty((n, len(sizes)), dtype=np.int64)
        for row in range(n):
            index = np.asarray(optimizer.ask().value, dtype=np.int64) % sizes
            asked[row] = [codes[i] for codes, i in zip(positions.categories, index)]
        return asked, {"algorithm": self.algorithm, "n_told": len(data)}
