"""``bench perf acquisition`` and ``bench perf paper``: their cases and summaries (the long runs are benchmarks)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.cli.common import key_values
from bench.cli.perf_acquisition import CASES, Case, _case_data, perf_main, run_case
from bench.cli.perf_paper import PAPER_QUERIES, paper_config, retrainings, summarize
from bench.core.errors import UserError


def test_clustered_codes_use_few_codes_per_position() -> None:
    random, _ = _case_data(400, 0, 4, 4, 64, "random")
    clustered, scores = _case_data(400, 0, 4, 4, 64, "clustered")
    assert clustered.shape == random.shape == (400, 16) and scores.shape == (400,)
    distinct = lambda X: np.mean([len(np.unique(X[:, p])) for p in range(X.shape[1])])  # noqa: E731
    assert distinct(clustered) <= 16 < distinct(random)


def test_paper_size_cases_are_listed() -> None:
    sizes = {(c.n, c.trees, c.depth, c.codes) for c in CASES.values()}
    for n in (2000, 10000):
        for codes in ("random", "clustered"):
            assert (n, 800, 2, codes) in sizes
    assert {(2000, trees, depth, "random") for trees in (400, 800) for depth in (3, 4)} <= sizes
    assert {(2000, 800, 2, "encodings"), (10000, 800, 2, "encodings")} <= sizes


def test_encodings_cases_use_the_tasks_own_initial_design() -> None:
    from bench.core import registry

    latents, scores = _case_data(30, 1, 8, 8, 256, "encodings")
    init = registry.task_spec("smile-synthetic").build().initial_data(1, 30)
    assert np.array_equal(latents, init.latents.reshape(30, -1)) and np.array_equal(scores, init.scores)


@pytest.mark.parametrize("route", ["direct", "levels"])
def test_small_case_is_solved_to_optimality_without_entmoot(route: str) -> None:
    row = run_case("tiny", Case(60, 15, 2, 5), 0, beta=1.96, time_limit=None, max_nodes=None, mip_gap=1e-4,
                   with_entmoot=False, route=route, height=3, width=3, codes=16)
    assert row["optimal"] and row["ours_status"] == "Optimal" and row["ours_gap"] <= 1e-4 and row["route"] == route
    assert row["entmoot_status"] == "ENTMOOT could not build" and not row["ours_time_limited"]


def test_unknown_case_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown case"):
        perf_main("acquisition", ["--cases", "nope"])


def test_paper_summary_amortises_retraining_and_projects_500_queries_from_the_mean() -> None:
    # one slow query (70 s) leaves the median alone but weighs in full on a seed's total; a
    # 10-query run retrains once (after query 5, none after the last), 500 queries 99 times
    parts = [{"fit_s": 2.0, "build_s": 1.0, "solve_s": 66.0 if q == 3 else 3.0, "propose_s": 70.0 if q == 3 else 7.0,
              "decode_score_s": 0.5, "retrain_s": 10.0 if q == 4 else 0.0, "status": "Optimal", "gap": 0.0,
              "step_s": 8.0, "step_cpu_s": 7.5} for q in range(10)]
    config = paper_config(10, 10_000, 0, "smile-synthetic")
    assert (retrainings(10, 5), retrainings(20, 5), retrainings(PAPER_QUERIES, 5), retrainings(5, 5)) == (1, 3, 99, 0)
    summary = summarize(parts, 60.0, config)
    assert summary["retrainings_timed"] == 1 and summary["retrain_s_mean"] == pytest.approx(10.0)
    assert summary["retrain_s_per_query_amortised"] == pytest.approx(10.0 * 99 / 500)
    assert summary["median_s_per_query"] == pytest.approx(7.5 + 1.98)
    assert summary["mean_s_per_query"] == pytest.approx(13.3 + 0.5 + 1.98)
    assert summary["max_solve_s"] == pytest.approx(66.0)
    assert summary["projected_hours_500_queries"] == pytest.approx((60.0 + PAPER_QUERIES * 15.78) / 3600)
    # without the solves (mean 9.3 s) the loop still costs fit, build, ascent, decode and retraining
    assert summary["projected_hours_500_queries_without_solve"] == pytest.approx((60.0 + PAPER_QUERIES * 6.48) / 3600)
    assert summary["statuses"] == {"Optimal": 10}
    json.dumps(summary)
    assert config.optimizer == "lgbm-milp/paper" and config.retrain.every == 5


def test_paper_summary_without_a_timed_retraining_projects_nothing() -> None:
    parts = [{"fit_s": 2.0, "build_s": 1.0, "solve_s": 3.0, "propose_s": 7.0, "decode_score_s": 0.5,
              "retrain_s": 0.0, "status": "Optimal", "gap": 0.0, "step_s": 8.0, "step_cpu_s": 7.5} for _ in range(3)]
    summary = summarize(parts, 60.0, paper_config(3, 10_000, 0, "smile-synthetic"))
    assert summary["retrainings_timed"] == 0
    assert summary["retrain_s_per_query_amortised"] is None and summary["projected_hours_500_queries"] is None
    assert summary["projected_hours_500_queries_without_solve"] is None
    assert summary["median_s_per_query"] == pytest.approx(7.5)


def test_paper_overrides_reach_the_optimizer_and_bad_ones_are_named() -> None:
    config = paper_config(3, 100, 0, "smile-synthetic", key_values(["route=levels"], "--opt"))
    assert config.optimizer_params == {"route": "levels"}
    assert paper_config(3, 100, 0, "smile-synthetic").optimizer_params == {}
    with pytest.raises(UserError, match="no_such_parameter"):
        paper_config(3, 100, 0, "smile-synthetic", {"no_such_parameter": 1})
