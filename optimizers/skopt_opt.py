"""scikit-optimize's ``Optimizer`` (ask/tell) over one ``Categorical`` dimension per grid position.

Registered as ``skopt-rf``, ``skopt-et``, ``skopt-gbrt`` (skopt's tree surrogates, cooked by
``skopt.utils.cook_estimator``) and ``skopt-gp`` (skopt's GP with its Hamming kernel).

Every ``propose`` rebuilds the skopt ``Optimizer`` from the *current* data (the harness may
re-encode the data after retraining, so there is no stream of ``tell``\\ s to keep): one ``tell``
of every observation (scores negated, skopt minimises), then ``ask(n_points=n)`` with skopt's
constant-liar strategy for batches. skopt draws from a ``RandomState`` seeded from ``self.rng``,
never from the global one. Duplicates of the data or within the batch (skopt falls back to a
random point only against points it was told) are replaced by fresh uniform draws.

Limits and the choices that keep 64 positions x 256 codes tractable:

* Categories are encoded one-hot when the grid has at most ``onehot_limit`` (position, code)
  pairs, else as labels (``transform="auto"``). One-hot at 64x256 would make every acquisition
  step transform ``n_candidates`` x 16,384 floats (1.3 GB at skopt's 10,000 candidates).
* skopt's acquisition is optimised by sampling ``n_candidates`` random latents (skopt's
  ``n_points``) and taking the best; at 256^64 latents this is random search filtered by the
  surrogate, which is what skopt does on large categorical spaces.
* GP: skopt's default for an all-categorical space is ``ConstantKernel * HammingKernel`` over the
  one-hot dimensions, with one length scale per (position, code), i.e. 16,384 hyperparameters
  and an n x m x 16,384 indicator tensor per kernel call. ``skopt-gp`` uses the same skopt
  kernel on label-encoded positions instead (the indicator "codes differ" is the same; one
  length scale per position) and caps candidates at 1,000 by default. Memory of one kernel
  call is about 8 * N * n_candidates * positions bytes (0.26 GB at N=500, 64 positions).
* Cost: a batch of q costs q + 2 surrogate fits (skopt's constant liar refits a copy of the
  optimizer after every lie). Measured at 64x256 with N=500 on this 2-core machine: RF 1.8 s,
  ET 0.8 s, GBRT 1.1 s, GP 18.5 s for q=1 (GP 165 s for q=4: its 64 length scales are refitted
  with 2 restarts each time), so ``skopt-gp`` is for small data sets or q=1.
* Codes a mask forbids but the data use are kept as categories (skopt refuses to be told points
  outside its space); proposals using them are repaired to a random allowed code.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from bench.core.optimizer import Observations, Optimizer, Proposal
from bench.core.registry import register_optimizer
from bench.core.space import CodeGrid
from bench.optimizers._common import PositionCategories, repair_and_dedupe

Transform = Literal["auto", "onehot", "label"]


class LabelHammingGP(RegressorMixin, BaseEstimator):
    """skopt's categorical GP (ConstantKernel * HammingKernel + noise) over label-encoded positions.

    Inputs are one integer label per position; the kernel only asks whether two labels differ,
    so this is skopt's own all-categorical GP with one length scale per position rather than per
    one-hot column. Not a ``skopt`` ``GaussianProcessRegressor`` subclass on purpose: skopt would
    otherwise re-encode every category one-hot.
    """

    def __init__(self, n_dims: int = 1, n_restarts_optimizer: int = 2, random_state: int = 0) -> None:
        self.n_dims = n_dims
        self.n_restarts_optimizer = n_restarts_optimizer
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> LabelHammingGP:
        from skopt.learning import GaussianProcessRegressor
        from skopt.learning.gaussian_process.kernels import ConstantKernel, HammingKernel

        kernel = ConstantKernel(1.0, (0.01, 1000.0)) * HammingKernel(length_scale=np.ones(self.n_dims))
        self.gp_ = GaussianProcessRegressor(kernel=kernel, normalize_y=True, noise="gaussian",
                                            n_restarts_optimizer=self.n_restarts_optimizer,
                                            random_state=self.random_state)
        self.gp_.fit(np.asarray(X, dtype=np.float64), y)
        return self

    def predict(self, X: np.ndarray, return_std: bool = False) -> Any:
        return self.gp_.predict(np.asarray(X, dtype=np.float64), return_std=return_std)


def _gbrt_quantile(random_state: int) -> Any:
    """skopt's GBRT surrogate as ``cook_estimator("GBRT")`` builds it, patched for current libraries.

    skopt 0.10.2 declares ``GradientBoostingQuantileRegressor(BaseEstimator, RegressorMixin)``; with
    scikit-learn >= 1.6 that base order loses the regressor tag, and skopt's own ``is_regressor``
    check then rejects its own GBRT ("has to be a regressor"). Its ``predict(return_std=True)``
    also calls ``np.in1d``, which numpy 2.4 removed. Same model and same mean/std otherwise.
    """
    from sklearn.ensemble import GradientBoostingRegressor
    from skopt.learning import GradientBoostingQuantileRegressor

    class TaggedGBRTQuantile(GradientBoostingQuantileRegressor):
        def __sklearn_tags__(self) -> Any:
            tags = super().__sklearn_tags__()
            tags.estimator_type = "regressor"
            return tags

        def predict(self, X: np.ndarray, return_std: bool = False, return_quantiles: bool = False) -> Any:
            if not return_std or return_quantiles:
                return super().predict(X, return_quantiles=return_quantiles)
            low, mid, high = (self.regressors_[self.quantiles.index(q)].predict(X) for q in (0.16, 0.5, 0.84))
            return mid, (high - low) / 2.0

    TaggedGBRTQuantile.__qualname__ = TaggedGBRTQuantile.__name__ = "GradientBoostingQuantileRegressor"
    gbrt = GradientBoostingRegressor(n_estimators=30, loss="quantile")
    return TaggedGBRTQuantile(base_estimator=gbrt, random_state=random_state, n_jobs=1)


class SkoptOptimizer(Optimizer):
    """scikit-optimize ``Optimizer`` with a RF, ET, GBRT or GP surrogate over per-position categories.

    ``base_estimator``: "RF", "ET", "GBRT" or "GP". ``acq_func``: skopt's ("gp_hedge", "EI",
    "LCB", "PI"); "EI" by default as in ``forest_minimize``/``gbrt_minimize`` ("gp_hedge" scores
    every candidate three times). ``n_initial_points``: skopt proposes random points until it has
    been told that many. ``n_candidates``: latents sampled per acquisition step (skopt's
    ``n_points``; 2,000 rather than skopt's 10,000: every tree of a forest re-validates the whole
    candidate matrix, which dominated the run time).
    ``transform``: category encoding, see the module doc. ``strategy``: skopt's constant-liar
    flavour for batches ("cl_min", "cl_mean", "cl_max").
    """

    def __init__(self, space: CodeGrid, seed: int, base_estimator: str = "RF", acq_func: str = "EI",
                 n_initial_points: int = 10, n_candidates: int = 2000, transform: Transform = "auto",
                 onehot_limit: int = 1024, strategy: str = "cl_min") -> None:
        super().__init__(space, seed)
        if base_estimator.upper() not in ("RF", "ET", "GBRT", "GP"):
            raise ValueError(f"base_estimator must be RF, ET, GBRT or GP, got {base_estimator!r}")
        if transform not in ("auto", "onehot", "label"):
            raise ValueError(f"transform must be 'auto', 'onehot' or 'label', got {transform!r}")
        self.base_estimator = base_estimator.upper()
        self.acq_func = acq_func
        self.n_initial_points = int(n_initial_points)
        self.n_candidates = int(n_candidates)
        self.transform: Transform = transform
        self.onehot_limit = int(onehot_limit)
        self.strategy = strategy

    def _skopt(self, categories: list[np.ndarray], random_state: int) -> Any:
        from skopt import Optimizer as SkOptimizer
        from skopt.space import Categorical

        n_pairs = sum(len(c) for c in categories)
        onehot = self.transform == "onehot" or (self.transform == "auto" and n_pairs <= self.onehot_limit)
        # the GP always gets labels: its Hamming kernel needs one column per position
        encoding = "onehot" if onehot and self.base_estimator != "GP" else "label"
        dimensions = [Categorical([int(c) for c in codes], transform=encoding, name=f"p{p}")
                      for p, codes in enumerate(categories)]
        estimator: Any = self.base_estimator
        if self.base_estimator == "GP":
            estimator = LabelHammingGP(n_dims=len(categories), random_state=random_state)
        elif self.base_estimator == "GBRT":
            estimator = _gbrt_quantile(random_state)
        return SkOptimizer(dimensions, base_estimator=estimator, n_initial_points=self.n_initial_points,
                           acq_func=self.acq_func, acq_optimizer="sampling", random_state=random_state,
                           acq_optimizer_kwargs={"n_points": self.n_candidates})

    def propose(self, n: int, data: Observations) -> Proposal:
        space = data.space
        flat = data.flat
        positions = PositionCategories.of(data)
        allowed, free, categories = positions.allowed, positions.free, positions.categories
        latent = positions.fixed  # fixed positions keep their single code
        asked: list[np.ndarray] = []
        if len(free):
            optimizer = self._skopt(categories, int(self.rng.integers(2**31 - 1)))
            with warnings.catch_warnings():
                # skopt warns when it replaces a repeated point by a random one: expected here
                warnings.simplefilter("ignore")
                if len(data):
                    optimizer.tell(flat[:, free].tolist(), (-np.asarray(data.scores, dtype=np.float64)).tolist())
                points = optimizer.ask(n_points=n, strategy=self.strategy) if n > 1 else [optimizer.ask()]
            for point in points:
                z = latent.copy()
                z[free] = np.asarray(point, dtype=np.int64)
                asked.append(z)
        else:
            asked = [latent.copy() for _ in range(n)]
        out, repairs = repair_and_dedupe(np.stack(asked), allowed, data, self.rng)
        info = {"solver": f"skopt-{self.base_estimator.lower()}", **repairs}
        return Proposal(out.reshape(n, *space.shape), (info,))


@register_optimizer("skopt-rf", package="scikit-optimize", base_estimator="RF")
class SkoptRandomForest(SkoptOptimizer):
    """scikit-optimize with a random-forest surrogate (forest_minimize's), one Categorical per position."""


@register_optimizer("skopt-et", package="scikit-optimize", base_estimator="ET")
class SkoptExtraTrees(SkoptOptimizer):
    """scikit-optimize with an extra-trees surrogate, one Categorical per position."""


@register_optimizer("skopt-gbrt", package="scikit-optimize", base_estimator="GBRT")
class SkoptGBRT(SkoptOptimizer):
    """scikit-optimize with a gradient-boosted quantile surrogate (gbrt_minimize's), one Categorical per position."""


# gp_minimize's default acquisition; the tree ones use forest_minimize/gbrt_minimize's "EI"
@register_optimizer("skopt-gp", package="scikit-optimize", base_estimator="GP", n_candidates=1000, acq_func="gp_hedge")
class SkoptGP(SkoptOptimizer):
    """scikit-optimize's categorical GP (Hamming kernel, one length scale per position)."""
