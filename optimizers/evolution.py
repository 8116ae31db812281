"""A genetic algorithm: tournament selection from the best data, uniform crossover, point mutation."""

from __future__ import annotations

import numpy as np

from bench.core.optimizer import Observations, Optimizer, Proposal
from bench.core.registry import register_optimizer
from bench.core.space import CodeGrid
from bench.optimizers._common import distinct_batch, mutate


@register_optimizer("evolution")
class Evolution(Optimizer):
    """Genetic algorithm over the current data: tournament selection, uniform crossover, point mutation."""

    def __init__(self, space: CodeGrid, seed: int, population: int = 20, tournament: int = 3,
                 crossover_rate: float = 0.5, mutation_rate: float | None = None) -> None:
        super().__init__(space, seed)
        self.population = int(population)
        self.tournament = int(tournament)
        self.crossover_rate = float(crossover_rate)
        self.mutation_rate = mutation_rate

    def propose(self, n: int, data: Observations) -> Proposal:
        space = data.space
        parents = data.latents[data.top(self.population)]
        fitness = np.arange(len(parents))[::-1]  # rank fitness: parents are sorted best first
        rate = self.mutation_rate if self.mutation_rate is not None else 1.0 / space.n_positions

        def select(m: int) -> np.ndarray:
            contenders = self.rng.integers(0, len(parents), size=(m, self.tournament))
            return parents[contenders[np.arange(m), np.argmax(fitness[contenders], axis=1)]]

        def draw(m: int) -> np.ndarray:
            a, b = select(m), select(m)
            cross = (self.rng.random(m) < self.crossover_rate)[:, None, None] & (self.rng.random(a.shape) < 0.5)
            return mutate(np.where(cross, b, a), data, rate, self.rng)

        return Proposal(distinct_batch(n, data, draw))
