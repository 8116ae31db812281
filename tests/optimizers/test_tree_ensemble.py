"""The tree-ensemble representation reproduces each library's predictions exactly."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from bench.optimizers.tree_bo import fit_surrogate
from bench.optimizers.tree_ensemble import from_catboost, from_lightgbm, from_xgboost
from bench.tasks.closed_form import ClosedFormTask

N_POS, N_CODES = 6, 12


def _data(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.integers(0, N_CODES, size=(n, N_POS))
    y = (X[:, 0] == 2) + np.sin(X[:, 1]) + (X[:, 2] == X[:, 3]) + 0.1 * rng.normal(size=n)
    return X, y


def _probe(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, N_CODES, size=(500, N_POS))


def _check(ensemble, reference: np.ndarray, X: np.ndarray) -> None:
    np.testing.assert_allclose(ensemble.predict(X), reference, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ensemble.compiled(N_CODES).predict(X), reference, atol=1e-6, rtol=0)


@pytest.mark.parametrize("max_cat_to_onehot", [4, 64])
def test_lightgbm_adapter_matches_predict(max_cat_to_onehot: int) -> None:
    X, y = _data()
    ensemble, booster = fit_surrogate("lightgbm", X, y, 0, n_trees=40, max_cat_to_onehot=max_cat_to_onehot)
    probe = _probe()
    _check(ensemble, booster.predict(probe), probe)
    assert any(c is not None for t in ensemble.trees for c in t.categories), "expected categorical splits"


@pytest.mark.parametrize("max_cat_to_onehot", [1, 64])
def test_xgboost_adapter_matches_predict(max_cat_to_onehot: int) -> None:
    import xgboost as xgb

    X, y = _data()
    ensemble, booster = fit_surrogate("xgboost", X, y, 0, n_trees=40, max_cat_to_onehot=max_cat_to_onehot)
    probe = _probe()
    reference = booster.predict(xgb.DMatrix(probe.astype(np.float32), feature_types=["c"] * N_POS,
                                            enable_categorical=True))
    _check(ensemble, reference, probe)
    assert ensemble.base_score != 0.0
    assert from_xgboost(booster).n_leaves == ensemble.n_leaves


def test_catboost_adapter_matches_predict_one_hot() -> None:
    import catboost as cb

    X, y = _data()
    ensemble, model = fit_surrogate("catboost", X, y, 0, n_trees=40)
    probe = _probe()
    reference = model.predict(cb.Pool(probe, cat_features=list(range(N_POS))))
    _check(ensemble, reference, probe)
    assert all(c is not None for t in ensemble.trees for k, c in enumerate(t.categories) if t.feature[k] >= 0)


def test_catboost_adapter_float_borders() -> None:
    import catboost as cb

    X, y = _data()
    model = cb.CatBoostRegressor(iterations=30, depth=3, thread_count=1, random_seed=0, verbose=0,
                                 allow_writing_files=False)
    model.fit(X.astype(np.float64), y)
    probe = _probe()
    _check(from_catboost(model), model.predict(probe.astype(np.float64)), probe)


def test_catboost_adapter_float_only_model_with_pool() -> None:
    """A model without categorical features once crashed when its pool was passed (no hash table)."""
    import catboost as cb

    X, y = _data()
    pool = cb.Pool(X, y, cat_features=[])
    model = cb.CatBoostRegressor(iterations=20, depth=3, thread_count=1, random_seed=0, verbose=0,
                                 allow_writing_files=False)
    model.fit(pool)
    probe = _probe()
    _check(from_catboost(model, pool), model.predict(probe), probe)


def test_catboost_surrogate_with_every_code_seen_uses_float_borders() -> None:
    """Past 255 distinct codes a position is a float feature; with all of them the model is float-only."""
    rng = np.random.default_rng(2)
    X = rng.integers(0, 300, size=(1200, 2))
    y = np.sin(X[:, 0] / 20.0) + (X[:, 1] % 7 == 0)
    ensemble, model = fit_surrogate("catboost", X, y, 0, n_trees=15, n_codes=300)
    probe = rng.integers(0, 300, size=(500, 2))
    np.testing.assert_allclose(ensemble.predict(probe), model.predict(probe), atol=1e-6, rtol=0)


@pytest.mark.parametrize("grow_policy", ["Depthwise", "Lossguide"])
def test_catboost_adapter_non_symmetric_trees(grow_policy: str) -> None:
    import catboost as cb

    X, y = _data()
    pool = cb.Pool(X, y, cat_features=[0, 1, 2])
    model = cb.CatBoostRegressor(iterations=25, depth=3, grow_policy=grow_policy, one_hot_max_size=255,
                                 thread_count=1, random_seed=0, verbose=0, allow_writing_files=False)
    model.fit(pool)
    probe = _probe()
    ensemble = from_catboost(model, pool)
    _check(ensemble, model.predict(cb.Pool(probe, cat_features=[0, 1, 2])), probe)
    assert any(t.n_nodes != 2 ** (t.depth() + 1) - 1 for t in ensemble.trees)  # really not symmetric


def test_lightgbm_adapter_on_hand_built_booster() -> None:
    import lightgbm as lgb

    X, y = _data()
    params = {"objective": "regression", "verbose": -1, "num_threads": 1, "deterministic": True,
              "max_depth": 3, "num_leaves": 8, "min_data_per_group": 2, "cat_smooth": 1, "cat_l2": 1,
              "min_data_in_leaf": 3}
    booster = lgb.train(params, lgb.Dataset(X, y, categorical_feature=list(range(N_POS))), 20)
    probe = _probe()
    _check(from_lightgbm(booster), booster.predict(probe), probe)


def test_ensemble_pickles_and_scales() -> None:
    X, y = _data()
    ensemble, _ = fit_surrogate("lightgbm", X, y, 0, n_trees=10)
    ensemble.compiled(N_CODES)  # the cache must not break pickling
    clone = pickle.loads(pickle.dumps(ensemble))
    probe = _probe()
    np.testing.assert_allclose(clone.predict(probe), ensemble.predict(probe))
    np.testing.assert_allclose(ensemble.scaled(-1.0).predict(probe), -ensemble.predict(probe))


@pytest.mark.parametrize("library", ["lightgbm", "xgboost", "catboost"])
def test_default_surrogate_fits_categorical_task(library: str) -> None:
    """The defaults learn the closed-form task far better than stumps (ENTMOOT's defaults did not)."""
    task = ClosedFormTask(height=4, width=4, codebook_size=16, instance_seed=3)
    rng = np.random.default_rng(0)
    train = task.space.sample(200, rng)
    test = task.space.sample(400, rng)
    X, Xt = train.reshape(200, -1), test.reshape(400, -1)
    y, yt = task.evaluate(train).scores, task.evaluate(test).scores

    def r2(ensemble, A: np.ndarray, b: np.ndarray) -> float:
        return 1.0 - float(np.mean((ensemble.predict(A) - b) ** 2) / np.var(b))

    ensemble, _ = fit_surrogate(library, X, y, 0)
    stumps, _ = fit_surrogate(library, X, y, 0, max_depth=1)
    assert r2(ensemble, X, y) > 0.8
    assert r2(ensemble, X, y) > r2(stumps, X, y) + 0.2
    assert r2(ensemble, Xt, yt) > 0.1  # generalises, not only memorises
