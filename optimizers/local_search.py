"""Local search: unseen Hamming-distance-1 neighbours of the incumbent, with perturbation restarts."""

from __future__ import annotations

import numpy as np

from bench.core.optimizer import Observations, Optimizer, Proposal
from bench.core.registry import register_optimizer
from bench.core.space import CodeGrid
from bench.optimizers._common import distinct_batch, latent_key, mutate


@register_optimizer("local-search")
class LocalSearch(Optimizer):
    """Steepest-ascent style local search: evaluate unseen one-code changes of the best point.

    When every neighbour of the best point has been seen (a local optimum), it perturbs the
    best point at ``restart_radius`` random positions (iterated local search).
    """

    def __init__(self, space: CodeGrid, seed: int, restart_radius: int = 3) -> None:
        super().__init__(space, seed)
        self.restart_radius = int(restart_radius)

    def propose(self, n: int, data: Observations) -> Proposal:
        space = data.space
        best = data.latents[data.best_index()]
        seen = {latent_key(z) for z in data.latents}
        allowed = space.allowed_codes_flat()
        moves = [(p, c) for p, codes in enumerate(allowed) for c in codes if c != best.reshape(-1)[p]]
        out: list[np.ndarray] = []
        for index in self.rng.permutation(len(moves)):
            p, c = moves[index]
            z = best.copy().reshape(-1)
            z[p] = c
            z = z.reshape(space.shape)
            if latent_key(z) not in seen:
                out.append(z)
                seen.add(latent_key(z))
                if len(out) == n:
                    return Proposal(np.stack(out))
        # local optimum: every neighbour is known; restart from perturbations of the best point
        rate = min(1.0, self.restart_radius / space.n_positions)
        rest = distinct_batch(n - len(out), _with(data, out),
                              lambda m: mutate(np.repeat(best[None], m, axis=0), data, rate, self.rng))
        return Proposal(np.concatenate([np.stack(out), rest]) if out else rest)


def _with(data: Observations, extra: list[np.ndarray]) -> Observations:
    if not extra:
        return data
    latents = np.concatenate([data.latents, np.stack(extra)])
    return Observations(data.space, latents, np.zeros(len(latents)))
