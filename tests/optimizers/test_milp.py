"""The acquisition MILP finds the brute-force optimum on small problems, for every library and mode."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from bench.optimizers import milp
from bench.optimizers.local_acquisition import IncrementalScorer, local_search_acquisition
from bench.optimizers.milp import _farthest_in_choice, acquisition_value, hamming_to_nearest, solve_acquisition
from bench.optimizers.tree_bo import fit_surrogate

N_POS, N_CODES = 4, 5
ALL = np.array(list(itertools.product(range(N_CODES), repeat=N_POS)))
ALLOWED = [np.arange(N_CODES)] * N_POS


def _problem(library: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, N_CODES, size=(80, N_POS))
    y = (X[:, 0] == 2) + np.sin(X[:, 1]) + (X[:, 2] == X[:, 3]) + 0.1 * rng.normal(size=len(X))
    ensemble, _ = fit_surrogate(library, X, y, seed, n_trees=25, max_depth=3, min_child_samples=3)
    return ensemble, X


def _ball(centers: np.ndarray, radius: int) -> np.ndarray:
    return ((ALL[:, None, :] != centers[None]).sum(axis=2) <= radius).any(axis=1)


CONFIGS = [  # (exploration, weight, trust radius, number of trust centres)
    ("none", 0.0, None, 0), ("bonus", 0.3, None, 0), ("none", 0.0, 1, 1), ("bonus", 0.3, 1, 1),
    ("bonus", 0.3, 2, 3), ("none", 0.0, 1, 3),
]


@pytest.mark.parametrize("library", ["lightgbm", "xgboost", "catboost"])
def test_milp_matches_brute_force(library: str) -> None:
    ensemble, X = _problem(library)
    observed = X[:10]
    for exploration, weight, radius, n_centers in CONFIGS:
        centers = X[:n_centers] if radius is not None else None
        values = acquisition_value(ensemble, ALL, observed=observed, exploration=exploration,
                                   exploration_weight=weight)
        feasible = _ball(centers, radius) if radius is not None else np.ones(len(ALL), dtype=bool)
        result = solve_acquisition(ensemble, ALLOWED, N_CODES, observed=observed, exploration=exploration,
                                   exploration_weight=weight, trust_centers=centers, trust_radius=radius,
                                   warm_start=X[0])
        got = acquisition_value(ensemble, result.latent[None], observed=observed, exploration=exploration,
                                exploration_weight=weight)[0]
        label = f"{library} {exploration} radius={radius} centers={n_centers}"
        assert result.status == "Optimal", label
        assert got == pytest.approx(values[feasible].max(), abs=1e-6), label
        assert result.objective == pytest.approx(got, abs=1e-6), label
        assert result.bound >= got - 1e-6, label
        if radius is not None:
            assert _ball(centers, radius)[np.flatnonzero((ALL == result.latent).all(axis=1))[0]], label


def test_milp_penalty_matches_brute_force() -> None:
    ensemble, X = _problem("lightgbm", seed=1)
    observed = X[:8]
    values = acquisition_value(ensemble, ALL, observed=observed, exploration="penalty", exploration_weight=0.3)
    result = solve_acquisition(ensemble, ALLOWED, N_CODES, observed=observed, exploration="penalty",
                               exploration_weight=0.3, warm_start=X[0])
    assert result.objective == pytest.approx(values.max(), abs=1e-6)
    assert result.mean - 0.3 * result.distance == pytest.approx(values.max(), abs=1e-6)


def test_milp_respects_mask_and_exclusions() -> None:
    ensemble, X = _problem("lightgbm", seed=2)
    allowed = [np.array([0, 2, 4]), np.arange(N_CODES), np.array([1, 3]), np.arange(N_CODES)]
    ok = np.all([np.isin(ALL[:, p], allowed[p]) for p in range(N_POS)], axis=0)
    values = ensemble.predict(ALL)
    best = solve_acquisition(ensemble, allowed, N_CODES)
    assert values[ok].max() == pytest.approx(best.mean, abs=1e-6)
    assert all(best.latent[p] in allowed[p] for p in range(N_POS))
    # Excluding the optimum removes that latent only: the next best may share all its splits.
    second = solve_acquisition(ensemble, allowed, N_CODES, exclude=best.latent[None])
    other = (ALL != best.latent).any(axis=1) & ok
    assert not np.array_equal(second.latent, best.latent)
    assert second.mean == pytest.approx(values[other].max(), abs=1e-6)


def test_merging_shrinks_model_without_changing_optimum() -> None:
    rng = np.random.default_rng(3)
    n_pos, n_codes = 3, 30
    X = rng.integers(0, n_codes, size=(200, n_pos))
    y = (X[:, 0] < 10) + np.cos(X[:, 1]) + 0.1 * rng.normal(size=len(X))
    ensemble, _ = fit_surrogate("lightgbm", X, y, 0, n_trees=6, max_depth=2, min_child_samples=10)
    everything = np.array(list(itertools.product(range(n_codes), repeat=n_pos)))
    for exploration, weight in (("none", 0.0), ("bonus", 0.05)):
        result = solve_acquisition(ensemble, [np.arange(n_codes)] * n_pos, n_codes, observed=X[:5],
                                   exploration=exploration, exploration_weight=weight)
        assert result.extra["n_groups"] < n_pos * n_codes / 2
        values = acquisition_value(ensemble, everything, observed=X[:5], exploration=exploration,
                                   exploration_weight=weight)
        assert result.objective == pytest.approx(values.max(), abs=1e-6)


@pytest.mark.parametrize("exploration", ["none", "bonus", "penalty"])
def test_incremental_scores_equal_direct_scores(exploration: str) -> None:
    ensemble, X = _problem("lightgbm", seed=4)
    observed = X[:12]
    scorer = IncrementalScorer(ensemble, ALLOWED, N_CODES, observed=observed, exploration=exploration,
                               exploration_weight=0.3)
    z = X[20]
    moves = scorer.move_values(z)
    for p in range(N_POS):
        changed = np.repeat(z[None], N_CODES, axis=0)
        changed[:, p] = np.arange(N_CODES)
        direct = acquisition_value(ensemble, changed, observed=observed, exploration=exploration,
                                   exploration_weight=0.3)
        np.testing.assert_allclose(moves[p], direct, atol=1e-9)


def _mean_moves_by_full_walk(scorer: IncrementalScorer, z: np.ndarray) -> np.ndarray:
    """The mean part of ``move_values`` as first written: every pair walked, summed by np.add.at."""
    comp, codes = scorer.comp, np.arange(scorer.n_codes)
    current = comp.value[comp.leaf_ids(z[None])[0]]
    node = np.repeat(comp.roots[scorer.pair_tree][:, None], scorer.n_codes, axis=1)
    for _ in range(comp.max_depth):
        feat = comp.feature[node]
        code = np.where(feat == scorer.pair_feat[:, None], codes[None, :], z[np.maximum(feat, 0)])
        node = np.where(comp.left_mask[node, code], comp.left[node], comp.right[node])
    delta = np.zeros((scorer.n_pos, scorer.n_codes))
    np.add.at(delta, scorer.pair_feat, comp.value[node] - current[scorer.pair_tree][:, None])
    return float(current.sum()) + comp.base_score + delta


@pytest.mark.parametrize("library", ["lightgbm", "xgboost", "catboost"])
def test_move_values_after_earlier_latents_are_bit_identical_to_a_full_walk(library: str) -> None:
    # the scorer walks again only the trees that test a changed position; a step's numbers must
    # be exactly those of walking every tree (the ascent's path, hence the records, stay the same)
    rng = np.random.default_rng(7)
    n_pos, n_codes = 12, 16
    X = rng.integers(0, n_codes, size=(150, n_pos))
    y = (X[:, 0] < 5) + np.cos(X[:, 1]) + (X[:, 2] == X[:, 3]) + 0.1 * rng.normal(size=len(X))
    ensemble, _ = fit_surrogate(library, X, y, 3, n_trees=40, max_depth=3, min_child_samples=3)
    allowed = [np.arange(n_codes)] * n_pos
    scorer = IncrementalScorer(ensemble, allowed, n_codes)
    z = X[0].copy()
    for step in range(40):
        changed = rng.choice(n_pos, size=1 if step % 4 else int(rng.integers(2, n_pos + 1)), replace=False)
        if step % 9 != 8:  # and now and then the same latent again
            z = z.copy()
            z[changed] = rng.integers(0, n_codes, size=len(changed))
        fresh = IncrementalScorer(ensemble, allowed, n_codes).move_values(z)
        reference = _mean_moves_by_full_walk(scorer, z)
        assert np.array_equal(scorer.move_values(z), fresh)
        assert np.array_equal(fresh, reference)


def test_local_search_returns_local_optima_inside_trust_region() -> None:
    ensemble, X = _problem("lightgbm", seed=5)
    observed = X[:10]
    results = local_search_acquisition(ensemble, ALLOWED, N_CODES, X[:6], observed=observed, exploration="bonus",
                                       exploration_weight=0.3, trust_centers=X[:1], trust_radius=2)
    assert results and all(a.value >= b.value for a, b in zip(results, results[1:]))
    scorer = IncrementalScorer(ensemble, ALLOWED, N_CODES, observed=observed, exploration="bonus",
                               exploration_weight=0.3)
    for r in results:
        assert (r.latent != X[0]).sum() <= 2
        moves = scorer.move_values(r.latent)
        inside = np.array([[(np.where(np.arange(N_POS) == p, c, r.latent) != X[0]).sum() <= 2
                            for c in range(N_CODES)] for p in range(N_POS)])
        assert moves[inside].max() <= r.value + 1e-9
    milp = solve_acquisition(ensemble, ALLOWED, N_CODES, observed=observed, exploration="bonus",
                             exploration_weight=0.3, trust_centers=X[:1], trust_radius=2)
    assert results[0].value <= milp.objective + 1e-9


@pytest.mark.parametrize("library", ["lightgbm", "catboost"])
def test_lazy_distance_rows_reach_the_full_optimum(library: str) -> None:
    ensemble, X = _problem(library, seed=6)
    observed = X[:40]
    values = acquisition_value(ensemble, ALL, observed=observed, exploration="bonus", exploration_weight=0.4)
    lazy = solve_acquisition(ensemble, ALLOWED, N_CODES, observed=observed, exploration="bonus",
                             exploration_weight=0.4, warm_start=X[0], lazy_rows=2)
    full = solve_acquisition(ensemble, ALLOWED, N_CODES, observed=observed, exploration="bonus",
                             exploration_weight=0.4, warm_start=X[0], lazy_rows=0)
    assert lazy.objective == pytest.approx(values.max(), abs=1e-6)
    assert full.objective == pytest.approx(values.max(), abs=1e-6)
    assert lazy.bound >= values.max() - 1e-6
    assert lazy.extra["lazy_rounds"] > 1 and lazy.extra["distance_rows"] < len(observed)


def test_distance_rows_rule_depends_on_the_number_of_points(monkeypatch: pytest.MonkeyPatch) -> None:
    """By default every distance row is built at once up to ALL_DISTANCE_ROWS_UP_TO observed points
    and rows are added lazily beyond; both reach the brute-force optimum."""
    ensemble, X = _problem("lightgbm", seed=6)
    observed = X[:40]
    values = acquisition_value(ensemble, ALL, observed=observed, exploration="bonus", exploration_weight=0.4)
    kwargs = dict(observed=observed, exploration="bonus", exploration_weight=0.4, warm_start=X[0], mip_gap=0.0,
                  mip_abs_gap=0.0)
    at_once = solve_acquisition(ensemble, ALLOWED, N_CODES, **kwargs)
    assert at_once.extra["lazy_rounds"] == 1 and at_once.extra["distance_rows"] == len(observed)
    monkeypatch.setattr("bench.optimizers.milp.ALL_DISTANCE_ROWS_UP_TO", 10)
    monkeypatch.setattr("bench.optimizers.milp.LAZY_ROWS", 2)
    lazily = solve_acquisition(ensemble, ALLOWED, N_CODES, **kwargs)
    assert lazily.extra["lazy_rounds"] > 1 and lazily.extra["distance_rows"] < len(observed)
    for result in (at_once, lazily):
        assert result.optimal and result.objective == pytest.approx(values.max(), abs=1e-6)


def test_highs_restarts_only_on_large_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """HiGHS's root restarts are off below RESTART_FROM_NONZEROS and on from it; both settings
    reach the brute-force optimum."""
    ensemble, X = _problem("lightgbm", seed=6)
    values = acquisition_value(ensemble, ALL, observed=X[:20], exploration="bonus", exploration_weight=0.4)
    solvers: list[Any] = []
    new_highs = milp._new_highs
    monkeypatch.setattr(milp, "_new_highs", lambda: solvers.append(new_highs()) or solvers[-1])
    for threshold, restarts in ((10**9, False), (0, True)):
        monkeypatch.setattr(milp, "RESTART_FROM_NONZEROS", threshold)
        result = solve_acquisition(ensemble, ALLOWED, N_CODES, observed=X[:20], exploration="bonus",
                                   exploration_weight=0.4, warm_start=X[0], mip_gap=0.0, mip_abs_gap=0.0)
        assert solvers[-1].getOptionValue("mip_allow_restart")[1] is restarts
        assert result.optimal and result.objective == pytest.approx(values.max(), abs=1e-6)


def test_pick_within_a_choice_moves_away_from_observed_points_unless_excluded() -> None:
    """Codes of one merged group have the same model value; the pick keeps the farthest one."""
    observed = np.array([[0, 0, 0], [0, 1, 1], [2, 2, 2]])
    choice = [np.array([0, 3]), np.array([1]), np.array([1, 4])]
    latent = np.array([0, 1, 1])  # equals observed[1]: distance 0
    far = _farthest_in_choice(latent, choice, observed, np.zeros((0, 3), dtype=np.int64))
    assert far.tolist() == [3, 1, 4] and hamming_to_nearest(far, observed) == 2
    assert _farthest_in_choice(latent, choice, observed, far[None]).tolist() == latent.tolist()
    fixed = [np.array([c]) for c in latent]
    assert _farthest_in_choice(latent, fixed, observed, np.zeros((0, 3), dtype=np.int64)).tolist() == latent.tolist()


@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
def test_levels_route_reaches_the_direct_optimum_beyond_brute_force_size(library: str) -> None:
    """10 positions x 8 codes with 300 observed points (lazy rows on the direct route); every code
    of position 0 is observed, so the farthest level (distance 10) has no latent and is skipped."""
    rng = np.random.default_rng(3)
    n_pos, n_codes = 10, 8
    X = rng.integers(0, n_codes, size=(300, n_pos))
    X[:n_codes, 0] = np.arange(n_codes)
    y = (X[:, :5] == 3).sum(axis=1) + 0.5 * (X[:, 5] == X[:, 6]) + 0.1 * rng.normal(size=len(X))
    ensemble, _ = fit_surrogate(library, X, y, 0, n_trees=60, max_depth=2, min_child_samples=3, n_codes=n_codes)
    allowed = [np.arange(n_codes)] * n_pos
    kwargs = dict(observed=X, exploration="bonus", exploration_weight=0.4, warm_start=X[int(np.argmax(y))],
                  mip_gap=0.0, mip_abs_gap=0.0)
    direct = solve_acquisition(ensemble, allowed, n_codes, **kwargs)
    levels = solve_acquisition(ensemble, allowed, n_codes, route="levels", **kwargs)
    assert direct.optimal and levels.optimal
    assert levels.objective == pytest.approx(direct.objective, abs=1e-6)
    assert levels.bound >= direct.objective - 1e-6
    assert levels.distance == hamming_to_nearest(levels.latent, X) and levels.distance < n_pos
    assert levels.extra["route"] == "levels" and levels.extra["levels"] >= 1


def test_large_models_get_the_interior_point_root_lp(monkeypatch: pytest.MonkeyPatch) -> None:
    """The root-LP rule depends on the model's size only, and either LP solver reaches the optimum."""
    ensemble, X = _problem("lightgbm", seed=6)
    kwargs = dict(observed=X[:40], exploration="bonus", exploration_weight=0.4, warm_start=X[0], mip_gap=0.0,
                  mip_abs_gap=0.0)
    values = acquisition_value(ensemble, ALL, observed=X[:40], exploration="bonus", exploration_weight=0.4)
    small = solve_acquisition(ensemble, ALLOWED, N_CODES, **kwargs)
    monkeypatch.setattr("bench.optimizers.milp.IPM_ROOT_FROM_NONZEROS", 0)
    large = solve_acquisition(ensemble, ALLOWED, N_CODES, **kwargs)
    assert small.extra["root_lp"] == "choose" and large.extra["root_lp"] == "ipm"
    again = solve_acquisition(ensemble, ALLOWED, N_CODES, **kwargs)
    assert again.latent.tolist() == large.latent.tolist() and again.objective == large.objective
    for result in (small, large):
        assert result.optimal and result.objective == pytest.approx(values.max(), abs=1e-6)


def test_unknown_route_is_named() -> None:
    ensemble, X = _problem("lightgbm")
    with pytest.raises(ValueError, match="route must be one of"):
        solve_acquisition(ensemble, ALLOWED, N_CODES, observed=X, exploration="bonus", exploration_weight=0.1,
                          route="fast")
