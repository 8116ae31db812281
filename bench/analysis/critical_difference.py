"""Which methods can be told apart over all (task, seed) problems: Friedman, then Wilcoxon–Holm.

Each (task, seed) problem is a block; within it, methods are ranked by a per-run figure (1 =
best, ties share the average rank). Only blocks where every method has a value enter. The
Friedman test (``scipy.stats.friedmanchisquare``) asks whether any method ranks differently from
the others; only if it rejects at ``alpha`` are pairs compared: a two-sided paired Wilcoxon
signed-rank test per pair of methods over the blocks (``scipy.stats.wilcoxon``), with Holm's
correction over all pairs (Benavoli, Corani & Mangili 2016 recommend this over Nemenyi's test,
whose verdict on two methods depends on the other methods compared). Methods that no corrected
test separates form *cliques*: the maximal sets of pairwise indistinguishable methods, the bars
of Demšar's (2006) critical-difference diagram.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from bench.analysis.aggregate import METHOD
from bench.analysis.stats import ALPHA, holm
from bench.core import constants as C

#: the post-hoc procedure, as stated in the report
POSTHOC = "two-sided paired Wilcoxon signed-rank tests, Holm-corrected over all pairs"
NO_TEST = ("No critical-difference analysis: it needs at least 3 methods and 2 (task, seed) problems that every "
           "method completed.")


@dataclass(frozen=True)
class RankTest:
    """The outcome of :func:`rank_test` on one per-run figure."""

    measure: str
    blocks: int  # (task, seed) problems with a value for every method
    mean_ranks: pd.Series  # method -> mean rank (1 = best), ascending
    statistic: float  # Friedman chi-square
    p_value: float  # Friedman p-value
    p_pairs: pd.DataFrame  # method x method Holm-corrected p-values (1 on the diagonal)
    posthoc_applied: bool  # False when Friedman did not reject: every method in one clique
    cliques: tuple[tuple[str, ...], ...]  # maximal indistinguishable sets, by best mean rank
    alpha: float = ALPHA

    def significance(self) -> pd.DataFrame:
        """The p-value matrix the diagram draws from: the pairs' p-values, or all 1 without post-hoc."""
        return _effective(self.p_pairs, self.posthoc_applied)


def _effective(p_pairs: pd.DataFrame, applied: bool) -> pd.DataFrame:
    return p_pairs if applied else pd.DataFrame(1.0, index=p_pairs.index, columns=p_pairs.columns)


def blocks(frame: pd.DataFrame, measure: str) -> pd.DataFrame:
    """(task, seed) x method values of ``measure``, keeping only the blocks every method completed."""
    wide = frame.pivot_table(index=[C.TASK, C.SEED], columns=METHOD, values=measure, aggfunc="first", dropna=False)
    wide = wide.reindex(columns=sorted(frame[METHOD].unique()))
    return wide.dropna(axis=0, how="any")


def pairwise_wilcoxon(wide: pd.DataFrame) -> pd.DataFrame:
    """Holm-corrected two-sided paired Wilcoxon p-values of every pair of columns (1: all differences zero)."""
    methods = list(wide.columns)
    pairs = list(itertools.combinations(range(len(methods)), 2))
    raw = []
    for i, j in pairs:
        diff = wide.iloc[:, i].to_numpy(np.float64) - wide.iloc[:, j].to_numpy(np.float64)
        raw.append(1.0 if np.all(diff == 0) else
                   float(stats.wilcoxon(diff, zero_method="wilcox", alternative="two-sided").pvalue))
    matrix = np.ones((len(methods), len(methods)))
    for (i, j), p in zip(pairs, holm(raw)):
        matrix[i, j] = matrix[j, i] = p
    return pd.DataFrame(matrix, index=methods, columns=methods)


def cliques(p_pairs: pd.DataFrame, mean_ranks: pd.Series, alpha: float) -> tuple[tuple[str, ...], ...]:
    """Maximal sets of methods whose every pair has a corrected p-value >= ``alpha``.

    Each clique lists its methods by mean rank; cliques are ordered by their best mean rank.
    Singletons are included (a method distinguishable from every other forms its own clique).
    """
    import networkx as nx  # imported here: only reports need it, not every ``bench`` command

    graph = nx.Graph()
    graph.add_nodes_from(p_pairs.index)
    graph.add_edges_from((a, b) for a, b in itertools.combinations(p_pairs.index, 2) if p_pairs.loc[a, b] >= alpha)
    found = [tuple(sorted(c, key=lambda m: (mean_ranks[m], m))) for c in nx.find_cliques(graph)]
    return tuple(sorted(found, key=lambda c: (mean_ranks[c[0]], mean_ranks[c[-1]], c)))


def rank_test(frame: pd.DataFrame, measure: str, higher_is_better: bool = True, alpha: float = ALPHA) -> RankTest | None:
    """Friedman test and Wilcoxon–Holm post-hoc of ``measure`` over (task, seed) blocks.

    None when there are fewer than 3 methods or fewer than 2 complete blocks (Friedman's test
    needs both).
    """
    if measure not in frame.columns:
        return None
    wide = blocks(frame, measure)
    if wide.shape[1] < 3 or wide.shape[0] < 2:
        return None
    ranks = wide.rank(axis=1, ascending=not higher_is_better, method="average")
    mean_ranks = ranks.mean(axis=0).sort_values(kind="stable")
    if np.all(wide.to_numpy() == wide.to_numpy()[:, :1]):  # every block a complete tie: nothing to test
        statistic, p_value = 0.0, 1.0
    else:
        result = stats.friedmanchisquare(*(wide[m].to_numpy(np.float64) for m in wide.columns))
        statistic, p_value = float(result.statistic), float(result.pvalue)
    p_pairs = pairwise_wilcoxon(wide)
    applied = not math.isnan(p_value) and p_value < alpha
    return RankTest(measure, int(wide.shape[0]), mean_ranks, statistic, p_value, p_pairs, applied,
                    cliques(_effective(p_pairs, applied), mean_ranks, alpha), alpha)


def summary_frame(tests: list[RankTest]) -> pd.DataFrame:
    """Tidy rows for CSV: one per (measure, method) with the mean rank, the Friedman result and the
    method's cliques (``;``-separated, each clique ``+``-joined)."""
    rows = []
    for test in tests:
        for method, rank in test.mean_ranks.items():
            mine = [c for c in test.cliques if method in c]
            rows.append({"measure": test.measure, METHOD: method, "mean_rank": float(rank), "blocks": test.blocks,
                         "friedman_chi2": test.statistic, "friedman_p": test.p_value,
                         "posthoc_applied": test.posthoc_applied, "alpha": test.alpha,
                         "cliques": ";".join("+".join(c) for c in mine)})
    return pd.DataFrame(rows)


def pairs_frame(tests: list[RankTest]) -> pd.DataFrame:
    """Tidy rows for CSV: one per (measure, pair of methods) with the Holm-corrected p-value."""
    rows = []
    for test in tests:
        methods = list(test.p_pairs.index)
        for a, b in itertools.combinations(methods, 2):
            p = float(test.p_pairs.loc[a, b])
            rows.append({"measure": test.measure, "method_a": a, "method_b": b, "p_holm": p,
                         "different": bool(test.posthoc_applied and p < test.alpha)})
    return pd.DataFrame(rows)


def describe(tests: list[RankTest], titles: dict[str, str]) -> list[str]:
    """One paragraph per measure: the Friedman result and the groups of indistinguishable methods."""
    if not tests:
        return [NO_TEST, ""]
    lines = [f"Friedman test over (task, seed) problems, then {POSTHOC} (α = {tests[0].alpha:g}), only when "
             "Friedman rejects. Groups: the maximal sets of methods whose every pair is not significantly "
             "different (the bars of the critical-difference diagram). Pairwise p-values: `ranks_pairs.csv`.", ""]
    for test in tests:
        groups = "; ".join("{" + ", ".join(c) + "}" for c in test.cliques)
        verdict = ("groups of methods no test separates: " + groups if test.posthoc_applied else
                   "Friedman does not reject, so no pair is tested and all methods form one group")
        lines.append(f"- {titles.get(test.measure, test.measure)} over {test.blocks} problems: Friedman "
                     f"χ² = {test.statistic:.3g}, p = {test.p_value:.3g}; {verdict}.")
    return lines + [""]
