"""``botorch-cat``: a categorical-kernel GP with a Hamming trust region (the CASMOPOLITAN recipe) in BoTorch.

Model: BoTorch's ``MixedSingleTaskGP`` with every free position categorical, i.e. a scaled
``CategoricalKernel`` (exp of minus the length-scaled Hamming distance, one length scale per
position), Gaussian noise and standardised scores, fitted by exact marginal likelihood with
``fit_gpytorch_mll_scipy`` (L-BFGS-B, at most ``fit_maxiter`` iterations: a deterministic limit,
no wall clock, no random restarts). At most ``max_train`` observations train the GP (default
250): the ones nearest the incumbent in Hamming distance (earliest first on ties), i.e. the GP is
local to the trust region, as CASMOPOLITAN's is. The cap is what keeps a proposal affordable:
each marginal-likelihood evaluation builds N x N x 64 Hamming tensors with autograd, measured
at 0.27 CPU s per evaluation for N = 200 on 64 positions (about 140 evaluations per fit), and
grows as N^2 (N^3 for the Cholesky).

Acquisition: log expected improvement (``acquisition="ei"``) or UCB (``"ucb"``, ``beta``),
maximised by local search inside a Hamming ball of radius ``radius`` around the incumbent
(best observation): ``n_restarts`` starts (the incumbent and random points of the ball), each
step scoring ``n_neighbours`` random one-position changes (allowed codes only) and moving to the
best one while it improves, for at most ``n_steps`` steps. The batch is the ``n`` best distinct
unseen points visited. The trust region follows CASMOPOLITAN: after ``success_tolerance``
consecutive calls that improved the best score its radius doubles (at most the number of
positions); after ``failure_tolerance`` calls without improvement it halves, and below 1 it
restarts at ``radius_init``. The radius and counters are plain numbers in the state.

Runs on CUDA when available (``device="auto"``), else CPU. Cost per proposal: ``bench perf
propose`` (figures in docs/optimizers.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.core.devices import resolve_device
from bench.core.optimizer import Observations, Proposal
from bench.core.registry import register_optimizer
from bench.core.space import CodeGrid
from bench.optimizers._common import PositionCategories, ReplayedLibraryOptimizer, latent_key


def fit_categorical_gp(x: np.ndarray, y: np.ndarray, device: Any, maxiter: int) -> Any:
    """A MixedSingleTaskGP with all columns categorical, fitted by deterministic L-BFGS-B."""
    import torch
    from botorch.models import MixedSingleTaskGP
    from botorch.optim.fit import fit_gpytorch_mll_scipy
    from gpytorch.mlls import ExactMarginalLogLikelihood

    train_x = torch.as_tensor(x, dtype=torch.float64, device=device)
    train_y = torch.as_tensor(y, dtype=torch.float64, device=device).reshape(-1, 1)
    model = MixedSingleTaskGP(train_x, train_y, cat_dims=list(range(x.shape[1])))
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    mll.train()
    fit_gpytorch_mll_scipy(mll, options={"maxiter": int(maxiter)})
    mll.eval()
    return model


@register_optimizer("botorch-cat", package="botorch")
class BotorchCategorical(ReplayedLibraryOptimizer):
    """BoTorch GP with a categorical (Hamming) kernel; EI or UCB by local search in a Hamming trust region.

    The GP is refitted from the data at every call (:class:`ReplayedLibraryOptimizer`); only the
    trust region's radius and counters carry over between calls.
    """

    solver = "botorch-cat"

    def __init__(self, space: CodeGrid, seed: int, acquisition: str = "ei", beta: float = 2.0, max_train: int = 250,
                 radius_init: int = 20, success_tolerance: int = 3, failure_tolerance: int = 10,
                 n_restarts: int = 5, n_neighbours: int = 256, n_steps: int = 30, fit_maxiter: int = 50,
                 device: str = "auto") -> None:
        super().__init__(space, seed)
        if acquisition not in ("ei", "ucb"):
            raise ValueError(f"acquisition must be 'ei' or 'ucb', got {acquisition!r}")
        self.acquisition, self.beta, self.max_train = acquisition, float(beta), int(max_train)
        self.radius_init = min(int(radius_init), space.n_positions)
        self.success_tolerance, self.failure_tolerance = int(success_tolerance), int(failure_tolerance)
        self.n_restarts, self.n_neighbours, self.n_steps = int(n_restarts), int(n_neighbours), int(n_steps)
        self.fit_maxiter, self.device = int(fit_maxiter), device
        self.radius, self.successes, self.failures = self.radius_init, 0, 0
        self.last_best: float | None = None

    def update_trust_region(self, best: float) -> None:
        """CASMOPOLITAN's radius rule, from whether the best score improved since the last call."""
        if self.last_best is not None:
            improved = best > self.last_best + 1e-3 * abs(self.last_best)
            self.successes, self.failures = (self.successes + 1, 0) if improved else (0, self.failures + 1)
            if self.successes >= self.success_tolerance:
                self.radius, self.successes = min(2 * self.radius, self.space.n_positions), 0
            elif self.failures >= self.failure_tolerance:
                self.radius, self.failures = self.radius // 2, 0
                if self.radius < 1:
                    self.radius = self.radius_init
        self.last_best = best

    def propose(self, n: int, data: Observations) -> Proposal:
        """Update the trust region, then fit the GP near the incumbent and local-search the acquisition."""
        self.update_trust_region(float(data.scores.max()))
        return super().propose(n, data)

    def ask_free(self, n: int, data: Observations, positions: PositionCategories, seed: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        """The ``n`` best distinct unseen points of a trust-region local search of the acquisition."""
        free = positions.free
        x = data.flat[:, free]
        centre = x[data.best_index()]
        train = np.argsort((x != centre).sum(axis=1), kind="stable")[:self.max_train]
        model = fit_categorical_gp(x[train], data.scores[train], resolve_device(self.device), self.fit_maxiter)
        acquisition = self.acquisition_function(model, float(data.scores[train].max()))
        visited = local_search(acquisition, centre, list(positions.allowed[free]), self.radius, rng,
                               n_starts=max(self.n_restarts, n), n_neighbours=self.n_neighbours, n_steps=self.n_steps)
        seen = {latent_key(z) for z in x}
        ranked = [z for z, _ in sorted(visited.values(), key=lambda item: -item[1]) if latent_key(z) not in seen]
        ranked += [centre] * max(0, n - len(ranked))  # repaired into fresh points by the caller
        return np.stack(ranked[:n]), {"radius": int(self.radius), "n_train": int(len(train)),
                                      "n_scored": int(len(visited))}

    def acquisition_function(self, model: Any, best_f: float) -> Any:
        """A callable: (m, P_free) codes -> (m,) acquisition values (log EI or UCB)."""
        import torch
        from botorch.acquisition import LogExpectedImprovement, UpperConfidenceBound

        acq = (LogExpectedImprovement(model, best_f=best_f) if self.acquisition == "ei"
               else UpperConfidenceBound(model, beta=self.beta))
        device = next(model.parameters()).device

        def score(z: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                values = [acq(torch.as_tensor(chunk, dtype=torch.float64, device=device).unsqueeze(1))
                          for chunk in np.array_split(z, max(1, len(z) // 2048))]
            return torch.cat(values).cpu().numpy()

        return score


def local_search(score: Any, centre: np.ndarray, allowed: list[np.ndarray], radius: int, rng: np.random.Generator, *,
                 n_starts: int, n_neighbours: int, n_steps: int) -> dict[bytes, tuple[np.ndarray, float]]:
    """Hill-climb ``score`` from ``n_starts`` points of the Hamming ball around ``centre``.

    Returns every point scored, by key, with its value. ``allowed[p]`` is the boolean mask of the
    codes position p may take.
    """
    n_pos = len(centre)
    counts = np.array([mask.sum() for mask in allowed])
    choices = np.zeros((n_pos, counts.max()), dtype=np.int64)  # allowed codes of each position, padded
    for p, mask in enumerate(allowed):
        choices[p, :counts[p]] = np.flatnonzero(mask)

    def random_codes(where: np.ndarray) -> np.ndarray:
        return choices[where, (rng.random(len(where)) * counts[where]).astype(np.int64)]

    starts = np.tile(centre, (n_starts, 1))
    for s in range(1, n_starts):  # random points of the ball
        moved = rng.choice(n_pos, size=int(rng.integers(1, max(radius, 1) + 1)), replace=False)
        starts[s, moved] = random_codes(moved)
    visited: dict[bytes, tuple[np.ndarray, float]] = {}
    current, values = starts, score(starts)
    for z, v in zip(current, values):
        visited[latent_key(z)] = (z, float(v))
    for _ in range(n_steps):
        neighbours = np.repeat(current, n_neighbours, axis=0)
        where = rng.integers(0, n_pos, size=len(neighbours))
        neighbours[np.arange(len(neighbours)), where] = random_codes(where)
        inside = (neighbours != centre).sum(axis=1) <= radius
        candidate_values = np.full(len(neighbours), -np.inf)
        candidate_values[inside] = score(neighbours[inside]) if inside.any() else []
        for z, v in zip(neighbours[inside], candidate_values[inside]):
            visited[latent_key(z)] = (z, float(v))
        best = candidate_values.reshape(len(current), n_neighbours).argmax(axis=1)
        best_values = candidate_values.reshape(len(current), n_neighbours)[np.arange(len(current)), best]
        improved = best_values > values
        if not improved.any():
            break
        moves = neighbours.reshape(len(current), n_neighbours, -1)[np.arange(len(current)), best]
        current = np.where(improved[:, None], moves, current)
        values = np.where(improved, best_values, values)
    return visited
