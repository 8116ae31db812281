"""Statistics of a sweep: per-run figures, then mean ± standard error over seeds per (task, method).

Every figure is first computed per complete run (one value per seed), then summarised. The
best method per (task, column) is the best mean; every other method is tested against it with
a one-sided paired Wilcoxon signed-rank test over the seeds both ran (``scipy.stats.wilcoxon``),
and the p-values of one (task, column) are Holm-corrected. A method whose corrected p-value is
at least ``alpha`` is "not significantly worse" than the best. With n paired seeds the smallest
possible one-sided p-value is 2^-n, so fewer than 5 seeds can never reject at alpha = 0.05:
the marks then say only that the seeds are too few to tell methods apart.

The normalized score of a task runs from 0 at the median final best of random search (on a task
without random search: the median best of the initial designs) to 1 at the best final score of
any run; :func:`normalization_bounds` gives both ends, which the anytime views share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from bench.analysis import anytime
from bench.analysis.aggregate import METHOD, OPTIMIZER_NAME, RUN_KEYS, Sweep
from bench.core import constants as C

ALPHA = 0.05
FRACTIONS = (0.25, 0.5, 1.0)
#: the baseline that defines 0 of the normalized score
RANDOM_OPTIMIZER = "random"
#: metric subset shown in the main quality columns (``top``: the best-scoring queried images)
MAIN_SUBSET = "top"

# per-run column names
FINAL_BEST = "best_100"
HELDOUT = "heldout"
NORMALIZED = "normalized"
RANK = "rank"
SECONDS_PER_PROPOSAL = "s_per_proposal"
DUPLICATES = "duplicates"
FALLBACKS = "fallbacks"
FINAL_QUERY = "final_query"
INIT_BEST = "best_0"  # best score of the initial design
OVERHEAD = "overhead_share"  # propose time / the run's total wall time
AUC = anytime.AUC
AUC_TOP = anytime.AUC_TOP

# summary columns
MEAN, SE, N, IS_BEST, NOT_WORSE, P_HOLM = "mean", "se", "n", "is_best", "not_worse", "p_holm"
CI_LOW, CI_HIGH = "ci_low", "ci_high"
#: bootstrap resamples, seed and confidence level of every interval (seeded: same runs, same intervals)
N_BOOT = 1000
BOOT_SEED = 0
CONFIDENCE = 0.95
COLUMN = "column"


@dataclass(frozen=True)
class Column:
    """One statistic: its per-run column, its header and whether larger values are better."""

    key: str
    title: str
    higher_is_better: bool


def fraction_key(fraction: float) -> str:
    """Per-run column of the best score after ``fraction`` of the budget, e.g. ``best_25``."""
    return f"best_{round(fraction * 100)}"


SCORE_COLUMNS = [Column(fraction_key(f), f"best@{round(f * 100)}%", True) for f in FRACTIONS] + [
    Column(HELDOUT, "held-out of best", True),
    Column(NORMALIZED, "normalized", True),
    Column(RANK, "avg. rank", False),
]
#: the anytime table: final best next to the areas under the curve (normalized units)
ANYTIME_COLUMNS = [
    Column(FINAL_BEST, "final best", True),
    Column(NORMALIZED, "normalized final", True),
    Column(AUC, "AUC best-so-far", True),
    Column(AUC_TOP, "AUC top-10 mean", True),
]
COST_COLUMNS = [
    Column(SECONDS_PER_PROPOSAL, "s/proposal", False),
    Column(OVERHEAD, "propose share of wall time", False),
    Column(DUPLICATES, "duplicates", False),
    Column(FALLBACKS, "fallbacks", False),
]


def metric_key(metric: str, subset: str, reference: str) -> str:
    """Per-run column of a set-level metric at the final checkpoint, e.g. ``fid_top@reference-high``."""
    return f"{metric}_{subset}@{reference}"


def reportable_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    """Metric rows that may be reported (rows flagged ``reportable = False``, e.g. from unverified
    Inception weights, are not FID and are dropped)."""
    if "reportable" not in metrics.columns or not len(metrics):
        return metrics
    return metrics[metrics["reportable"].fillna(True).astype(bool)].reset_index(drop=True)


def metric_groups(metrics: pd.DataFrame) -> list[tuple[str, str, list[Column]]]:
    """(subset, reference, one Column per metric name) for every subset/reference pair, main subset
    first; lower is better for every metric."""
    final = final_metric_rows(metrics)
    if not len(final):
        return []
    out = []
    pairs = sorted(set(zip(final[C.METRIC_SUBSET].astype(str), final[C.METRIC_REFERENCE].astype(str))),
                   key=lambda p: (p[0] != MAIN_SUBSET, p[0], p[1]))
    for subset, reference in pairs:
        rows = final[(final[C.METRIC_SUBSET] == subset) & (final[C.METRIC_REFERENCE] == reference)]
        names = sorted(set(rows[C.METRIC_NAME].astype(str)), key=lambda n: (n != "fid", n))
        out.append((subset, reference, [Column(metric_key(n, subset, reference), n.upper(), False) for n in names]))
    return out


# --- per-run figures ------------------------------------------------------------------------


def _best_at(run: pd.DataFrame, budget: int, fraction: float) -> float:
    """Best score among the initial design and the first ``ceil(fraction * budget)`` queries."""
    limit = math.ceil(fraction * budget - 1e-9)
    return float(run.loc[run[C.QUERY] <= limit, C.SCORE].max())


def _run_row(run: pd.Series, rec: pd.DataFrame) -> dict[str, object]:
    """The statistics of one complete run from its records."""
    queries = rec[~rec[C.IS_INIT]]
    best_row = rec.loc[rec[C.SCORE].idxmax()]  # idxmax: first of equal maxima, the earliest
    # propose_s is per batch: count it once per batch
    propose_total = float(queries.groupby(C.BATCH)[C.PROPOSE_S].first().sum())
    wall_total = float(rec[C.ELAPSED_S].max())
    row: dict[str, object] = {key: run[key] for key in RUN_KEYS}
    row[OPTIMIZER_NAME] = run[OPTIMIZER_NAME]
    row[INIT_BEST] = _best_at(rec, int(run["budget"]), 0.0)
    row.update({fraction_key(f): _best_at(rec, int(run["budget"]), f) for f in FRACTIONS})
    row.update({
        HELDOUT: float(best_row[C.HELDOUT_SCORE]),
        SECONDS_PER_PROPOSAL: propose_total / len(queries) if len(queries) else math.nan,
        OVERHEAD: propose_total / wall_total if wall_total > 0 else math.nan,
        DUPLICATES: float(queries[C.IS_DUPLICATE].sum()),
        FALLBACKS: float(queries[C.IS_FALLBACK].sum()),
        FINAL_QUERY: int(queries[C.QUERY].max()) if len(queries) else 0,
    })
    return row


def per_run(sweep: Sweep, curves: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per complete run with every statistic (see the ``*_COLUMNS`` lists), sorted.

    ``curves``: :func:`bench.analysis.anytime.query_curves` of the sweep's records, if already computed.
    """
    by_run = {key: group for key, group in sweep.records.groupby(RUN_KEYS, sort=False)}
    rows = [_run_row(run, by_run[(run[C.TASK], run[METHOD], run[C.SEED])])
            for _, run in sweep.complete_runs.iterrows()]
    frame = pd.DataFrame(rows)
    if not len(frame):
        return frame
    final_metrics = _final_metrics(sweep.metrics)
    if len(final_metrics):
        frame = frame.merge(final_metrics, on=RUN_KEYS, how="left")
    bounds = normalization_bounds(frame)
    frame[NORMALIZED] = [(v - bounds[t][0]) / (bounds[t][1] - bounds[t][0]) if t in bounds else math.nan
                         for t, v in zip(frame[C.TASK], frame[FINAL_BEST])]
    curves = anytime.query_curves(sweep.records) if curves is None else curves
    frame = frame.merge(anytime.run_aucs(curves, bounds), on=RUN_KEYS, how="left")
    frame[RANK] = frame.groupby([C.TASK, C.SEED])[FINAL_BEST].rank(ascending=False, method="average")
    return frame.sort_values(RUN_KEYS, kind="stable").reset_index(drop=True)


def _final_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    """Wide per-run frame of each (metric, subset, reference) value at the run's last checkpoint."""
    final = final_metric_rows(metrics)
    if not len(final):
        return pd.DataFrame()
    final = final.copy()
    final[COLUMN] = [metric_key(m, s, r) for m, s, r in
                     zip(final[C.METRIC_NAME], final[C.METRIC_SUBSET], final[C.METRIC_REFERENCE])]
    return final.pivot_table(index=RUN_KEYS, columns=COLUMN, values=C.METRIC_VALUE, aggfunc="first").reset_index()


def final_metric_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    """The reportable metric rows of each run's last checkpoint (with n, reference and features)."""
    metrics = reportable_metrics(metrics)
    if not len(metrics):
        return metrics
    last = metrics.groupby(RUN_KEYS)[C.METRIC_AT_QUERY].transform("max")
    return metrics[metrics[C.METRIC_AT_QUERY] == last].reset_index(drop=True)


def random_baseline(frame: pd.DataFrame) -> dict[str, str]:
    """Per task, the method that is random search: label ``random`` if present, else any method
    whose optimizer is ``random`` (first in sorted order); tasks without one are absent."""
    out: dict[str, str] = {}
    for task, group in frame.groupby(C.TASK, sort=True):
        methods = sorted(set(group.loc[group[OPTIMIZER_NAME] == RANDOM_OPTIMIZER, METHOD]))
        if methods:
            out[str(task)] = RANDOM_OPTIMIZER if RANDOM_OPTIMIZER in methods else methods[0]
    return out


def normalization_bounds(frame: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Per task, the (0, 1) ends of the normalized score from a :func:`per_run` frame.

    0 = median final best of the task's random-search runs (:func:`random_baseline`), or on a
    task without random search the median best of the initial designs; 1 = the best final score
    of any run. Tasks where 1 is not above 0 (nothing beat the reference) have no bounds.
    """
    bounds: dict[str, tuple[float, float]] = {}
    baselines = random_baseline(frame)
    for task, group in frame.groupby(C.TASK, sort=True):
        if task in baselines:
            zero = float(group.loc[group[METHOD] == baselines[task], FINAL_BEST].median())
        else:
            zero = float(group[INIT_BEST].median())
        one = float(group[FINAL_BEST].max())
        if one > zero:
            bounds[str(task)] = (zero, one)
    return bounds


# --- summaries and tests --------------------------------------------------------------------


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and does not count as a test)."""
    p = np.asarray(p_values, dtype=np.float64)
    valid = np.flatnonzero(~np.isnan(p))
    out = np.full(len(p), math.nan)
    m = len(valid)
    running = 0.0
    for rank, index in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[index]))
        out[index] = running
    return out.tolist()


def paired_wilcoxon(best: pd.Series, other: pd.Series, higher_is_better: bool) -> float:
    """One-sided p-value that ``best`` beats ``other`` over their common seeds (Series indexed by seed).

    NaN when no seed has both values; 1.0 when every paired difference is zero.
    """
    both = pd.concat([best, other], axis=1, keys=["best", "other"]).dropna()
    if not len(both):
        return math.nan
    diff = (both["best"] - both["other"]).to_numpy()
    if not higher_is_better:
        diff = -diff
    if np.all(diff == 0):
        return 1.0
    return float(stats.wilcoxon(diff, alternative="greater", zero_method="wilcox").pvalue)


def summarize(frame: pd.DataFrame, columns: list[Column], alpha: float = ALPHA) -> pd.DataFrame:
    """Long frame: one row per (task, method, column) with mean, se, n, is_best, not_worse, p_holm.

    Columns with no value for any method of a task are left out for that task.
    """
    out = []
    for task, group in frame.groupby(C.TASK, sort=True):
        for column in columns:
            if column.key not in group.columns or group[column.key].isna().all():
                continue
            values = {str(m): g.set_index(C.SEED)[column.key] for m, g in group.groupby(METHOD, sort=True)}
            summary = {m: (v.mean(), v.std(ddof=1) / math.sqrt(v.count()) if v.count() > 1 else math.nan,
                           int(v.count())) for m, v in values.items()}
            means = pd.Series({m: s[0] for m, s in summary.items()}).dropna()
            best = str((means.idxmax() if column.higher_is_better else means.idxmin())) if len(means) else None
            others = [m for m in values if m != best]
            p_raw = [paired_wilcoxon(values[best], values[m], column.higher_is_better) if best else math.nan
                     for m in others]
            p_adj = dict(zip(others, holm(p_raw)))
            tied = set(means.index[means == means[best]]) if best else set()  # equal means are all best
            for method, (mean, se, n) in summary.items():
                p = p_adj.get(method, math.nan)
                is_best = method in tied
                out.append({C.TASK: task, METHOD: method, COLUMN: column.key, MEAN: mean, SE: se, N: n,
                            IS_BEST: is_best, NOT_WORSE: not is_best and not math.isnan(p) and p >= alpha,
                            P_HOLM: p})
    return pd.DataFrame(out, columns=[C.TASK, METHOD, COLUMN, MEAN, SE, N, IS_BEST, NOT_WORSE, P_HOLM])


#: per-run columns averaged over every task by :func:`overall` (all comparable across tasks)
OVERALL_KEYS = (NORMALIZED, AUC, RANK)


def overall(frame: pd.DataFrame) -> pd.DataFrame:
    """Per method over every task and seed: normalized score, AUC and rank (mean, se, n runs, n tasks)."""
    rows = []
    for method, group in frame.groupby(METHOD, sort=True):
        row: dict[str, object] = {METHOD: method, "tasks": int(group[C.TASK].nunique())}
        for key in OVERALL_KEYS:
            values = group[key].dropna()
            row[f"{key}_{MEAN}"] = values.mean() if len(values) else math.nan
            row[f"{key}_{SE}"] = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else math.nan
            row[f"{key}_{N}"] = int(len(values))
        rows.append(row)
    return pd.DataFrame(rows)


def bootstrap_ci(values: np.ndarray, n_boot: int = N_BOOT, seed: int = BOOT_SEED,
                 confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (``scipy.stats.bootstrap``, seeded); NaN for < 2 values."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return math.nan, math.nan
    if np.all(values == values[0]):  # every resample has the same mean
        return float(values[0]), float(values[0])
    result = stats.bootstrap((values,), np.mean, n_resamples=n_boot, confidence_level=confidence,
                             method="percentile", rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def with_bootstrap_ci(summary: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """``summary`` (from :func:`summarize`) with the bootstrap interval of each (task, method, column) mean."""
    groups = {key: g for key, g in frame.groupby([C.TASK, METHOD], sort=False)}
    intervals = [bootstrap_ci(groups[(task, method)][column].to_numpy())
                 for task, method, column in zip(summary[C.TASK], summary[METHOD], summary[COLUMN])]
    out = summary.copy()
    out[CI_LOW] = [low for low, _ in intervals]
    out[CI_HIGH] = [high for _, high in intervals]
    return out
