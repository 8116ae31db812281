"""The acquisition MILP is exact: on many small fitted ensembles of every library and random option
combinations, its answer is the brute-force optimum under the library's own ``predict``, and its
bound is never below that optimum."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from bench.optimizers import milp
from bench.optimizers.milp import hamming_to_nearest, solve_acquisition
from bench.optimizers.tree_bo import fit_surrogate
from bench.optimizers.tree_ensemble import Tree, TreeEnsemble

N_POS, N_CODES = 4, 4
ALL = np.array(list(itertools.product(range(N_CODES), repeat=N_POS)))
TOL = 1e-6


def library_predict(library: str, model: Any, X: np.ndarray) -> np.ndarray:
    """Predictions of the fitted library model itself (not of this project's representation)."""
    if library == "lightgbm":
        return model.predict(X)
    if library == "xgboost":
        import xgboost as xgb

        dmat = xgb.DMatrix(X.astype(np.float32), feature_types=["c"] * X.shape[1], enable_categorical=True)
        return model.predict(dmat)
    import catboost as cb

    cats = [i for i, name in enumerate(model.feature_names_) if i in model.get_cat_feature_indices()]
    return model.predict(cb.Pool(X, cat_features=cats))


def true_values(mean: np.ndarray, latents: np.ndarray, observed: np.ndarray, exploration: str,
                weight: float) -> np.ndarray:
    if exploration == "none" or len(observed) == 0:
        return mean
    d = np.array([hamming_to_nearest(z, observed) for z in latents])
    return mean + (weight if exploration == "bonus" else -weight) * d


@dataclass
class Case:
    """One random acquisition problem and the feasible set brute force sees."""

    observed: np.ndarray
    exploration: str
    weight: float
    allowed: list[np.ndarray]
    centers: np.ndarray | None
    radius: int | None
    exclude: np.ndarray | None
    warm_start: np.ndarray | None
    lazy_rows: int

    def feasible(self) -> np.ndarray:
        ok = np.all([np.isin(ALL[:, p], self.allowed[p]) for p in range(N_POS)], axis=0)
        if self.radius is not None:
            ok &= ((ALL[:, None, :] != self.centers[None]).sum(axis=2) <= self.radius).any(axis=1)
        if self.exclude is not None:
            ok &= ~(ALL[:, None, :] == self.exclude[None]).all(axis=2).any(axis=1)
        return ok

    def solve(self, ensemble: TreeEnsemble, route: str = "direct") -> Any:
        return solve_acquisition(ensemble, self.allowed, N_CODES, observed=self.observed,
                                 exploration=self.exploration, exploration_weight=self.weight,
                                 trust_centers=self.centers, trust_radius=self.radius, exclude=self.exclude,
                                 warm_start=self.warm_start, lazy_rows=self.lazy_rows, mip_gap=0.0,
                                 mip_abs_gap=0.0, route=route)


def random_case(rng: np.random.Generator, X: np.ndarray, y_std: float) -> Case:
    n_obs = int(rng.integers(3, 40))
    observed = X[rng.choice(len(X), n_obs, replace=False)]
    exploration = str(rng.choice(["none", "bonus", "bonus", "penalty"]))
    allowed = [np.arange(N_CODES)] * N_POS
    if rng.random() < 0.3:
        allowed = [np.sort(rng.choice(N_CODES, int(rng.integers(2, N_CODES + 1)), replace=False))
                   for _ in range(N_POS)]
    centers, radius = None, None
    if rng.random() < 0.4:
        centers = observed[rng.choice(n_obs, int(rng.choice([1, 3])), replace=True)]
        radius = int(rng.integers(1, 3))
    exclude = None
    if rng.random() < 0.7:
        exclude = observed if rng.random() < 0.6 else ALL[rng.choice(len(ALL), int(rng.integers(1, 60)))]
    warm = None
    if rng.random() < 0.7:
        warm = observed[0] if rng.random() < 0.5 else ALL[int(rng.integers(len(ALL)))]
    return Case(observed, exploration, float(rng.uniform(0.05, 0.5)) * y_std, allowed, centers, radius,
                exclude, warm, int(rng.choice([0, 1, 3, 32])))


def check(case: Case, ensemble: TreeEnsemble, mean: np.ndarray, label: str) -> np.ndarray | None:
    """Solve ``case`` by every route and compare with brute force; the direct route's latent
    (None if nothing is feasible)."""
    feasible = case.feasible()
    routes = ("direct", "levels") if case.exploration == "bonus" else ("direct",)
    if not feasible.any():
        for route in routes:
            with pytest.raises(RuntimeError):
                case.solve(ensemble, route)
        return None
    values = true_values(mean, ALL, case.observed, case.exploration, case.weight)
    best = values[feasible].max()
    for route in routes:
        result = case.solve(ensemble, route)
        index = int(np.flatnonzero((ALL == result.latent).all(axis=1))[0])
        where = f"{label} route={route}"
        assert feasible[index], f"{where}: infeasible answer {result.latent}"
        assert values[index] == pytest.approx(best, abs=1e-5), f"{where}: {values[index]} < optimum {best}"
        assert result.objective == pytest.approx(values[index], abs=1e-5), where
        assert result.bound >= best - 1e-5, f"{where}: bound {result.bound} below optimum {best}"
        assert result.optimal, f"{where}: {result.status}"
        latent = result.latent if route == routes[0] else latent
    return latent


ENSEMBLE_SEEDS = range(8)


@pytest.mark.parametrize("lp_first", [False, True], ids=["milp", "lp-first"])
@pytest.mark.parametrize("library", ["lightgbm", "xgboost", "catboost"])
def test_random_problems_match_brute_force(library: str, lp_first: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """lp-first: every model is solved as paper-size ones are (LP relaxation, support MILP, start,
    reduced-cost fixing). Every run also checks the lazy rows' repair over same-leaf codes."""
    relaxations: list[Any] = []
    solved: list[Any] = []
    picks: list[Any] = []
    if lp_first:
        monkeypatch.setattr(milp, "LP_FIRST_FROM_NONZEROS", 0)
        relax, run = milp._relaxation, milp._run_highs
        monkeypatch.setattr(milp, "_relaxation", lambda *a: relaxations.append(relax(*a)) or relaxations[-1])
        monkeypatch.setattr(milp, "_run_highs", lambda *a, **k: solved.append(run(*a, **k)) or solved[-1])
    far_pick = milp._far_pick
    monkeypatch.setattr(milp, "_far_pick", lambda *a, **k: picks.append(far_pick(*a, **k)) or picks[-1])
    solves = 0
    for seed in ENSEMBLE_SEEDS:
        rng = np.random.default_rng([seed, 12])
        X = rng.integers(0, N_CODES, size=(int(rng.integers(30, 120)), N_POS))
        terms = rng.normal(size=(N_POS, N_CODES))
        y = terms[np.arange(N_POS), X].sum(axis=1) + (X[:, 0] == X[:, 1]) + 0.1 * rng.normal(size=len(X))
        # a huge min_child_samples leaves trees without any split (the "trivial" model)
        min_child = len(X) if seed == 0 else int(rng.integers(2, 8))
        ensemble, model = fit_surrogate(library, X, y, seed, n_trees=int(rng.integers(3, 25)),
                                        max_depth=int(rng.integers(1, 4)), min_child_samples=min_child,
                                        n_codes=N_CODES)
        mean = library_predict(library, model, ALL)
        np.testing.assert_allclose(ensemble.predict(ALL), mean, atol=1e-5)
        for k in range(10):
            case = random_case(rng, X, float(np.std(y)))
            label = f"{library} seed={seed} case={k} {case}"
            latent = check(case, ensemble, mean, label)
            solves += 1
            # a sequential batch: the answer joins the observed and excluded points
            for q in range(2 if latent is not None and k % 3 == 0 else 0):
                case.observed = np.concatenate([case.observed, latent[None]])
                case.exclude = np.concatenate([case.exclude if case.exclude is not None else case.observed[:0],
                                               case.observed])
                latent = check(case, ensemble, mean, f"{label} batch {q + 1}")
                solves += 1
                if latent is None:
                    break
    assert solves >= 80
    if library != "catboost":  # oblivious trees seldom leave a same-leaf alternative this small
        assert any(pick is not None for pick in picks), "the lazy loop's same-leaf repair was never taken"
    if lp_first:  # every way out of the relaxation was taken
        assert any(r.integral for r in relaxations) and any(r.start is not None for r in relaxations)
        assert {"start within gap", "start"} <= {s.relaxation for s in solved}
        assert any(s.fixed_by_reduced_cost > 0 for s in solved)


def stump_ensemble() -> TreeEnsemble:
    """One stump on position 0 of a 2 x 3 grid: codes {0, 1} are worth 1.0, code 2 is worth 0.0."""
    stump = Tree(np.array([0, -1, -1]), np.full(3, np.nan), (np.array([0, 1]), None, None),
                 np.array([1, -1, -1]), np.array([2, -1, -1]), np.array([0.0, 1.0, 0.0]), np.ones(3, dtype=bool))
    return TreeEnsemble((stump,), 0.0, 2)


@pytest.mark.parametrize("lazy_rows", [0, 1])
def test_exclusion_removes_only_the_excluded_latents(lazy_rows: int) -> None:
    """Lazy distance rows once merged the codes of observed points not yet in the model with
    unobserved codes, so one cut removed a whole class: "Optimal" at 0.1 instead of 1.2."""
    seen = np.array([[0, 0], [2, 2]])
    result = solve_acquisition(stump_ensemble(), [np.arange(3)] * 2, 3, observed=seen, exclude=seen,
                               exploration="bonus", exploration_weight=0.1, warm_start=np.array([2, 2]),
                               lazy_rows=lazy_rows)
    assert result.objective == pytest.approx(1.2)
    assert result.latent.tolist() == [1, 1]
    assert result.bound >= 1.2 - TOL and result.optimal


def test_excluding_every_latent_of_a_split_free_model_is_infeasible_only_when_it_should() -> None:
    flat = TreeEnsemble((Tree(np.array([-1]), np.array([np.nan]), (None,), np.array([-1]), np.array([-1]),
                              np.array([0.5]), np.ones(1, dtype=bool)),), 0.0, 2)
    grid = np.array(list(itertools.product(range(2), repeat=2)))
    result = solve_acquisition(flat, [np.arange(2)] * 2, 2, exclude=grid[:3], warm_start=grid[0])
    assert result.latent.tolist() == grid[3].tolist() and result.objective == pytest.approx(0.5)
    with pytest.raises(RuntimeError, match="no feasible point"):
        solve_acquisition(flat, [np.arange(2)] * 2, 2, exclude=grid)


def small_lightgbm(seed: int, n_pos: int = 6, n_codes: int = 6) -> tuple[TreeEnsemble, np.ndarray]:
    rng = np.random.default_rng([seed, 31])
    X = rng.integers(0, n_codes, size=(200, n_pos))
    y = rng.normal(size=(n_pos, n_codes))[np.arange(n_pos), X].sum(axis=1) + (X[:, 0] == X[:, 1])
    ensemble, _ = fit_surrogate("lightgbm", X, y, seed, n_trees=12, max_depth=2, min_child_samples=5,
                                n_codes=n_codes)
    return ensemble, X


@pytest.mark.parametrize("seed", range(4))
def test_same_leaf_codes_keep_every_leaf_and_every_trust_row(seed: int) -> None:
    ensemble, X = small_lightgbm(seed)
    comp = ensemble.compiled(6)
    rng = np.random.default_rng(seed)
    allowed = [np.arange(6)] * 6
    picks = 0
    for _ in range(10):
        latent, centers = X[rng.integers(len(X))], X[rng.choice(len(X), 2)]
        same = milp._same_leaves(comp, allowed, latent, centers)
        assert all(latent[p] in same[p] for p in range(6))
        picks += sum(len(codes) - 1 for codes in same)
        mixes = np.array([[rng.choice(codes) for codes in same] for _ in range(200)])
        assert (comp.leaf_ids(mixes) == comp.leaf_ids(latent[None])).all()
        for center in centers:
            assert ((mixes == center) == (latent == center)).all()
    assert picks > 0  # there was something to pick from


def far_pick_case(seed: int) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray, float]:
    """A latent, per-position code classes around it, observed and excluded points, a distance."""
    rng = np.random.default_rng([seed, 5])
    latent = rng.integers(0, N_CODES, N_POS)
    same = [np.unique(np.append(rng.choice(N_CODES, int(rng.integers(1, N_CODES + 1))), z)) for z in latent]
    observed = ALL[rng.choice(len(ALL), int(rng.integers(1, 30)), replace=False)]
    exclude = ALL[rng.choice(len(ALL), int(rng.integers(0, 40)), replace=False)]
    return latent, same, observed, exclude, float(rng.integers(1, N_POS + 1))


FAR_PICK_SEEDS = range(20)


@pytest.mark.parametrize("seed", FAR_PICK_SEEDS)
def test_far_pick_finds_a_far_latent_exactly_when_one_exists(seed: int) -> None:
    latent, same, observed, exclude, distance = far_pick_case(seed)
    in_classes = np.all([np.isin(ALL[:, p], same[p]) for p in range(N_POS)], axis=0)
    far = (ALL[:, None, :] != observed[None]).sum(axis=2).min(axis=1) >= distance
    admissible = in_classes & far & ~(ALL[:, None, :] == exclude[None]).all(axis=2).any(axis=1)
    pick = milp._far_pick(latent, same, observed, exclude, distance, threads=1, seed=0)
    if pick is None:
        assert not admissible.any()
    else:
        assert admissible[int(np.flatnonzero((ALL == pick).all(axis=1))[0])]


def test_far_pick_cases_cover_both_answers() -> None:
    """The randomized cases above include both outcomes (else they would prove little)."""
    outcomes = {milp._far_pick(*far_pick_case(seed), threads=1, seed=0) is None for seed in FAR_PICK_SEEDS}
    assert outcomes == {True, False}
