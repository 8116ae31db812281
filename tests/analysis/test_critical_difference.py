"""Friedman test, Wilcoxon–Holm post-hoc and cliques on constructed (task, seed) blocks.

Ten blocks (2 tasks x 5 seeds), block b: A = 100 + 2b², B = 50 + b, C = 10 + 0.1b + (1 if b is
even), D = 10 + 0.1b + (1 if b is odd). So A ranks 1 and B 2 in every block, C and D alternate
3 and 4: mean ranks 1, 2, 3.5, 3.5, and Friedman's statistic is (no ties within blocks)
12N / (k(k+1)) * sum(R_j²) - 3N(k+1) = 6 * (1 + 4 + 12.25 + 12.25) - 150 = 27 on 3 degrees of
freedom. Every pair but (C, D) has ten same-signed differences of distinct sizes: exact
two-sided p = 2 / 2^10, times at most 6 by Holm = 0.0117 < 0.05. C - D alternates ±1: p = 1.
Cliques: {A}, {B}, {C, D}.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.analysis import critical_difference as D
from bench.analysis import report as R
from bench.testing import runs as S
from bench.analysis.tables import clique_letters


def block_frame() -> pd.DataFrame:
    rows = []
    for b in range(10):
        task, seed = ("t1", b) if b < 5 else ("t2", b - 5)
        values = {"A": 100 + 2 * b**2, "B": 50 + b, "C": 10 + 0.1 * b + (b % 2 == 0), "D": 10 + 0.1 * b + (b % 2 == 1)}
        rows += [{"task": task, "seed": seed, "method": m, "best_100": float(v)} for m, v in values.items()]
    return pd.DataFrame(rows)


def test_friedman_posthoc_and_cliques_on_a_constructed_case() -> None:
    test = D.rank_test(block_frame(), "best_100")
    assert test is not None and test.blocks == 10
    assert test.mean_ranks.to_dict() == {"A": 1.0, "B": 2.0, "C": 3.5, "D": 3.5}
    assert test.statistic == pytest.approx(27.0)
    assert test.p_value == pytest.approx(stats.chi2.sf(27.0, 3))
    assert test.posthoc_applied
    assert test.p_pairs.loc["A", "B"] == pytest.approx(6 * 2 / 1024)  # Holm: smallest of 6 tests x 6
    assert test.p_pairs.loc["B", "D"] < 0.05 and test.p_pairs.loc["C", "D"] == pytest.approx(1.0)
    assert test.cliques == (("A",), ("B",), ("C", "D"))
    assert clique_letters(test) == {"A": "a", "B": "b", "C": "c", "D": "c"}


def test_lower_is_better_reverses_the_ranks() -> None:
    test = D.rank_test(block_frame(), "best_100", higher_is_better=False)
    assert test is not None and test.mean_ranks.index[0] in ("C", "D") and test.mean_ranks["A"] == 4.0


def test_no_posthoc_when_friedman_does_not_reject() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame([{"task": "t", "seed": s, "method": m, "best_100": float(rng.normal())}
                          for s in range(4) for m in ("x", "y", "z")])
    test = D.rank_test(frame, "best_100")
    assert test is not None and test.p_value >= 0.05 and not test.posthoc_applied
    assert test.cliques == (tuple(test.mean_ranks.index),)  # one group of every method
    assert (test.significance().to_numpy() == 1).all()


def test_incomplete_blocks_are_dropped_and_small_cases_skipped() -> None:
    frame = block_frame()
    frame = frame[~((frame["task"] == "t1") & (frame["seed"] == 0) & (frame["method"] == "C"))]
    test = D.rank_test(frame, "best_100")
    assert test is not None and test.blocks == 9
    assert D.rank_test(frame[frame["method"].isin(["A", "B"])], "best_100") is None  # Friedman needs 3 methods


def test_ranks_table_and_pairs_in_the_report(tmp_path: Path) -> None:
    sweep = tmp_path / "cd"
    frame = block_frame()
    for (task, seed, method), value in frame.set_index(["task", "seed", "method"])["best_100"].items():
        S.write_run(sweep, S.SyntheticRun(task, method, int(seed), [0.0], [value], optimizer=f"opt-{method}"))
    R.write_report(sweep, figures=False)
    ranks = pd.read_csv(sweep / "report" / "ranks.csv")
    final = ranks[ranks["measure"] == "best_100"].set_index("method")
    assert final.loc["A", "mean_rank"] == 1.0 and final.loc["C", "cliques"] == "C+D"
    assert final.loc["A", "friedman_p"] == pytest.approx(stats.chi2.sf(27.0, 3))
    pairs = pd.read_csv(sweep / "report" / "ranks_pairs.csv")
    assert pairs[(pairs["measure"] == "best_100")]["different"].sum() == 5
    text = (sweep / "report" / "report.md").read_text()
    assert "groups of methods no test separates: {A}; {B}; {C, D}" in text
