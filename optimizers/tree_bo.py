"""Tree-ensemble Bayesian optimization: a LightGBM / XGBoost / CatBoost surrogate over the codes,
its acquisition solved exactly as a MILP (:mod:`optimizers.milp`) or by local search
(:mod:`optimizers.local_acquisition`).

Acquisition (maximised): ``mean(z) + kappa * std(y) * d(z) / P`` with ``d`` the Hamming distance
to the nearest observed latent (``exploration="bonus"``, ENTMOOT's "exploration" sense, scaled by
the score spread so that ``kappa`` does not depend on the task's units), its negation as a
``"penalty"``, or the mean alone (``"none"``); optionally inside a trust region, the Hamming ball
of radius ``trust_radius`` (values below 1 are a fraction of P) around at least one of the
``trust_centers`` best points. A batch is solved sequentially: each proposal joins the observed
points of the distance term and every observed point and proposal is excluded by a no-good cut,
so the proposals are new and distinct. Every solve records its status, objective, bound, gap and
times in the proposal's ``info``; when a solve fails, the best local-search point (else a mutation of the
incumbent) is proposed and the failure is recorded.

Surrogate hyperparameters that matter on categorical latents are constructor parameters:
LightGBM's ``min_data_per_group``, ``cat_smooth``, ``cat_l2``, ``max_cat_to_onehot``,
``max_cat_threshold`` (ENTMOOT's defaults learn stumps here); XGBoost uses
``max_cat_to_onehot``/``max_cat_threshold`` and ``min_child_samples`` as ``min_child_weight``;
CatBoost uses one-hot splits for every position with at most 255 distinct observed codes (exactly
representable: "code == c") and float borders on the code index elsewhere (CatBoost's CTR
splits are not a fixed function of one position, so they are never used).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from bench.core.optimizer import Observations, Optimizer, Proposal
from bench.core.registry import register_optimizer
from bench.core.space import CodeGrid
from bench.optimizers._common import distinct_batch, latent_key, mutate
from bench.optimizers.local_acquisition import local_search_acquisition
from bench.optimizers.milp import ACQUISITION_ROUTES, EXPLORATION_MODES, AcquisitionTimeLimit, solve_acquisition
from bench.optimizers.tree_ensemble import TreeEnsemble, from_catboost, from_lightgbm, from_xgboost

LIBRARIES = ("lightgbm", "xgboost", "catboost")
#: learning rate when none is given: CatBoost's one-hot splits isolate one code each, so it
#: needs larger steps to fit as well in as many trees
DEFAULT_LEARNING_RATE = {"lightgbm": 0.1, "xgboost": 0.1, "catboost": 0.3}
#: CatBoost's largest one_hot_max_size
CATBOOST_MAX_ONE_HOT = 255


def fit_surrogate(library: str, X: np.ndarray, y: np.ndarray, seed: int, *, n_trees: int = 100,
                  max_depth: int = 3, learning_rate: float | None = None, min_child_samples: int = 5,
                  subsample: float = 0.8, reg_lambda: float = 1.0, min_data_per_group: int = 2,
                  cat_smooth: float = 1.0, cat_l2: float = 1.0, max_cat_to_onehot: int = 4,
                  max_cat_threshold: int = 64, n_codes: int | None = None) -> tuple[TreeEnsemble, Any]:
    """Fit ``library`` on flat latents ``X`` (n, P) with every position categorical; (ensemble, model).

    Single-threaded and seeded, so the same inputs give the same trees on any machine.
    """
    X = np.asarray(X, dtype=np.int64)
    y = np.asarray(y, dtype=np.float64)
    n_pos = X.shape[1]
    if library not in LIBRARIES:
        raise ValueError(f"library must be one of {LIBRARIES}, got {library!r}")
    learning_rate = DEFAULT_LEARNING_RATE[library] if learning_rate is None else float(learning_rate)
    if library == "lightgbm":
        import lightgbm as lgb

        params = {"objective": "regression", "verbose": -1, "num_threads": 1, "deterministic": True,
                  "force_col_wise": True, "seed": int(seed), "max_depth": int(max_depth),
                  "num_leaves": 2 ** int(max_depth), "learning_rate": float(learning_rate),
                  "min_data_in_leaf": int(min_child_samples), "min_sum_hessian_in_leaf": 0.0,
                  "lambda_l2": float(reg_lambda), "min_data_per_group": int(min_data_per_group),
                  "cat_smooth": float(cat_smooth), "cat_l2": float(cat_l2),
                  "max_cat_to_onehot": int(max_cat_to_onehot), "max_cat_threshold": int(max_cat_threshold),
                  "min_data_in_bin": 1, "bagging_fraction": float(subsample),
                  "bagging_freq": 1 if subsample < 1.0 else 0}
        data = lgb.Dataset(X, y, categorical_feature=list(range(n_pos)), params={"verbose": -1},
                           free_raw_data=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            booster = lgb.train(params, data, num_boost_round=int(n_trees))
        return from_lightgbm(booster), booster
    if library == "xgboost":
        import xgboost as xgb

        dmat = xgb.DMatrix(X.astype(np.float32), label=y, feature_types=["c"] * n_pos, enable_categorical=True,
                           nthread=1)
        params = {"objective": "reg:squarederror", "tree_method": "hist", "max_depth": int(max_depth),
                  "eta": float(learning_rate), "min_child_weight": float(min_child_samples),
                  "subsample": float(subsample), "lambda": float(reg_lambda),
                  "max_cat_to_onehot": int(max_cat_to_onehot), "max_cat_threshold": int(max_cat_threshold),
                  "nthread": 1, "seed": int(seed), "verbosity": 0}
        if n_codes is not None:
            params["max_bin"] = max(256, int(n_codes))
        booster = xgb.train(params, dmat, num_boost_round=int(n_trees))
        return from_xgboost(booster), booster
    if library == "catboost":
        import catboost as cb

        distinct = np.array([len(np.unique(X[:, p])) for p in range(n_pos)])
        cat_features = [int(p) for p in np.flatnonzero(distinct <= CATBOOST_MAX_ONE_HOT)]
        pool = cb.Pool(X, y, cat_features=cat_features)
        model = cb.CatBoostRegressor(
            iterations=int(n_trees), depth=int(max_depth), learning_rate=float(learning_rate),
            l2_leaf_reg=float(reg_lambda), one_hot_max_size=CATBOOST_MAX_ONE_HOT, thread_count=1,
            random_seed=int(seed), verbose=0, allow_writing_files=False,
            bootstrap_type="Bernoulli" if subsample < 1.0 else "No",
            **({"subsample": float(subsample)} if subsample < 1.0 else {}))
        model.fit(pool)
        return from_catboost(model, pool), model
    raise ValueError(f"library must be one of {LIBRARIES}, got {library!r}")


class TreeEnsembleBO(Optimizer):
    """Tree-ensemble surrogate with an exact MILP (or local-search) acquisition; see the module doc.

    Parameters: ``library`` ("lightgbm", "xgboost", "catboost"); ``acquisition`` ("milp" or
    "local"); surrogate ``n_trees``, ``max_depth``, ``learning_rate`` (None: per-library default),
    ``min_child_samples``, ``subsample`` (row subsampling, seeded), ``reg_lambda`` and the
    categorical parameters (see the module doc); ``fit_top``/``fit_random`` fit on the best
    ``fit_top`` points plus ``fit_random`` random others (all points when there are fewer);
    ``exploration``, ``kappa``, ``trust_radius``, ``trust_centers`` shape the acquisition;
    ``route`` ("direct" or "levels", see :func:`optimizers.milp.solve_acquisition`: the same
    optimum, different speed) picks how a distance bonus is solved;
    ``max_nodes`` (branch-and-bound nodes per solve, deterministic), ``mip_gap`` (relative) and
    ``abs_gap`` (absolute, in units of the score std) stop the solver; ``time_limit`` (s per
    solve, default none) is an opt-in safety net: when it fires, the proposal is flagged
    load-dependent; ``n_local_starts``/``local_max_steps`` size the local search (the MILP
    runs one ascent from the incumbent as its warm start).
    """

    def __init__(self, space: CodeGrid, seed: int, library: str = "lightgbm", acquisition: str = "milp",
                 n_trees: int = 100, max_depth: int = 3, learning_rate: float | None = None,
                 min_child_samples: int = 5,
                 subsample: float = 0.8, reg_lambda: float = 1.0, min_data_per_group: int = 2,
                 cat_smooth: float = 1.0, cat_l2: float = 1.0, max_cat_to_onehot: int = 4,
                 max_cat_threshold: int = 64, fit_top: int | None = None, fit_random: int | None = None,
                 exploration: str = "bonus", kappa: float = 1.0, trust_radius: float | None = 0.25,
                 trust_centers: int = 1, route: str = "direct", max_nodes: int | None = None,
                 time_limit: float | None = None, mip_gap: float = 1e-4,
                 abs_gap: float = 1e-3, n_local_starts: int = 8, local_max_steps: int = 100) -> None:
        super().__init__(space, seed)
        if library not in LIBRARIES:
            raise ValueError(f"library must be one of {LIBRARIES}, got {library!r}")
        if acquisition not in ("milp", "local"):
            raise ValueError(f"acquisition must be 'milp' or 'local', got {acquisition!r}")
        if exploration not in EXPLORATION_MODES:
            raise ValueError(f"exploration must be one of {EXPLORATION_MODES}, got {exploration!r}")
        if route not in ACQUISITION_ROUTES:
            raise ValueError(f"route must be one of {ACQUISITION_ROUTES}, got {route!r}")
        self.library = library
        self.acquisition = acquisition
        self.surrogate_params: dict[str, Any] = {
            "n_trees": int(n_trees), "max_depth": int(max_depth), "learning_rate": learning_rate,
            "min_child_samples": int(min_child_samples), "subsample": float(subsample),
            "reg_lambda": float(reg_lambda), "min_data_per_group": int(min_data_per_group),
            "cat_smooth": float(cat_smooth), "cat_l2": float(cat_l2),
            "max_cat_to_onehot": int(max_cat_to_onehot), "max_cat_threshold": int(max_cat_threshold)}
        self.fit_top = None if fit_top is None else int(fit_top)
        self.fit_random = None if fit_random is None else int(fit_random)
        self.exploration = exploration
        self.kappa = float(kappa)
        self.trust_radius = None if trust_radius is None else float(trust_radius)
        self.trust_centers = int(trust_centers)
        self.route = route
        self.max_nodes = None if max_nodes is None else int(max_nodes)
        self.time_limit = None if time_limit is None else float(time_limit)
        self.mip_gap = float(mip_gap)
        self.abs_gap = float(abs_gap)
        self.n_local_starts = int(n_local_starts)
        self.local_max_steps = int(local_max_steps)

    # --- pieces ----------------------------------------------------------------------------
    def _training_rows(self, data: Observations) -> np.ndarray:
        """Indices to fit on: all, or the best ``fit_top`` plus ``fit_random`` random others."""
        n = len(data)
        if self.fit_top is None or n <= self.fit_top + (self.fit_random or 0):
            return np.arange(n)
        top = data.top(self.fit_top)
        rest = np.setdiff1d(np.arange(n), top)
        extra = self.rng.choice(rest, size=min(len(rest), self.fit_random or 0), replace=False)
        return np.sort(np.concatenate([top, extra]))

    def _radius(self, n_pos: int) -> int | None:
        if self.trust_radius is None:
            return None
        return max(1, int(round(self.trust_radius * n_pos))) if self.trust_radius < 1 else int(self.trust_radius)

    def propose(self, n: int, data: Observations) -> Proposal:
        space = data.space
        flat = data.flat
        n_pos = space.n_positions
        rows = self._training_rows(data)
        fit_seed = int(self.rng.integers(2**31 - 1))
        t0 = time.perf_counter()
        ensemble, _ = fit_surrogate(self.library, flat[rows], data.scores[rows], fit_seed,
                                    n_codes=space.codebook_size, **self.surrogate_params)
        fit_s = time.perf_counter() - t0
        y_std = float(np.std(data.scores[rows])) or 1.0
        weight = self.kappa * y_std / n_pos if self.exploration != "none" else 0.0
        allowed = space.allowed_codes_flat()
        radius = self._radius(n_pos)
        top = data.top(max(1, self.trust_centers))
        centers = flat[top] if radius is not None else None
        incumbent = flat[data.best_index()].copy()
        for p, codes in enumerate(allowed):  # the mask may have changed since it was evaluated
            if incumbent[p] not in codes:
                incumbent[p] = codes[0]

        observed = flat.copy()
        proposals: list[np.ndarray] = []
        infos: list[dict[str, Any]] = []
        seen = {latent_key(z) for z in flat}
        for q in range(n):
            excluded = np.concatenate([flat] + ([np.stack(proposals)] if proposals else []))
            # the MILP only needs a warm start: one ascent from the incumbent is enough
            starts = self._starts(incumbent, flat[top], data) if self.acquisition == "local" else incumbent[None]
            t1 = time.perf_counter()
            local = local_search_acquisition(
                ensemble, allowed, space.codebook_size, starts, observed=observed, exploration=self.exploration,
                exploration_weight=weight, trust_centers=centers, trust_radius=radius, exclude=excluded,
                max_steps=self.local_max_steps)
            local_s = time.perf_counter() - t1
            info: dict[str, Any] = {"query_in_batch": q, "fit_s": fit_s, "local_s": local_s,
                                    "n_train": int(len(rows)), "n_leaves": ensemble.n_leaves}
            choice: np.ndarray | None = None
            if self.acquisition == "milp":
                try:
                    result = solve_acquisition(
                        ensemble, allowed, space.codebook_size, observed=observed, exploration=self.exploration,
                        exploration_weight=weight, trust_centers=centers, trust_radius=radius, exclude=excluded,
                        warm_start=local[0].latent if local else incumbent, max_nodes=self.max_nodes,
                        time_limit=self.time_limit,
                        mip_gap=self.mip_gap, mip_abs_gap=self.abs_gap * y_std, seed=self.seed,
                        rng=self.rng, route=self.route)
                    info.update(result.info())
                    if latent_key(result.latent) not in seen:
                        choice = result.latent
                    else:
                        info["fallback"] = "MILP returned a known latent"
                except Exception as exc:  # noqa: BLE001 - a failed solve falls back, and says so
                    info.update({"status": "error", "fallback": f"{type(exc).__name__}: {exc}",
                                 "time_limited": isinstance(exc, AcquisitionTimeLimit)})
            if choice is None:
                fresh = [r for r in local if latent_key(r.latent) not in seen]
                if fresh:
                    choice = fresh[0].latent
                    info.update({"pred_mean": fresh[0].mean, "distance": fresh[0].distance,
                                 "objective": fresh[0].value})
                    info.setdefault("status", "local")
                else:
                    known = Observations(space, excluded.reshape(-1, *space.shape), np.zeros(len(excluded)))
                    choice = distinct_batch(1, known, lambda m: mutate(
                        np.repeat(incumbent.reshape(1, *space.shape), m, axis=0), known, 1.5 / n_pos, self.rng)
                    ).reshape(-1)
                    info["fallback"] = info.get("fallback", "no new local optimum") + "; mutated the incumbent"
            proposals.append(choice)
            seen.add(latent_key(choice))
            observed = np.concatenate([observed, choice[None]])
            infos.append(info)
        timed_out = any(i.get("time_limited", False) for i in infos)
        return Proposal(np.stack(proposals).reshape(n, *space.shape), tuple(infos), load_dependent=timed_out)

    def _starts(self, incumbent: np.ndarray, top: np.ndarray, data: Observations) -> np.ndarray:
        """Local-search starts: the best points and one-code mutations of the incumbent."""
        n_extra = max(0, self.n_local_starts - len(top))
        space = data.space
        extra = mutate(np.repeat(incumbent.reshape(1, *space.shape), n_extra, axis=0), data,
                       1.0 / space.n_positions, self.rng).reshape(n_extra, -1) if n_extra else top[:0]
        return np.concatenate([top[: self.n_local_starts], extra])


_PAPER = {"n_trees": 800, "max_depth": 2, "min_child_samples": 20, "fit_top": 2000, "fit_random": 8000,
          "exploration": "bonus", "kappa": 1.96, "trust_radius": None}
_DEMO = {"n_trees": 60, "max_depth": 3, "fit_top": 300, "fit_random": 300,
         "n_local_starts": 4, "local_max_steps": 40}


@register_optimizer("lgbm-milp", presets={"paper": _PAPER, "demo": _DEMO}, package="lightgbm",
                    library="lightgbm", acquisition="milp")
class LightGBMMilp(TreeEnsembleBO):
    """LightGBM surrogate (categorical splits), acquisition solved exactly as a HiGHS MILP."""


@register_optimizer("xgb-milp", presets={"demo": _DEMO}, package="xgboost",
                    library="xgboost", acquisition="milp")
class XGBoostMilp(TreeEnsembleBO):
    """XGBoost surrogate (categorical splits), acquisition solved exactly as a HiGHS MILP."""


@register_optimizer("catboost-milp", presets={"demo": _DEMO}, package="catboost",
                    library="catboost", acquisition="milp")
class CatBoostMilp(TreeEnsembleBO):
    """CatBoost surrogate (one-hot categorical splits), acquisition solved exactly as a HiGHS MILP."""


@register_optimizer("lgbm-ls", presets={"demo": _DEMO}, package="lightgbm",
                    library="lightgbm", acquisition="local")
class LightGBMLocal(TreeEnsembleBO):
    """LightGBM surrogate, acquisition by multi-start local search with incremental tree scoring."""
