"""The realism/score trade-off: how realistic the images behind high scores are, with Pareto fronts.

Two kinds of realism figures come from stored runs:

- set-level **FID** (else KID) of the top-n queried images at each run's final checkpoint
  (``metrics.parquet``, subset ``top``), against the mean score of those n images: one point
  per run and reference set; lower is more realistic;
- the per-query **prior log-likelihood** of the latent under the task's code prior (the
  ``prior_loglik`` record column, NaN when the task has none): one point per query; higher is
  more realistic.

A point is on the *front* when no other point of the same panel has a score at least as high
and a realism at least as good, one of them strictly better.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis import stats as A
from bench.analysis.aggregate import METHOD, RUN_KEYS, Sweep
from bench.core import constants as C

PANEL = "panel"  # what the realism axis measures, e.g. "FID vs reference-high"
REALISM = "realism"
LOWER_IS_BETTER = "lower_is_better"
ON_FRONT = "on_front"  # non-dominated among every method's points of the panel
ON_METHOD_FRONT = "on_method_front"  # non-dominated among the method's own points
PRIOR_PANEL = "prior log-likelihood"
COLUMNS = [C.TASK, PANEL, METHOD, C.SEED, C.QUERY, C.SCORE, REALISM, LOWER_IS_BETTER, C.METRIC_N, ON_FRONT,
           ON_METHOD_FRONT]


def pareto_mask(score: np.ndarray, realism: np.ndarray) -> np.ndarray:
    """True where (score, realism), both to maximize, is not dominated by another point."""
    order = np.lexsort((-realism, -score))  # by score, then realism, both descending
    mask = np.zeros(len(score), dtype=bool)
    best_realism = -np.inf
    last: tuple[float, float] | None = None
    for index in order:
        point = (float(score[index]), float(realism[index]))
        if point[1] > best_realism or point == last:  # equal points do not dominate each other
            mask[index] = True
            best_realism = max(best_realism, point[1])
            last = point
    return mask


def metric_points(sweep: Sweep) -> pd.DataFrame:
    """Per run and reference set at the final checkpoint: FID (else KID) of the top-n queries and their mean score."""
    final = A.final_metric_rows(sweep.metrics)
    if not len(final):
        return pd.DataFrame(columns=COLUMNS)
    top = final[final[C.METRIC_SUBSET] == A.MAIN_SUBSET]
    names = sorted(set(top[C.METRIC_NAME].astype(str)), key=lambda n: (n != "fid", n != "kid", n))
    if not names:
        return pd.DataFrame(columns=COLUMNS)
    queries = sweep.records[~sweep.records[C.IS_INIT]]
    by_run = {key: group for key, group in queries.groupby(RUN_KEYS, sort=False)}
    rows = []
    for _, m in top[top[C.METRIC_NAME] == names[0]].iterrows():
        run = by_run[(m[C.TASK], m[METHOD], m[C.SEED])]
        run = run[run[C.QUERY] <= m[C.METRIC_AT_QUERY]]
        n = int(m[C.METRIC_N]) if not pd.isna(m[C.METRIC_N]) else len(run)
        top_scores = np.sort(run[C.SCORE].to_numpy())[::-1][:n]
        rows.append({C.TASK: m[C.TASK], PANEL: f"{names[0].upper()} vs {m[C.METRIC_REFERENCE]}", METHOD: m[METHOD],
                     C.SEED: m[C.SEED], C.QUERY: int(m[C.METRIC_AT_QUERY]), C.SCORE: float(top_scores.mean()),
                     REALISM: float(m[C.METRIC_VALUE]), LOWER_IS_BETTER: True, C.METRIC_N: n})
    return pd.DataFrame(rows)


def prior_points(sweep: Sweep) -> pd.DataFrame:
    """Per optimizer query with a recorded prior log-likelihood: its score and log-likelihood."""
    records = sweep.records
    if C.PRIOR_LOGLIK not in records.columns:
        return pd.DataFrame(columns=COLUMNS)
    rows = records[~records[C.IS_INIT] & records[C.PRIOR_LOGLIK].notna()]
    return pd.DataFrame({C.TASK: rows[C.TASK], PANEL: PRIOR_PANEL, METHOD: rows[METHOD], C.SEED: rows[C.SEED],
                         C.QUERY: rows[C.QUERY], C.SCORE: rows[C.SCORE].astype(np.float64),
                         REALISM: rows[C.PRIOR_LOGLIK].astype(np.float64), LOWER_IS_BETTER: False, C.METRIC_N: 1})


def _mark_fronts(points: pd.DataFrame) -> pd.DataFrame:
    points = points.copy()
    points[ON_FRONT] = False
    points[ON_METHOD_FRONT] = False
    for keys, column in (([C.TASK, PANEL], ON_FRONT), ([C.TASK, PANEL, METHOD], ON_METHOD_FRONT)):
        for _, group in points.groupby(keys, sort=False):
            sign = np.where(group[LOWER_IS_BETTER].to_numpy(bool), -1.0, 1.0)
            mask = pareto_mask(group[C.SCORE].to_numpy(np.float64), sign * group[REALISM].to_numpy(np.float64))
            points.loc[group.index, column] = mask
    return points


def realism_points(sweep: Sweep) -> pd.DataFrame:
    """Every realism/score point of the sweep (see the module docstring) with both front marks, sorted."""
    parts = [p for p in (metric_points(sweep), prior_points(sweep)) if len(p)]
    if not parts:
        return pd.DataFrame(columns=COLUMNS)
    points = pd.concat(parts, ignore_index=True)
    points = _mark_fronts(points)[COLUMNS]
    return points.sort_values([C.TASK, PANEL, METHOD, C.SEED, C.QUERY], kind="stable").reset_index(drop=True)
