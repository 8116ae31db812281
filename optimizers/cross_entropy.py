"""Cross-entropy method (UMDA): sample each position from the code frequencies of the elite points.

Also the README's worked example of adding an optimizer: one class in one module, registered
with a decorator, built only from the core's helpers.
"""

from __future__ import annotations

import numpy as np

from bench.core.optimizer import Observations, Optimizer, Proposal
from bench.core.registry import register_optimizer
from bench.core.space import CodeGrid
from bench.optimizers._common import distinct_batch, empirical_code_probs


@register_optimizer("cross-entropy", presets={"greedy": {"elite_fraction": 0.05, "smoothing": 0.01}})
class CrossEntropy(Optimizer):
    """Cross-entropy method: independent per-position code distributions fitted to the top data points.

    Each call fits, at every position, the code frequencies of the best ``elite_fraction`` of the
    data (at least ``min_elite`` points), spreads the fraction ``smoothing`` of the probability
    uniformly over the allowed codes so that unseen codes stay reachable, and samples new,
    distinct latents from it.
    """

    def __init__(self, space: CodeGrid, seed: int, elite_fraction: float = 0.1, min_elite: int = 5,
                 smoothing: float = 0.05) -> None:
        super().__init__(space, seed)
        if not 0 < elite_fraction <= 1:
            raise ValueError(f"elite_fraction must be in (0, 1], got {elite_fraction!r}")
        if not 0 < smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], got {smoothing!r}")
        self.elite_fraction = float(elite_fraction)
        self.min_elite = int(min_elite)
        self.smoothing = float(smoothing)

    def propose(self, n: int, data: Observations) -> Proposal:
        m = max(self.min_elite, int(np.ceil(self.elite_fraction * len(data))))
        elite = data.top(m)
        elite_data = Observations(data.space, data.latents[elite], data.scores[elite])
        frequencies = empirical_code_probs(elite_data) / len(elite)
        allowed = data.space.allowed_mask().astype(np.float64)
        uniform = allowed / allowed.sum(axis=2, keepdims=True)
        probs = (1.0 - self.smoothing) * frequencies + self.smoothing * uniform
        return Proposal(distinct_batch(n, data, lambda k: data.space.sample(k, self.rng, probs)))
