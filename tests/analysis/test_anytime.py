"""Anytime analysis on synthetic run folders with hand-computed values: ECDFs, profiles, AUCs,
wall-time budgets, overhead share and realism fronts.

Sweep "lin" (initial design 0, 0; 4 queries; seeds 0 and 1 identical; elapsed time of eval i
= 0.1 + i s, so query q ends at 1.1 + q s). Task ``a``: random's final best is 0 and the best of
any run 10, so the normalized score is score / 10:

- ``random``: 0, 0, 0, 0          -> z = 0 throughout
- ``fast``:   10, 10, 10, 10      -> z = 1 from query 1
- ``mid``:    2.5, 4.5, 6.5, 8.5  -> z = .25, .45, .65, .85; 0.51 s per proposal
- ``slow``:   0, 0, 5.5, 10       -> z = 0, 0, .55, 1

Task ``b`` is the same except ``fast`` scores 5.5 (z = .55). Targets are 0, 0.02, ..., 1, so
z reaches floor(50 z) + 1 of the 51 targets (z is never exactly on a target except 0 and 1).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.analysis import anytime as T
from bench.analysis import realism
from bench.analysis import report as R
from bench.testing import runs as S
from bench.analysis import walltime as W
from bench.analysis.aggregate import load_sweep
from bench.analysis.plotting import display_labels

QUERIES = {"random": [0.0] * 4, "fast": [10.0] * 4, "mid": [2.5, 4.5, 6.5, 8.5], "slow": [0.0, 0.0, 5.5, 10.0]}
Z = {"random": [0, 0, 0, 0], "mid": [.25, .45, .65, .85], "slow": [0, 0, .55, 1]}
PRIOR = {"mid": [-5, -5, -1, -2, -3, -10], "slow": [-0.5, -0.5, -0.5, -0.5, -4, -20]}


def reached(z: float) -> int:
    """How many of the 51 targets a normalized score reaches."""
    return 51 if z >= 1 else math.floor(50 * z) + 1 if z >= 0 else 0


@pytest.fixture(scope="module")
def lin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sweep = tmp_path_factory.mktemp("anytime") / "lin"
    for task in ("a", "b"):
        for method, scores in QUERIES.items():
            scores = [5.5] * 4 if (task, method) == ("b", "fast") else scores
            for seed in (0, 1):
                S.write_run(sweep, S.SyntheticRun(task, method, seed, [0.0, 0.0], scores,
                                                  propose_s=0.51 if method == "mid" else 0.0,
                                                  prior_loglik=PRIOR.get(method) if task == "a" else None))
    R.write_report(sweep, figures=False, wall_budgets=[1.5, 3.5])
    return sweep


def read(sweep: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(sweep / "report" / f"{name}.csv")


def test_normalization_bounds_are_random_median_and_best_known(lin: Path) -> None:
    bounds = read(lin, "normalization").set_index("task")
    assert bounds.loc["a", "zero"] == 0 and bounds.loc["a", "one"] == 10
    assert bounds.loc["b", "zero"] == 0 and bounds.loc["b", "one"] == 10


def test_ecdf_over_queries_at_known_budgets(lin: Path) -> None:
    ecdf = read(lin, "ecdf_queries").set_index(["task", "method", "query"])["fraction"]
    for method in ("random", "mid", "slow"):
        for query in range(5):
            expected = reached(Z[method][query - 1]) / 51 if query else 1 / 51  # init best 0 reaches target 0
            assert ecdf[("a", method, query)] == pytest.approx(expected), (method, query)
    assert ecdf[("a", "fast", 0)] == pytest.approx(1 / 51)
    assert ecdf[("a", "fast", 1)] == pytest.approx(1.0)
    assert ecdf[("b", "fast", 1)] == pytest.approx(28 / 51)
    # pooled over tasks: every (task, seed, target) pair counts once
    assert ecdf[("all tasks", "fast", 4)] == pytest.approx((51 + 28) / 102)
    assert ecdf[("all tasks", "mid", 2)] == pytest.approx(23 / 51)


def test_ecdf_over_wall_time_and_first_hits(lin: Path) -> None:
    hits = read(lin, "ecdf_targets")
    slow = hits[(hits["task"] == "a") & (hits["method"] == "slow") & (hits["seed"] == 0)].set_index("target")
    assert slow.loc[0.0, "hit_query"] == 0 and slow.loc[0.0, "hit_seconds"] == pytest.approx(1.1)
    assert slow.loc[0.54, "hit_query"] == 3 and slow.loc[0.54, "hit_seconds"] == pytest.approx(4.1)
    assert slow.loc[1.0, "hit_query"] == 4
    mid = hits[(hits["task"] == "a") & (hits["method"] == "mid")]
    assert mid["hit_query"].isna().sum() == 2 * (51 - 43)  # targets above .85 never reached
    seconds = read(lin, "ecdf_seconds")
    mid_a = seconds[(seconds["task"] == "a") & (seconds["method"] == "mid")]
    at = mid_a[np.isclose(mid_a["elapsed_s"], 3.1)]["fraction"]  # query 2 ends at 3.1 s
    assert at.tolist() == [pytest.approx(23 / 51)]
    assert mid_a["fraction"].iloc[-1] == pytest.approx(43 / 51)


def test_aucs_and_their_bootstrap_intervals(lin: Path) -> None:
    per_run = read(lin, "per_run").set_index(["task", "method", "seed"])
    for method in ("random", "mid", "slow"):
        assert per_run.loc[("a", method, 0), "auc"] == pytest.approx(np.mean(Z[method]))
    assert per_run.loc[("a", "fast", 1), "auc"] == pytest.approx(1.0)
    # PMO's top-10 mean: fewer than 10 points, so the mean of every point so far (init 0, 0 included)
    scores = [0, 0] + QUERIES["mid"]
    top = [np.mean(scores[: 3 + q]) / 10 for q in range(4)]
    assert per_run.loc[("a", "mid", 0), "auc_top10"] == pytest.approx(np.mean(top))
    anytime = read(lin, "anytime").set_index(["task", "method", "column"])
    row = anytime.loc[("a", "mid", "auc")]
    assert row["mean"] == pytest.approx(0.55) and row["ci_low"] == pytest.approx(0.55) == row["ci_high"]
    assert bool(anytime.loc[("a", "fast", "auc"), "is_best"])


def test_top_mean_keeps_the_k_best() -> None:
    assert T._running_top_mean(np.array([3.0, 1.0, 5.0, 4.0, 0.0]), 2).tolist() == [3, 2, 4, 4.5, 4.5]


def test_bootstrap_interval_is_seeded_and_brackets_the_mean() -> None:
    from bench.analysis.stats import bootstrap_ci

    values = np.array([0.1, 0.4, 0.35, 0.8, 0.2])
    low, high = bootstrap_ci(values)
    assert low < values.mean() < high and (low, high) == bootstrap_ci(values)
    assert math.isnan(bootstrap_ci(np.array([1.0]))[0])


def test_performance_and_data_profiles(lin: Path) -> None:
    # tolerance 0.1 on task a: solved at best >= 10 - 0.1 * (10 - 0) = 9: fast at query 1, slow at query 4
    # (ratio 4), mid (8.5) and random never
    problems = read(lin, "profiles_problems").set_index(["task", "seed", "method"])
    assert problems.loc[("a", 0, "fast"), "solved_query"] == 1 and problems.loc[("a", 0, "slow"), "ratio"] == 4
    assert math.isinf(problems.loc[("a", 0, "mid"), "ratio"]) and math.isnan(problems.loc[("a", 0, "mid"),
                                                                                          "solved_query"])
    # task b: f_best 10 (slow) -> fast's 5.5 fails, slow alone solves it (ratio 1)
    assert problems.loc[("b", 1, "slow"), "ratio"] == 1
    perf = read(lin, "performance_profile").set_index(["method", "alpha"])["fraction"]
    assert perf[("fast", 1.0)] == pytest.approx(0.5) and perf[("slow", 1.0)] == pytest.approx(0.5)
    assert sorted(perf.xs("slow").index) == [1.0, 4.0, 8.0] and perf[("slow", 4.0)] == pytest.approx(1.0)
    assert perf[("mid", 8.0)] == 0 and perf.xs("fast").index.max() == 8.0  # runs on to twice the largest ratio
    data = read(lin, "data_profile").set_index(["method", "queries"])["fraction"]
    assert data[("fast", 0)] == 0 and data[("fast", 1)] == pytest.approx(0.5)
    assert data[("slow", 3)] == 0 and data[("slow", 4)] == pytest.approx(1.0)


def test_wall_time_budgets_and_overhead_share(lin: Path) -> None:
    wall = read(lin, "walltime").set_index(["task", "method", "column"])["mean"]
    assert wall[("a", "fast", W.budget_key(1.5))] == 0  # only the initial design by 1.5 s
    assert wall[("a", "fast", W.budget_key(3.5))] == 10 and wall[("a", "mid", W.budget_key(3.5))] == 4.5
    assert "best ≤ 3.5 s" in (lin / "report" / "walltime.md").read_text()
    cost = read(lin, "cost").set_index(["task", "method", "column"])["mean"]
    assert cost[("a", "mid", "overhead_share")] == pytest.approx(4 * 0.51 / 5.1)  # 4 proposals / 5.1 s total


def test_default_wall_budgets_span_the_runs() -> None:
    curves = pd.DataFrame({"task": "t", "method": ["m", "m", "n", "n"], "seed": 0, "query": [0, 1, 0, 1],
                           "best_so_far": 0.0, "elapsed_s": [0.5, 1.234, 0.5, 123.4]})
    budgets = W.default_budgets(curves)
    assert budgets[0] == 1.2 and budgets[-1] == 130 and len(budgets) == 4
    assert W.default_budgets(curves.iloc[:2]) == [1.3]


def test_realism_pareto_fronts(lin: Path) -> None:
    points = realism.realism_points(load_sweep(lin))
    assert set(points["panel"]) == {realism.PRIOR_PANEL} and set(points["task"]) == {"a"}
    seed0 = points[points["seed"] == 0]
    front = {(m, s) for m, s in zip(seed0["method"], seed0["score"]) if m in ("mid", "slow")}
    assert len(front) == 7  # slow's two (0, -0.5) queries are one point
    on = seed0[seed0["on_front"]]
    assert sorted(zip(on["method"], on["score"])) == [("mid", 2.5), ("mid", 4.5), ("mid", 6.5), ("mid", 8.5),
                                                       ("slow", 0.0), ("slow", 0.0), ("slow", 10.0)]
    # slow's own front keeps 5.5 (nothing of slow's beats it), the overall one does not (mid's 6.5 does)
    assert bool(seed0[(seed0["method"] == "slow") & (seed0["score"] == 5.5)]["on_method_front"].iloc[0])


def test_pareto_mask() -> None:
    mask = realism.pareto_mask(np.array([1.0, 2.0, 2.0, 3.0, 0.5]), np.array([5.0, 4.0, 1.0, 1.0, 5.0]))
    assert mask.tolist() == [True, True, False, True, False]


def test_coinciding_curves_are_named_in_the_legend() -> None:
    curve = {"query": [0, 1, 2], "best_so_far": [1.0, 2.0, 2.0]}
    data = pd.concat([pd.DataFrame({**curve, "method": m, "task": t}) for m in ("random", "skopt-rf", "evo")
                      for t in ("x", "y")], ignore_index=True)
    data.loc[(data["method"] == "evo") & (data["query"] == 2), "best_so_far"] = 3.0
    data.loc[(data["method"] == "evo") & (data["task"] == "y"), "best_so_far"] = [1.0, 2.0, 2.0]
    labels, notes = display_labels(data, "task", ["query", "best_so_far"])
    assert labels["skopt-rf"] == "skopt-rf (same curve as random)" and labels["random"] == "random"
    assert labels["evo"] == "evo" and notes == {"y": "identical curves: evo = random = skopt-rf"}
