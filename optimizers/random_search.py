"""Random search: uniform over the allowed codes, or from the data's position-wise code frequencies."""

from __future__ import annotations

import numpy as np

from bench.core.optimizer import Observations, Optimizer, Proposal
from bench.core.registry import register_optimizer
from bench.core.space import CodeGrid
from bench.optimizers._common import distinct_batch, empirical_code_probs


@register_optimizer("random", presets={"empirical": {"distribution": "empirical"}})
class RandomSearch(Optimizer):
    """Independent draws per position: uniform over allowed codes, or the data's empirical code distribution."""

    def __init__(self, space: CodeGrid, seed: int, distribution: str = "uniform", smoothing: float = 0.0) -> None:
        super().__init__(space, seed)
        if distribution not in ("uniform", "empirical"):
            raise ValueError(f"distribution must be 'uniform' or 'empirical', got {distribution!r}")
        self.distribution = distribution
        self.smoothing = float(smoothing)

    def propose(self, n: int, data: Observations) -> Proposal:
        probs = empirical_code_probs(data, self.smoothing) if self.distribution == "empirical" else None
        return Proposal(distinct_batch(n, data, lambda m: data.space.sample(m, self.rng, probs)))
