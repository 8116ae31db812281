"""ENTMOOT wrapper: its acquisition model against brute force, and the optimizer's proposals."""

from __future__ import annotations

import itertools
import shutil

import lightgbm as lgb
import numpy as np
import pytest

from bench.core.optimizer import Observations
from bench.core.space import CodeGrid
from bench.optimizers.entmoot_opt import Entmoot, EntmootUnavailable, _encode, _problem_config, entmoot_acquisition

POSITIONS, CODES = 3, 4


@pytest.fixture(scope="module")
def fitted() -> tuple[lgb.Booster, np.ndarray, np.ndarray]:
    """A LightGBM ensemble on 3 categorical positions x 4 codes, and every latent of that space."""
    rng = np.random.default_rng(0)
    observed = rng.integers(0, CODES, size=(30, POSITIONS))
    y = (observed == 1).sum(axis=1) + (observed[:, 0] == observed[:, 2]) + rng.normal(0, 0.1, len(observed))
    params = {"objective": "regression", "num_boost_round": 30, "max_depth": 3, "min_data_in_leaf": 1,
              "min_data_per_group": 1, "cat_smooth": 1.0, "cat_l2": 1.0, "verbose": -1, "num_threads": 1,
              "deterministic": True, "seed": 0}
    data = lgb.Dataset(observed, y, categorical_feature=list(range(POSITIONS)), params={"verbose": -1})
    booster = lgb.train(params, data)
    every = np.array(list(itertools.product(range(CODES), repeat=POSITIONS)))
    return booster, observed, every


def brute_force(booster: lgb.Booster, observed: np.ndarray, every: np.ndarray, beta: float, sense: str,
                maximize: bool = True) -> np.ndarray:
    """ENTMOOT's acquisition (harness sign when maximize) at every latent."""
    mean = booster.predict(every)
    distance = (every[:, None, :] != observed[None]).sum(axis=2).min(axis=1) / every.shape[1]
    if not maximize:  # ENTMOOT's minimisation: mean - beta d (exploration), mean + beta d (penalty)
        return mean - beta * distance if sense == "exploration" else mean + beta * distance
    return mean + beta * distance if sense == "exploration" else mean - beta * distance


@pytest.mark.parametrize(("beta", "sense"), [(0.0, "exploration"), (1.0, "exploration"), (1.0, "penalty")])
@pytest.mark.parametrize("maximize", [True, False])
def test_acquisition_matches_brute_force(fitted, beta: float, sense: str, maximize: bool) -> None:
    booster, observed, every = fitted
    values = brute_force(booster, observed, every, beta, sense, maximize)
    best = values.max() if maximize else values.min()
    solution = entmoot_acquisition(booster, observed, CODES, beta=beta, acq_sense=sense, maximize=maximize)
    assert solution.status == "optimal"
    assert solution.latent.shape == (POSITIONS,)
    assert solution.objective == pytest.approx(best, abs=1e-6)
    assert solution.bound == pytest.approx(best, abs=1e-6)
    # the reported objective is the value of the returned latent, not only the optimum's value
    index = int(np.flatnonzero((every == solution.latent).all(axis=1))[0])
    assert values[index] == pytest.approx(best, abs=1e-6)
    assert solution.mean == pytest.approx(booster.predict(solution.latent[None])[0], abs=1e-6)
    assert solution.solve_s >= 0 and solution.build_s >= 0


def test_acquisition_respects_mask_and_exclusions(fitted) -> None:
    booster, observed, every = fitted
    allowed = np.ones((POSITIONS, CODES), dtype=bool)
    allowed[0, 1] = False  # code 1 is the best code everywhere; forbid it at position 0
    top = every[np.argmax(np.where(allowed[0, every[:, 0]], booster.predict(every), -np.inf))]
    feasible = allowed[np.arange(POSITIONS), every].all(axis=1) & ~(every == top).all(axis=1)
    values = np.where(feasible, booster.predict(every), -np.inf)
    solution = entmoot_acquisition(booster, observed, CODES, beta=0.0, allowed=allowed, exclude=top[None])
    assert solution.objective == pytest.approx(values.max(), abs=1e-6)
    assert allowed[np.arange(POSITIONS), solution.latent].all()
    assert not np.array_equal(solution.latent, top)


def tiny_data(space: CodeGrid, n: int = 12, seed: int = 0) -> Observations:
    latents = space.sample(n, np.random.default_rng(seed))
    scores = (latents.reshape(n, -1) == 0).sum(axis=1) + 0.1 * latents.reshape(n, -1)[:, 0]
    return Observations(space, latents, scores.astype(np.float64))


def test_optimizer_proposes_new_distinct_latents_with_fixed_positions() -> None:
    mask = np.ones((2, 3, 5), dtype=bool)
    mask[0, 0] = False
    mask[0, 0, 2] = True  # a position with a single allowed code: fixed, not an ENTMOOT feature
    mask[1, 2, 4] = False
    space = CodeGrid(2, 3, 5, mask)
    data = tiny_data(space)
    optimizer = Entmoot(space, seed=3, num_boost_round=20)
    proposal = optimizer.propose(4, data)
    batch = proposal.latents
    space.validate(batch, n=4)
    keys = {z.tobytes() for z in batch}
    assert len(keys) == 4 and not keys & {z.tobytes() for z in data.latents}
    assert (batch[:, 0, 0] == 2).all()
    assert [info["status"] for info in proposal.info] == ["optimal"] * 4


def test_default_surrogate_learns_more_than_stumps() -> None:
    """ENTMOOT's own settings with LightGBM's categorical defaults learn a constant here."""
    space = CodeGrid(4, 4, 16)
    rng = np.random.default_rng(1)
    latents = space.sample(60, rng).reshape(60, -1)
    scores = (latents % 3 == 0).sum(axis=1) + latents[:, 0] / 16
    categories = [np.arange(16)] * 16
    config = _problem_config(categories, maximize=True, seed=0)
    enting = Entmoot(space, seed=0)._fit(config, _encode(categories, latents), scores)
    predicted = np.array([m for m, _ in enting.predict([[str(v) for v in row] for row in latents])]).ravel()
    r2 = 1 - ((predicted - scores) ** 2).sum() / ((scores - scores.mean()) ** 2).sum()
    assert r2 > 0.5


def test_gurobi_runs_on_a_toy_grid() -> None:
    space = CodeGrid(2, 2, 3)
    data = tiny_data(space, n=6)
    batch = Entmoot(space, seed=0, solver="gurobi", num_boost_round=10).propose(2, data).latents
    space.validate(batch, n=2)
    assert len({z.tobytes() for z in batch} - {z.tobytes() for z in data.latents}) == 2


def test_gurobi_size_limit_is_a_clear_error() -> None:
    with pytest.raises(EntmootUnavailable, match="2000 variables"):
        Entmoot(CodeGrid(8, 8, 256), seed=0, solver="gurobi")


@pytest.mark.skipif(shutil.which("cbc") is not None, reason="CBC is installed")
def test_missing_cbc_names_the_install_command() -> None:
    with pytest.raises(EntmootUnavailable, match="apt-get install -y coinor-cbc"):
        Entmoot(CodeGrid(2, 2, 3), seed=0, solver="cbc")
