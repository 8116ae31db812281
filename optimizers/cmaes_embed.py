"""``cmaes-embed``: CMA-ES (the ``cma`` package) in the VQ-VAE's code-vector space, snapped to the nearest codes.

A latent of P positions is represented by its P code vectors (the task's codebook,
:attr:`~bench.core.optimizer.Observations.codebook`, shape (codebook_size, D)), a point of
R^(P*D); every CMA-ES sample is snapped position by position to the nearest allowed code
(Euclidean), which is the continuous latent-space search of latent-space BO papers. Tasks whose
:meth:`~bench.core.task.Task.codebook` is None make :meth:`CmaesEmbed.propose` raise
:class:`NoCodebook`.

The evolution strategy is rebuilt at every call from the data *in the current codebook*:
after weighted retraining changes the code vectors, every observation is re-embedded with the
new ones, so the search follows the codebook. Rebuilding replays the run: the strategy starts at
the codebook's centre (every position at the mean code vector) with step size ``sigma`` times the
codebook's mean per-dimension standard deviation, and is told the observations in evaluation order in
generations of ``popsize`` (the embeddings of the evaluated, i.e. snapped, latents: a Lamarckian
update); a last incomplete generation is not told. It then samples ``n`` points. The state is the
seed and the call count (:class:`~bench.optimizers._common.ReplayedLibraryOptimizer`).

Above ``full_covariance_limit`` dimensions (64 positions x 64 dimensions = 4,096 on the VQ tasks)
the strategy is separable (``CMA_diagonal``): a full covariance would cost an O(d^3)
eigendecomposition per generation. cma draws its normal samples from a generator owned here
(option ``randn``), never from numpy's global RNG.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.core.errors import UserError
from bench.core.optimizer import Observations
from bench.core.registry import register_optimizer
from bench.core.space import CodeGrid
from bench.optimizers._common import PositionCategories, ReplayedLibraryOptimizer


class NoCodebook(UserError, ValueError):
    """An embedding-space optimizer ran on a task that exposes no codebook."""


def snap_to_codes(points: np.ndarray, codebook: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Nearest allowed code of every position: points (n, P, D), codebook (K, D), allowed (P, K) -> (n, P)."""
    distances = ((points[:, :, None, :] - codebook[None, None, :, :]) ** 2).sum(axis=3)
    distances[:, ~allowed] = np.inf
    return distances.argmin(axis=2).astype(np.int64)


@register_optimizer("cmaes-embed", package="cma")
class CmaesEmbed(ReplayedLibraryOptimizer):
    """CMA-ES over the positions' code vectors, each sample snapped to the nearest allowed code."""

    solver = "cmaes-embed"

    def __init__(self, space: CodeGrid, seed: int, popsize: int = 0, sigma: float = 0.5,
                 full_covariance_limit: int = 200) -> None:
        super().__init__(space, seed)
        self.popsize = int(popsize)
        self.sigma = float(sigma)
        self.full_covariance_limit = int(full_covariance_limit)

    def ask_free(self, n: int, data: Observations, positions: PositionCategories, seed: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        """Replay the data through a fresh strategy in the current codebook, sample ``n``, snap."""
        import cma

        if data.codebook is None:
            raise NoCodebook("cmaes-embed searches the space of the VQ-VAE's code vectors, but this task exposes "
                             "no codebook (Task.codebook() returns None); run it on a VQ-VAE image task or use a "
                             "categorical optimizer (e.g. optuna-tpe, evolution)")
        codebook = np.asarray(data.codebook, dtype=np.float64)
        if codebook.ndim != 2 or len(codebook) != data.space.codebook_size:
            raise ValueError(f"codebook of shape {codebook.shape} for a space of {data.space.codebook_size} codes")
        free = positions.free
        dim = len(free) * codebook.shape[1]
        scale = codebook.std(axis=0).mean() or 1.0  # an all-equal codebook still gets a unit step
        centre = np.tile(codebook.mean(axis=0), len(free))
        normal = np.random.default_rng(seed)  # cma's own stream; ``rng`` is left for the repairs
        options = {"seed": np.nan, "randn": lambda lam, d: normal.standard_normal((lam, d)), "verbose": -9,
                   "CMA_diagonal": dim > self.full_covariance_limit, "maxiter": np.inf}
        if self.popsize:
            options["popsize"] = self.popsize
        es = cma.CMAEvolutionStrategy(centre, self.sigma * scale, options)
        embedded = codebook[data.flat[:, free]].reshape(len(data), dim)
        losses = -np.asarray(data.scores, dtype=np.float64)
        generations = len(data) // es.popsize
        for g in range(generations):
            block = slice(g * es.popsize, (g + 1) * es.popsize)
            es.ask()  # keeps the strategy's own counters as in a live run
            es.tell(list(embedded[block]), losses[block].tolist())
        points = np.asarray(es.ask(number=n)).reshape(n, len(free), codebook.shape[1])
        codes = snap_to_codes(points, codebook, positions.allowed[free])
        return codes, {"generations_told": generations, "popsize": int(es.popsize), "sigma": float(es.sigma),
                       "diagonal": bool(options["CMA_diagonal"])}
