"""Budgets in wall-clock seconds: the best score each run had reached by fixed times.

Times are each run's recorded ``elapsed_s`` (seconds since the run started, at the end of the
batch that produced the row; the initial design counts). They measure the machine as much as
the method: compare them only between runs made on the same hardware under similar load.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench.analysis.aggregate import RUN_KEYS
from bench.analysis.stats import Column
from bench.core import constants as C

#: how many wall-time budgets the default grid has
N_WALL_BUDGETS = 4


def round_seconds(seconds: float, up: bool = False) -> float:
    """``seconds`` to 2 significant digits, rounded to nearest or ``up`` (budgets are read by people)."""
    if seconds <= 0 or not math.isfinite(seconds):
        return seconds
    if not up:
        return float(f"{seconds:.2g}")
    step = 10.0 ** (math.floor(math.log10(seconds)) - 1)
    return float(f"{math.ceil(seconds / step) * step:.2g}")


def default_budgets(curves: pd.DataFrame, n: int = N_WALL_BUDGETS) -> list[float]:
    """``n`` log-spaced budgets from the shortest to the longest complete run's total wall time.

    At the first budget the fastest run has about finished; at the last one (rounded up) every
    run has. Each is rounded to 2 significant digits; duplicates after rounding collapse.
    """
    totals = curves.groupby(RUN_KEYS)[C.ELAPSED_S].max()
    totals = totals[totals > 0]
    if not len(totals):
        return []
    low, high = float(totals.min()), float(totals.max())
    raw = np.geomspace(low, high, n)[:-1] if high > low else []
    return sorted({round_seconds(float(b)) for b in raw} | {round_seconds(high, up=True)})


def budget_key(seconds: float) -> str:
    """Per-run column of the best score within ``seconds`` of wall time, e.g. ``within_2.5s``."""
    return f"within_{seconds:g}s"


def budget_columns(budgets: Sequence[float]) -> list[Column]:
    """One table column per wall-time budget (higher is better)."""
    return [Column(budget_key(b), f"best ≤ {b:g} s", True) for b in budgets]


def best_within(curves: pd.DataFrame, budgets: Sequence[float]) -> pd.DataFrame:
    """Per run: the best score among the rows recorded within each budget (NaN: nothing evaluated yet).

    Columns: task, method, seed, then one ``within_<b>s`` column per budget.
    """
    rows = []
    for key, run in curves.groupby(RUN_KEYS, sort=True):
        row = dict(zip(RUN_KEYS, key))
        elapsed = run[C.ELAPSED_S].to_numpy(np.float64)
        best = run[C.BEST_SO_FAR].to_numpy(np.float64)
        for budget in budgets:
            inside = best[elapsed <= budget]
            row[budget_key(budget)] = float(inside.max()) if len(inside) else math.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=RUN_KEYS + [budget_key(b) for b in budgets])
