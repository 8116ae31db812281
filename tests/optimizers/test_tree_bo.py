"""The tree-ensemble optimizers: better than random on the closed-form task, sound batches and fallbacks."""

from __future__ import annotations

import numpy as np
import pytest

from bench.core import registry
from bench.core.config import RunConfig
from bench.run.loop import run
from bench.core.optimizer import Observations
from bench.optimizers.tree_bo import TreeEnsembleBO

SEEDS = (0, 1, 2)
BUDGET = 30
#: fewer trees than the defaults keep the test quick; the comparison with random stays the same
FAST = {"n_trees": 40}


def _final_regret(optimizer: str, seed: int) -> float:
    overrides = {} if optimizer == "random" else FAST
    config = RunConfig(task="closed-form", optimizer=optimizer, seed=seed, budget=BUDGET, batch_size=5,
                       optimizer_params=overrides)
    task = registry.task_spec("closed-form").build()
    spec = registry.optimizer_spec(optimizer)
    opt = spec.build(task.space, seed, overrides=overrides)
    rows = [row for result in run(task, opt, config, preset_hash=spec.preset_hash(overrides))
            for row in result.records]
    assert not any(row["is_fallback"] for row in rows), optimizer
    return float(task.optimum_value - max(row["score"] for row in rows))


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["lgbm-milp", "xgb-milp", "catboost-milp"])
def test_milp_optimizers_beat_random_on_closed_form(optimizer: str) -> None:
    ours = [_final_regret(optimizer, s) for s in SEEDS]
    random = [_final_regret("random", s) for s in SEEDS]
    assert np.mean(ours) < np.mean(random), (ours, random)
    assert sum(a < b for a, b in zip(ours, random)) >= 2, (ours, random)


def _data(seed: int = 0, n: int = 25) -> Observations:
    task = registry.task_spec("closed-form").build()
    init = task.initial_data(seed, n)
    return Observations(task.space, init.latents, init.scores)


@pytest.mark.parametrize("optimizer", ["lgbm-milp", "lgbm-ls"])
def test_batch_is_distinct_new_and_documented(optimizer: str) -> None:
    data = _data()
    opt = registry.optimizer_spec(optimizer).build(data.space, 0)
    proposal = opt.propose(4, data)
    batch = proposal.latents
    keys = {z.tobytes() for z in batch.astype(np.int64)}
    assert len(keys) == 4 and not keys & {z.tobytes() for z in data.latents.astype(np.int64)}
    assert len(proposal.info) == 4
    for info in proposal.info:
        assert "fallback" not in info
        if optimizer == "lgbm-milp":
            assert info["status"] == "Optimal"
            assert {"objective", "bound", "gap", "solve_s", "build_s"} <= set(info)
            assert info["bound"] >= info["objective"] - 1e-6


def test_trust_region_keeps_proposals_near_the_incumbent() -> None:
    data = _data()
    opt = TreeEnsembleBO(data.space, 0, trust_radius=2, n_trees=30)
    best = data.flat[data.best_index()]
    for z in opt.propose(3, data).latents:
        assert (z.reshape(-1) != best).sum() <= 2


def test_failed_solve_falls_back_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.optimizers.tree_bo as tree_bo

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(tree_bo, "solve_acquisition", broken)
    data = _data()
    opt = TreeEnsembleBO(data.space, 0, n_trees=20)
    proposal = opt.propose(2, data)
    data.space.validate(proposal.latents, n=2)
    assert all("solver exploded" in info["fallback"] for info in proposal.info)


def test_paper_preset_fits_on_best_and_random_subset() -> None:
    spec = registry.optimizer_spec("lgbm-milp/paper")
    assert spec.params["n_trees"] == 800 and spec.params["max_depth"] == 2
    assert spec.params["fit_top"] == 2000 and spec.params["fit_random"] == 8000
    data = _data(n=40)
    opt = TreeEnsembleBO(data.space, 0, fit_top=5, fit_random=10)
    rows = opt._training_rows(data)
    assert len(rows) == 15 and set(data.top(5)) <= set(rows)


def test_no_preset_has_a_wall_clock_limit() -> None:
    for name in ("lgbm-milp/demo", "xgb-milp/demo", "catboost-milp/demo", "lgbm-ls/demo", "lgbm-milp/paper"):
        opt = registry.optimizer_spec(name).build(_data().space, 0)
        assert opt.time_limit is None, name


def test_a_time_limit_that_fires_flags_the_proposal_load_dependent() -> None:
    data = _data()
    timed = TreeEnsembleBO(data.space, 0, n_trees=40, time_limit=1e-9).propose(1, data)
    assert timed.load_dependent and timed.info[0]["time_limited"]
    limited = TreeEnsembleBO(data.space, 0, n_trees=40, max_nodes=1).propose(1, data)
    assert not limited.load_dependent and not limited.info[0]["time_limited"]


def test_levels_route_proposes_the_same_optimum() -> None:
    """Both routes are exact: the first proposal's acquisition value is the same."""
    data = _data(n=40)
    infos = [TreeEnsembleBO(data.space, 0, n_trees=30, trust_radius=None, route=route).propose(1, data).info[0]
             for route in ("direct", "levels")]
    assert all(info["status"] == "Optimal" for info in infos)
    assert infos[0]["objective"] == pytest.approx(infos[1]["objective"], rel=1e-3)
    assert infos[1]["levels"] >= 1 and "levels" not in infos[0]


def test_unknown_route_names_the_choices() -> None:
    with pytest.raises(ValueError, match="route must be one of"):
        TreeEnsembleBO(_data().space, 0, route="fastest")
