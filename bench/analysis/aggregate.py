"""Read every run of a sweep folder into tidy pandas frames, for :mod:`bench.analysis` and reports.

Only *complete* runs (status ``completed`` with every query of their budget recorded) enter the
statistics. Every other run folder (running, failed, pending, or completed short of its budget)
is kept in :attr:`Sweep.runs` with ``complete = False`` and the reason, so reports can flag it
instead of silently averaging a shorter run with full ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.core import constants as C
from bench.core.errors import UserError
from bench.store.files import RunFolder, iter_run_folders

#: column of :attr:`Sweep.runs` (and of the other frames) naming the compared method: the
#: run's label, which is what records store in the OPTIMIZER column
METHOD = "method"
#: registered optimizer or preset name behind a method (``RunConfig.optimizer``)
OPTIMIZER_NAME = "optimizer_name"
BUDGET = "budget"
BATCH_SIZE = "batch_size"
STATUS = "status"
COMPLETE = "complete"
FLAG = "flag"  # why a run is excluded from the statistics; "" for complete runs
QUERIES_DONE = "queries_done"
PATH = "path"
ERROR = "error"

#: identifying columns of one run, in sort order
RUN_KEYS = [C.TASK, METHOD, C.SEED]

RUN_COLUMNS = [C.TASK, METHOD, C.SEED, OPTIMIZER_NAME, STATUS, COMPLETE, FLAG, BUDGET, BATCH_SIZE, QUERIES_DONE,
               C.TASK_SIGNATURE, C.PRESET_HASH, C.RUN_ID, ERROR, PATH]


@dataclass
class Sweep:
    """Everything stored under one sweep folder.

    ``runs``: one row per run folder (complete or not), sorted by task, method, seed.
    ``records``: evaluation rows of the complete runs (columns of ``records.parquet``, plus
    ``method``), sorted by task, method, seed, eval.
    ``metrics``: metric rows of the complete runs (columns of ``metrics.parquet`` plus the run keys).
    ``diagnostics``: proposal diagnostics of the complete runs (``batch``, ``kind``, ``message`` plus run keys).
    ``infos``: the parsed ``run.json`` of every run, keyed by run folder path (as a string).
    """

    path: Path
    runs: pd.DataFrame
    records: pd.DataFrame
    metrics: pd.DataFrame
    diagnostics: pd.DataFrame
    infos: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def complete_runs(self) -> pd.DataFrame:
        """The rows of :attr:`runs` that enter the statistics."""
        return self.runs[self.runs[COMPLETE]].reset_index(drop=True)

    @property
    def flagged_runs(self) -> pd.DataFrame:
        """The rows of :attr:`runs` that are excluded from the statistics, with the reason."""
        return self.runs[~self.runs[COMPLETE]].reset_index(drop=True)

    def info(self, run: pd.Series) -> dict[str, Any]:
        """The ``run.json`` of one row of :attr:`runs`."""
        return self.infos[str(run[PATH])]


def _flag(status: str, queries_done: int, budget: int, has_records: bool) -> str:
    """Why a run cannot be averaged with full runs ("" when it can)."""
    if status != C.STATUS_COMPLETED:
        return f"{status} ({queries_done}/{budget} queries)"
    if not has_records:
        return "completed but records.parquet is missing"
    if queries_done < budget:
        return f"completed short of its budget ({queries_done}/{budget} queries)"
    return ""


def _run_row(folder: RunFolder, info: dict[str, Any], records: pd.DataFrame | None) -> dict[str, Any]:
    config = info.get("config", {})
    parts = {part.split("=", 1)[0]: part.split("=", 1)[1] for part in folder.path.parts[-3:] if "=" in part}
    budget = int(config.get("budget", 0))
    queries_done = int(records[C.QUERY].max()) if records is not None and len(records) else 0
    status = str(info.get("status", C.STATUS_PENDING))
    flag = _flag(status, queries_done, budget, records is not None)
    return {
        C.TASK: str(config.get("task", parts.get("task", ""))),
        METHOD: str(config.get("label") or config.get("optimizer") or parts.get("opt", "")),
        C.SEED: int(config.get("seed", parts.get("seed", -1))),
        OPTIMIZER_NAME: str(config.get("optimizer", "")),
        STATUS: status, COMPLETE: flag == "", FLAG: flag, BUDGET: budget,
        BATCH_SIZE: int(config.get("batch_size", 1)), QUERIES_DONE: queries_done,
        C.TASK_SIGNATURE: str(info.get("task_signature") or ""), C.PRESET_HASH: str(info.get("preset_hash") or ""),
        C.RUN_ID: str(info.get("run_id") or ""), ERROR: str(info.get("error") or ""), PATH: str(folder.path),
    }


def _with_keys(frame: pd.DataFrame | None, row: dict[str, Any]) -> pd.DataFrame | None:
    if frame is None or not len(frame):
        return None
    frame = frame.copy()
    for key in RUN_KEYS:
        frame[key] = row[key]
    return frame


def _concat(frames: list[pd.DataFrame], columns: list[str], sort: list[str]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame({col: pd.Series(dtype=object) for col in columns})
    frame = pd.concat(frames, ignore_index=True)
    front = [c for c in columns if c in frame.columns]
    frame = frame[front + sorted(c for c in frame.columns if c not in front)]
    return frame.sort_values(sort, kind="stable").reset_index(drop=True)


def load_sweep(sweep_dir: Path) -> Sweep:
    """Read every run folder under ``sweep_dir/runs``; raise :class:`UserError` if there is none."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise UserError(f"sweep folder {str(sweep_dir)!r} does not exist")
    rows: list[dict[str, Any]] = []
    records: list[pd.DataFrame] = []
    metrics: list[pd.DataFrame] = []
    diagnostics: list[pd.DataFrame] = []
    infos: dict[str, dict[str, Any]] = {}
    for folder in iter_run_folders(sweep_dir):
        info = folder.read_run()
        run_records = folder.read_records() if folder.records_path.exists() else None
        row = _run_row(folder, info, run_records)
        rows.append(row)
        infos[row[PATH]] = info
        if not row[COMPLETE] or run_records is None:
            continue
        run_records = run_records.copy()
        run_records[METHOD] = row[METHOD]
        records.append(run_records)
        for target, name in ((metrics, C.METRICS_FILE), (diagnostics, C.DIAGNOSTICS_FILE)):
            keyed = _with_keys(folder.read_optional(name), row)
            if keyed is not None:
                target.append(keyed)
    if not rows:
        raise UserError(f"no runs under {str(sweep_dir / 'runs')!r} (expected runs/task=*/opt=*/seed=*/run.json); "
                        "run `bench sweep` or `bench run --out DIR` first")
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS).sort_values(RUN_KEYS, kind="stable").reset_index(drop=True)
    duplicated = runs[runs.duplicated(RUN_KEYS, keep=False)]
    if len(duplicated):
        first = duplicated.iloc[0]
        raise UserError(f"two run folders for task={first[C.TASK]} method={first[METHOD]} seed={first[C.SEED]}: "
                        f"{', '.join(duplicated[PATH].head(2))}")
    record_columns = list(C.RECORD_COLUMNS) + [METHOD]
    metric_columns = RUN_KEYS + [C.METRIC_AT_QUERY, C.METRIC_SUBSET, C.METRIC_NAME, C.METRIC_VALUE, C.METRIC_STD,
                                 C.METRIC_N, C.METRIC_REFERENCE, C.METRIC_FEATURES]
    diag_columns = RUN_KEYS + [C.DIAG_BATCH, C.DIAG_KIND, C.DIAG_MESSAGE]
    return Sweep(
        path=sweep_dir, runs=runs,
        records=_concat(records, record_columns, RUN_KEYS + [C.EVAL]),
        metrics=_concat(metrics, metric_columns, RUN_KEYS + [C.METRIC_AT_QUERY, C.METRIC_SUBSET, C.METRIC_REFERENCE,
                                                            C.METRIC_NAME]),
        diagnostics=_concat(diagnostics, diag_columns, RUN_KEYS + [C.DIAG_BATCH]),
        infos=infos,
    )


def best_so_far_curves(records: pd.DataFrame, max_points: int = 200) -> pd.DataFrame:
    """Best score so far after each optimizer query, one row per (run, query), query 0 = initial design.

    Columns: task, method, seed, query, best_so_far, elapsed_s. Runs with more than
    ``max_points`` queries are thinned to about that many evenly spaced queries (the last one is
    always kept) so that bootstrapped bands stay cheap on long runs.
    """
    columns = RUN_KEYS + [C.QUERY, C.BEST_SO_FAR, C.ELAPSED_S]
    if not len(records):
        return pd.DataFrame({col: pd.Series(dtype=object) for col in columns})
    # several rows share a query only in the initial design (query 0): keep its last, the best of it
    per_query = records.groupby(RUN_KEYS + [C.QUERY], sort=True, as_index=False).agg(
        {C.BEST_SO_FAR: "last", C.ELAPSED_S: "last"})
    parts = []
    for _, run in per_query.groupby(RUN_KEYS, sort=True):
        if len(run) > max_points:
            keep = np.unique(np.linspace(0, len(run) - 1, max_points).round().astype(int))
            run = run.iloc[keep]
        parts.append(run)
    return pd.concat(parts, ignore_index=True)[columns]
