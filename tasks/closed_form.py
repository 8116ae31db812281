"""A closed-form task over the code grid with a known, hidden optimum (for tests and sanity checks)."""

from __future__ import annotations

import functools

import numpy as np

from bench.core import constants as C
from bench.core.prior import CodePrior
from bench.core.registry import register_task
from bench.core.space import CodeGrid
from bench.core.task import Evaluation, InitialData, Task


@register_task(
    "closed-form",
    presets={
        "small": {"height": 2, "width": 2, "codebook_size": 5},
        "wide": {"height": 8, "width": 8, "codebook_size": 256},
        "prior": {"prior_samples": 2000},
    },
)
class ClosedFormTask(Task):
    """Additive position-code table plus interactions of grid neighbours, with a hidden optimum.

    f(z) = sum_p A[p, z_p] + sum_{(p, q) neighbours} B_pq[z_p, z_q]. Position p matters with
    weight w_p (decaying, shuffled); every table entry is drawn below its maximum except at the
    hidden optimum z*, where every term is maximal, so z* is the unique maximiser and
    f* = sum_p w_p + interaction * (number of neighbour pairs) is known exactly.

    :meth:`codebook` exposes ``code_dim``-dimensional code vectors (seeded Gaussian, unrelated to
    f; ``code_dim=0`` exposes none) so that embedding-space optimizers can run here too.
    With ``prior_samples`` > 0, :meth:`code_prior` is the learned prior (tasks.code_prior) fitted
    to that many latents of a seeded Markov chain over raster positions (a stand-in "data
    distribution", unrelated to f), so that prior-based optimizers run here too.
    """

    default_n_initial = 20

    def __init__(self, height: int = 4, width: int = 4, codebook_size: int = 16, interaction: float = 0.5,
                 instance_seed: int = 0, n_initial: int = 20, code_dim: int = 8, prior_samples: int = 0) -> None:
        self._space = CodeGrid(height, width, codebook_size)
        self.interaction = float(interaction)
        self.instance_seed = int(instance_seed)
        self.default_n_initial = int(n_initial)
        rng = np.random.default_rng(np.random.SeedSequence([self.instance_seed, 7]))
        n_pos = height * width
        self.weights = rng.permutation(np.linspace(1.0, 0.2, n_pos))
        self.optimum = rng.integers(0, codebook_size, size=n_pos)
        self.unary = rng.uniform(0.0, 0.8, size=(n_pos, codebook_size)) * self.weights[:, None]
        self.unary[np.arange(n_pos), self.optimum] = self.weights
        idx = np.arange(n_pos).reshape(height, width)
        pairs = [(idx[i, j], idx[i, j + 1]) for i in range(height) for j in range(width - 1)]
        pairs += [(idx[i, j], idx[i + 1, j]) for i in range(height - 1) for j in range(width)]
        self.pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2)
        self.pairwise = rng.uniform(0.0, 0.8, size=(len(self.pairs), codebook_size, codebook_size)) * self.interaction
        self.pairwise[np.arange(len(self.pairs)), self.optimum[self.pairs[:, 0]], self.optimum[self.pairs[:, 1]]] = (
            self.interaction
        )
        self.optimum_value = float(self.weights.sum() + self.interaction * len(self.pairs))
        self.code_dim = int(code_dim)
        vectors = np.random.default_rng(np.random.SeedSequence([self.instance_seed, 11]))
        self.code_vectors = vectors.standard_normal((codebook_size, self.code_dim)) if self.code_dim else None
        self.prior_samples = int(prior_samples)

    def codebook(self) -> np.ndarray | None:
        """The synthetic code vectors, (codebook_size, code_dim), or None when ``code_dim`` is 0."""
        return None if self.code_vectors is None else self.code_vectors.copy()

    def code_prior(self) -> CodePrior | None:
        """The prior learned on ``prior_samples`` Markov-chain latents (None when ``prior_samples`` is 0)."""
        if self.prior_samples <= 0:
            return None
        s = self._space
        return _markov_prior(s.height, s.width, s.codebook_size, self.instance_seed, self.prior_samples)

    @property
    def space(self) -> CodeGrid:
        return self._space

    @property
    def optimum_latent(self) -> np.ndarray:
        """The hidden maximiser, shape (height, width)."""
        return self.optimum.reshape(self._space.shape).copy()

    def initial_data(self, seed: int, n: int) -> InitialData:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1, 0]))
        latents = self._space.sample(n, rng)
        return InitialData(latents, self.values(latents))

    def evaluate(self, latents: np.ndarray) -> Evaluation:
        """Scores and regrets (known optimum minus score)."""
        values = self.values(latents)
        extras = {C.REGRET: self.optimum_value - values}
        prior = self.code_prior()
        if prior is not None:
            extras[C.PRIOR_LOGLIK] = prior.log_likelihood(latents)
        return Evaluation(values, extras=extras)

    def values(self, latents: np.ndarray) -> np.ndarray:
        """f(z) of a batch of latents."""
        z = self._space.validate(latents).reshape(len(latents), -1)
        value = self.unary[np.arange(z.shape[1])[None, :], z].sum(axis=1)
        if len(self.pairs):
            value += self.pairwise[np.arange(len(self.pairs))[None, :], z[:, self.pairs[:, 0]], z[:, self.pairs[:, 1]]].sum(axis=1)
        return value

    def fingerprint(self) -> bytes:
        s = self._space
        # the code vectors do not change f; a non-default code_dim is named so runs stay apart
        extra = "" if self.code_dim == 8 else f":code_dim={self.code_dim}"
        extra += f":prior_samples={self.prior_samples}" if self.prior_samples else ""
        return f"closed-form:{s.height}x{s.width}x{s.codebook_size}:{self.interaction}:{self.instance_seed}{extra}".encode()


def markov_latents(n: int, height: int, width: int, codebook_size: int, seed: int) -> np.ndarray:
    """``n`` latents of a seeded first-order Markov chain over raster positions (sparse transitions)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 13]))
    start = rng.dirichlet(np.full(codebook_size, 0.3))
    transition = rng.dirichlet(np.full(codebook_size, 0.1), size=codebook_size)
    codes = np.empty((n, height * width), dtype=np.int64)
    codes[:, 0] = rng.choice(codebook_size, size=n, p=start)
    for t in range(1, height * width):
        cumulative = transition[codes[:, t - 1]].cumsum(axis=1)
        codes[:, t] = np.minimum((cumulative < rng.random((n, 1))).sum(axis=1), codebook_size - 1)
    return codes.reshape(n, height, width)


@functools.lru_cache(maxsize=4)
def _markov_prior(height: int, width: int, codebook_size: int, instance_seed: int, n: int) -> CodePrior:
    """Trained once per process and configuration (priors are immutable, so sharing one is safe)."""
    from bench.tasks.code_prior import PriorTraining, train_prior

    latents = markov_latents(n, height, width, codebook_size, instance_seed)
    prior, _ = train_prior(latents, codebook_size, seed=instance_seed, training=PriorTraining(epochs=5.0))
    return prior
