"""Anytime views of a sweep: how far each method gets at every budget, over many problems at once.

Everything here is computed from the stored records of complete runs, one curve per run with a
point per optimizer query (query 0 = the initial design):

- **normalized score** ``z``: 0 at the task's random-search reference, 1 at the best score any
  run found on the task (the bounds come from :func:`bench.analysis.stats.normalization_bounds`);
- **runtime ECDFs** (COCO style): :data:`N_TARGETS` targets evenly spaced in ``z`` from 0 to 1;
  a (run, target) pair is *reached* at the first query (and the recorded wall time) where the
  run's best-so-far ``z`` is at least the target; the ECDF is the fraction of pairs reached
  within a budget;
- **performance profiles** (Dolan & Moré 2002) and **data profiles** (Moré & Wild 2009) over
  (task, seed) problems with the convergence test ``best >= f_best - tau * (f_best - f_0)``;
- **areas under the curve**: the mean over queries 1..budget of the normalized best-so-far,
  and of the normalized mean of the 10 best scores so far (PMO's "AUC top-10").
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from bench.analysis.aggregate import METHOD, RUN_KEYS
from bench.core import constants as C

#: targets of the runtime ECDFs: evenly spaced normalized scores 0, 0.02, ..., 1
N_TARGETS = 51
#: tolerance of the profiles' convergence test (the fraction of the best possible improvement
#: over the initial design that may be missed)
TAU = 0.1
#: how many of the best scores PMO's AUC averages
TOP_K = 10
#: label of the pooled facet of the ECDFs
ALL_TASKS = "all tasks"

TOP_MEAN = "top_mean"  # mean of the TOP_K best scores so far
Z_BEST = "z_best"  # normalized best so far
Z_TOP = "z_top"  # normalized top-k mean
TARGET = "target"
HIT_QUERY = "hit_query"
HIT_SECONDS = "hit_seconds"
FRACTION = "fraction"
RATIO = "ratio"
SOLVED_QUERY = "solved_query"
AUC = "auc"
AUC_TOP = "auc_top10"

Bounds = Mapping[str, tuple[float, float]]


def targets(n: int = N_TARGETS) -> np.ndarray:
    """The ECDF targets in normalized score: ``n`` evenly spaced values from 0 to 1."""
    return np.linspace(0.0, 1.0, n)


# --- per-run curves ---------------------------------------------------------------------------


def _running_top_mean(scores: np.ndarray, k: int) -> np.ndarray:
    """Mean of the ``k`` largest values among ``scores[: i + 1]`` for every i (fewer while i < k)."""
    heap: list[float] = []
    total = 0.0
    out = np.empty(len(scores))
    for i, score in enumerate(scores):
        if len(heap) < k:
            heapq.heappush(heap, score)
            total += score
        elif score > heap[0]:
            total += score - heapq.heapreplace(heap, score)
        out[i] = total / len(heap)
    return out


def _with_run_keys(part: pd.DataFrame, key: tuple) -> pd.DataFrame:
    """``part`` with the run's task, method and seed as its first columns."""
    for i, (name, value) in enumerate(zip(RUN_KEYS, key)):
        part.insert(i, name, value)
    return part


def query_curves(records: pd.DataFrame, top_k: int = TOP_K) -> pd.DataFrame:
    """One row per (run, query), query 0 = the initial design, never thinned.

    Columns: task, method, seed, query, best_so_far, elapsed_s, top_mean (mean of the ``top_k``
    best scores of the initial design and the queries so far).
    """
    columns = RUN_KEYS + [C.QUERY, C.BEST_SO_FAR, C.ELAPSED_S, TOP_MEAN]
    if not len(records):
        return pd.DataFrame({col: pd.Series(dtype=object) for col in columns})
    parts = []
    for key, run in records.sort_values(RUN_KEYS + [C.EVAL], kind="stable").groupby(RUN_KEYS, sort=True):
        top = _running_top_mean(run[C.SCORE].to_numpy(np.float64), top_k)
        last = ~run[C.QUERY].duplicated(keep="last").to_numpy()  # the state after each query's last row
        part = pd.DataFrame({C.QUERY: run[C.QUERY].to_numpy()[last], C.BEST_SO_FAR: run[C.BEST_SO_FAR].to_numpy()[last],
                             C.ELAPSED_S: run[C.ELAPSED_S].to_numpy()[last], TOP_MEAN: top[last]})
        parts.append(_with_run_keys(part, key))
    return pd.concat(parts, ignore_index=True)[columns]


def normalize(curves: pd.DataFrame, bounds: Bounds) -> pd.DataFrame:
    """``curves`` with ``z_best`` and ``z_top``; rows of tasks without bounds are dropped."""
    out = curves[curves[C.TASK].isin(list(bounds))].copy()
    zero = out[C.TASK].map(lambda t: bounds[t][0]).astype(np.float64)
    span = out[C.TASK].map(lambda t: bounds[t][1] - bounds[t][0]).astype(np.float64)
    out[Z_BEST] = (out[C.BEST_SO_FAR] - zero) / span
    out[Z_TOP] = (out[TOP_MEAN] - zero) / span
    return out.reset_index(drop=True)


def run_aucs(curves: pd.DataFrame, bounds: Bounds) -> pd.DataFrame:
    """Per run: ``auc`` (mean normalized best-so-far over queries 1..budget) and ``auc_top10``.

    Each is the area under a step curve divided by the budget: 1 means the run held the task's
    best known score from its first query on; 0 means it never beat random search's median.
    """
    z = normalize(curves, bounds)
    z = z[z[C.QUERY] > 0]
    out = z.groupby(RUN_KEYS, sort=True).agg(**{AUC: (Z_BEST, "mean"), AUC_TOP: (Z_TOP, "mean")}).reset_index()
    return out


# --- runtime ECDFs ----------------------------------------------------------------------------


def first_hits(curves: pd.DataFrame, bounds: Bounds, n_targets: int = N_TARGETS) -> pd.DataFrame:
    """One row per (run, target): the first query and wall time at which the run reached it (NaN: never)."""
    z = normalize(curves, bounds)
    levels = targets(n_targets)
    parts = []
    for key, run in z.groupby(RUN_KEYS, sort=True):
        best = np.maximum.accumulate(run[Z_BEST].to_numpy())  # already monotone; guards float noise
        index = np.searchsorted(best, levels, side="left")
        reached = index < len(best)
        safe = np.minimum(index, len(best) - 1)
        part = pd.DataFrame({TARGET: levels,
                             HIT_QUERY: np.where(reached, run[C.QUERY].to_numpy()[safe], np.nan),
                             HIT_SECONDS: np.where(reached, run[C.ELAPSED_S].to_numpy()[safe], np.nan)})
        parts.append(_with_run_keys(part, key))
    if not parts:
        return pd.DataFrame(columns=RUN_KEYS + [TARGET, HIT_QUERY, HIT_SECONDS])
    return pd.concat(parts, ignore_index=True)


def _ecdf_at(hits: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Fraction of ``hits`` (NaN = never) that are <= each value of ``grid``."""
    reached = np.sort(hits[~np.isnan(hits)])
    return np.searchsorted(reached, grid, side="right") / max(len(hits), 1)


def _pooled(hits: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(facet, rows) per task, plus the pool of every task when there are several."""
    facets = [(str(task), rows) for task, rows in hits.groupby(C.TASK, sort=True)]
    return facets + ([(ALL_TASKS, hits)] if len(facets) > 1 else [])


def ecdf_queries(hits: pd.DataFrame, last_query: int) -> pd.DataFrame:
    """Fraction of (run, target) pairs reached within q queries, q = 0..``last_query``.

    Columns: task (a task, or ``all tasks`` pooling every (task, seed, target)), method, query,
    fraction.
    """
    rows = []
    grid = np.arange(last_query + 1, dtype=np.float64)
    for facet, group in _pooled(hits):
        for method, mine in group.groupby(METHOD, sort=True):
            rows.append(pd.DataFrame({C.TASK: facet, METHOD: method, C.QUERY: grid.astype(int),
                                      FRACTION: _ecdf_at(mine[HIT_QUERY].to_numpy(np.float64), grid)}))
    return _concat(rows, [C.TASK, METHOD, C.QUERY, FRACTION])


def ecdf_seconds(hits: pd.DataFrame) -> pd.DataFrame:
    """Fraction of (run, target) pairs reached within t seconds of wall time, at every time a pair
    was reached (an exact step function). Columns: task, method, elapsed_s, fraction."""
    rows = []
    for facet, group in _pooled(hits):
        grid = np.unique(group[HIT_SECONDS].dropna().to_numpy(np.float64))
        for method, mine in group.groupby(METHOD, sort=True):
            rows.append(pd.DataFrame({C.TASK: facet, METHOD: method, C.ELAPSED_S: grid,
                                      FRACTION: _ecdf_at(mine[HIT_SECONDS].to_numpy(np.float64), grid)}))
    return _concat(rows, [C.TASK, METHOD, C.ELAPSED_S, FRACTION])


def _concat(parts: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


# --- performance and data profiles ----------------------------------------------------------------


def solve_times(curves: pd.DataFrame, tau: float = TAU) -> pd.DataFrame:
    """Per (task, seed) problem and method: the first query passing the convergence test.

    The test (Moré & Wild 2009, for maximization): ``best_so_far >= f_best - tau * (f_best - f_0)``
    with ``f_0`` the best score of the problem's initial design (the smallest over methods, which
    share it when the initial design depends only on task and seed) and ``f_best`` the best final
    score of any method on the problem. The performance measure is the number of optimizer
    queries needed, at least 1 (the shared initial design is not counted: it would only shrink
    every ratio towards 1). Columns: task, seed, method, solved_query (NaN: never) and ratio (the
    queries needed over the fewest of any method on the problem; inf when unsolved).
    """
    columns = [C.TASK, C.SEED, METHOD, SOLVED_QUERY, RATIO]
    if not len(curves):
        return pd.DataFrame(columns=columns)
    rows = []
    for (task, seed), problem in curves.groupby([C.TASK, C.SEED], sort=True):
        f0 = float(problem.loc[problem[C.QUERY] == 0, C.BEST_SO_FAR].min())
        f_best = float(problem[C.BEST_SO_FAR].max())
        threshold = f_best - tau * (f_best - f0)
        for method, run in problem.groupby(METHOD, sort=True):
            passed = run.loc[run[C.BEST_SO_FAR] >= threshold, C.QUERY]
            rows.append({C.TASK: task, C.SEED: seed, METHOD: method,
                         SOLVED_QUERY: float(passed.min()) if len(passed) else math.nan})
    out = pd.DataFrame(rows)
    needed = out[SOLVED_QUERY].clip(lower=1.0)
    out[RATIO] = (needed / needed.groupby([out[C.TASK], out[C.SEED]]).transform("min")).fillna(math.inf)
    return out[columns]


def _profile(values: pd.DataFrame, column: str, grid: np.ndarray, x_name: str) -> pd.DataFrame:
    """Fraction of each method's problems whose ``column`` is <= each grid value."""
    rows = [pd.DataFrame({METHOD: method, x_name: grid,
                          FRACTION: _ecdf_at(mine[column].replace(math.inf, math.nan).to_numpy(np.float64), grid)})
            for method, mine in values.groupby(METHOD, sort=True)]
    return _concat(rows, [METHOD, x_name, FRACTION])


def performance_profile(solved: pd.DataFrame) -> pd.DataFrame:
    """Dolan–Moré profile: per method, the fraction of problems with performance ratio <= alpha, at
    alpha = 1, every finite ratio observed and twice the largest (an exact step function that
    extends past its last step). Columns: method, alpha, fraction."""
    finite = solved[RATIO].replace(math.inf, math.nan).dropna().to_numpy(np.float64)
    end = 2.0 * max(finite.max(initial=1.0), 1.0)
    grid = np.unique(np.concatenate([[1.0], finite, [end]]))
    return _profile(solved, RATIO, grid, "alpha")


def data_profile(solved: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Moré–Wild data profile: per method, the fraction of problems solved within kappa optimizer
    queries, kappa = 0..budget. Columns: method, queries, fraction."""
    return _profile(solved, SOLVED_QUERY, np.arange(budget + 1, dtype=np.float64), "queries")
