"""Read every run of a sweep folder into tidy pandas frames, for the statistics and the report.

Only *complete* runs enter the statistics: status ``completed``, every query of their budget
recorded, records that agree with the run's config (its run id, task, method and seed), and
task artifacts that are not a ``--quick`` smoke build. Every other run folder is kept in
:attr:`Sweep.runs` with ``complete = False`` and the reason (``flag``), so reports list it
instead of silently averaging it. A folder whose files cannot be read is a ``damaged`` run: it
is listed with the file and the reason, and never stops the others from being read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.core import constants as C
from bench.core.errors import UserError
from bench.store.files import StoreError
from bench.store.run_folder import RunFolder, iter_run_folders

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
NOTE = "note"  # what a reader should know about an included run (load-dependent, extended)
LOAD_DEPENDENT = "load_dependent"  # a wall-clock limit decided some of its proposals
QUERIES_DONE = "queries_done"
PATH = "path"
ERROR = "error"
#: status of a run folder whose files cannot be read
STATUS_DAMAGED = "damaged"

#: identifying columns of one run, in sort order
RUN_KEYS = [C.TASK, METHOD, C.SEED]

RUN_COLUMNS = [C.TASK, METHOD, C.SEED, OPTIMIZER_NAME, STATUS, COMPLETE, FLAG, NOTE, LOAD_DEPENDENT, BUDGET,
               BATCH_SIZE, QUERIES_DONE, C.TASK_SIGNATURE, C.PRESET_HASH, C.RUN_ID, ERROR, PATH]


@dataclass
class Sweep:
    """Everything stored under one sweep folder.

    ``runs``: one row per run folder (complete or not), sorted by task, method, seed.
    ``records``: evaluation rows of the complete runs (columns of ``records.parquet``, plus
    ``method``), sorted by task, method, seed, eval.
    ``metrics``: metric rows of the complete runs (columns of ``metrics.parquet`` plus the run keys).
    ``diagnostics``: proposal diagnostics of the complete runs (``batch``, ``kind``, ``message`` plus run keys).
    ``infos``: the parsed ``run.json`` of every readable run, keyed by run folder path (as a string).
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
        """The ``run.json`` of one row of :attr:`runs` (empty for a damaged run)."""
        return self.infos.get(str(run[PATH]), {})

    def query_images(self, run: pd.Series) -> np.ndarray | None:
        """uint8 (Q, C, H, W) images of every query of a run, as scored (None when not stored or unreadable)."""
        try:
            return RunFolder(Path(run[PATH])).read_query_images()
        except StoreError:
            return None

    def initial_images(self, run: pd.Series) -> np.ndarray | None:
        """uint8 images of the start of a run's initial design (None when not stored or unreadable)."""
        try:
            return RunFolder(Path(run[PATH])).read_initial_images()
        except StoreError:
            return None


def _folder_keys(folder: RunFolder) -> dict[str, str]:
    return {part.split("=", 1)[0]: part.split("=", 1)[1] for part in folder.path.parts[-3:] if "=" in part}


def _disagreement(info: dict[str, Any], records: pd.DataFrame) -> str:
    """Why the records are not those of the run's config ("" when they agree)."""
    config = info["config"]
    expected = {C.RUN_ID: info.get("run_id"), C.TASK: config.get("task"),
                C.OPTIMIZER: config.get("label") or config.get("optimizer"), C.SEED: config.get("seed")}
    for column, value in expected.items():
        found = sorted({str(v) for v in records[column].unique()})
        if value is not None and found != [str(value)]:
            return f"records disagree with run.json: {column} {', '.join(found)} (expected {value})"
    queries = records.loc[~records[C.IS_INIT], C.QUERY]
    if len(queries) and (queries.tolist() != list(range(1, len(queries) + 1))):
        return "records disagree with run.json: query numbers are not 1..n"
    return ""


def _flag(info: dict[str, Any], records: pd.DataFrame, queries_done: int, budget: int) -> str:
    """Why a run cannot be averaged with full runs ("" when it can)."""
    status = info["status"]
    if status != C.STATUS_COMPLETED:
        return f"{status} ({queries_done}/{budget} queries)"
    if queries_done != budget:
        return f"completed with {queries_done} of its budget of {budget} queries"
    if (info.get("task_provenance") or {}).get("quick"):
        return "smoke-test artifacts (bench prepare --quick): never averaged with full runs"
    return _disagreement(info, records)


def _note(info: dict[str, Any]) -> str:
    notes = []
    if info.get("load_dependent"):
        notes.append("load-dependent: a wall-clock limit decided some proposals")
    for step in info.get("extended", []):
        notes.append(f"extended from {step.get('from_budget')} to {step.get('to_budget')} queries")
    return "; ".join(notes)


def _damaged_row(folder: RunFolder, reason: str) -> dict[str, Any]:
    keys = _folder_keys(folder)
    seed = keys.get("seed", "-1")
    return {C.TASK: keys.get("task", "").replace("+", "/"), METHOD: keys.get("opt", "").replace("+", "/"),
            C.SEED: int(seed) if seed.lstrip("-").isdigit() else -1, OPTIMIZER_NAME: "", STATUS: STATUS_DAMAGED,
            COMPLETE: False, FLAG: f"damaged: {reason}", NOTE: "", LOAD_DEPENDENT: False, BUDGET: 0, BATCH_SIZE: 0,
            QUERIES_DONE: 0, C.TASK_SIGNATURE: "", C.PRESET_HASH: "", C.RUN_ID: "", ERROR: reason, PATH: str(folder.path)}


def _run_row(folder: RunFolder, info: dict[str, Any], records: pd.DataFrame | None) -> dict[str, Any]:
    config = info["config"]
    budget = int(config.get("budget", 0))
    queries_done = int(records[C.QUERY].max()) if records is not None and len(records) else 0
    flag = _flag(info, records, queries_done, budget) if records is not None else \
        f"{info['status']} (no records yet)"
    return {
        C.TASK: str(config.get("task", "")), METHOD: str(config.get("label") or config.get("optimizer") or ""),
        C.SEED: int(config.get("seed", -1)), OPTIMIZER_NAME: str(config.get("optimizer", "")),
        STATUS: str(info["status"]), COMPLETE: flag == "", FLAG: flag, NOTE: _note(info),
        LOAD_DEPENDENT: bool(info.get("load_dependent", False)), BUDGET: budget,
        BATCH_SIZE: int(config.get("batch_size", 1)), QUERIES_DONE: queries_done,
        C.TASK_SIGNATURE: str(info.get("task_signature") or ""), C.PRESET_HASH: str(info.get("preset_hash") or ""),
        C.RUN_ID: str(info.get("run_id") or ""), ERROR: str(info.get("error") or ""), PATH: str(folder.path),
    }


def _with_keys(frame: pd.DataFrame | None, row: dict[str, Any]) -> pd.DataFrame | None:
    if frame is None or not len(frame):
        return None
    return frame.assign(**{key: row[key] for key in RUN_KEYS})


def _concat(frames: list[pd.DataFrame], columns: list[str], sort: list[str]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame({col: pd.Series(dtype=object) for col in columns})
    frame = pd.concat(frames, ignore_index=True)
    front = [c for c in columns if c in frame.columns]
    frame = frame[front + sorted(c for c in frame.columns if c not in front)]
    return frame.sort_values(sort, kind="stable").reset_index(drop=True)


@dataclass
class _Collected:
    rows: list[dict[str, Any]] = field(default_factory=list)
    records: list[pd.DataFrame] = field(default_factory=list)
    metrics: list[pd.DataFrame] = field(default_factory=list)
    diagnostics: list[pd.DataFrame] = field(default_factory=list)
    infos: dict[str, dict[str, Any]] = field(default_factory=dict)


def _read_run(folder: RunFolder, out: _Collected) -> None:
    """Add one run folder to ``out``; a damaged folder becomes a damaged row."""
    try:
        info = folder.read_info()
        records = folder.read_records() if folder.file(C.RECORDS_FILE).exists() else None
        row = _run_row(folder, info, records)
        tables = [folder.read_table(C.METRICS_FILE), folder.read_table(C.DIAGNOSTICS_FILE)] if row[COMPLETE] else []
    except StoreError as exc:
        out.rows.append(_damaged_row(folder, str(exc)))
        return
    out.rows.append(row)
    out.infos[row[PATH]] = info
    if row[COMPLETE] and records is not None:
        out.records.append(records.assign(**{METHOD: row[METHOD]}))
        for target, table in zip((out.metrics, out.diagnostics), tables):
            keyed = _with_keys(table, row)
            if keyed is not None:
                target.append(keyed)


def load_sweep(sweep_dir: Path) -> Sweep:
    """Read every run folder under ``sweep_dir/runs``; raise :class:`UserError` if there is none."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise UserError(f"sweep folder {str(sweep_dir)!r} does not exist")
    out = _Collected()
    for folder in iter_run_folders(sweep_dir):
        _read_run(folder, out)
    if not out.rows:
        raise UserError(f"no runs under {str(sweep_dir / 'runs')!r} (expected runs/task=*/opt=*/seed=*/run.json); "
                        "run `bench sweep` or `bench run --out DIR` first")
    runs = pd.DataFrame(out.rows, columns=RUN_COLUMNS).sort_values(RUN_KEYS + [PATH], kind="stable")
    runs = _exclude_duplicates(runs.reset_index(drop=True))
    metric_columns = RUN_KEYS + [C.METRIC_AT_QUERY, C.METRIC_SUBSET, C.METRIC_NAME, C.METRIC_VALUE, C.METRIC_STD,
                                 C.METRIC_N, C.METRIC_REFERENCE, C.METRIC_FEATURES]
    return Sweep(
        path=sweep_dir, runs=runs,
        records=_concat(out.records, list(C.RECORD_COLUMNS) + [METHOD], RUN_KEYS + [C.EVAL]),
        metrics=_concat(out.metrics, metric_columns, RUN_KEYS + [C.METRIC_AT_QUERY, C.METRIC_SUBSET,
                                                                 C.METRIC_REFERENCE, C.METRIC_NAME]),
        diagnostics=_concat(out.diagnostics, RUN_KEYS + [C.DIAG_BATCH, C.DIAG_KIND, C.DIAG_MESSAGE],
                            RUN_KEYS + [C.DIAG_BATCH]),
        infos=out.infos,
    )


def _exclude_duplicates(runs: pd.DataFrame) -> pd.DataFrame:
    """Two folders claiming one (task, method, seed) are both excluded, each naming the other."""
    readable = runs[runs[STATUS] != STATUS_DAMAGED]
    duplicated = readable[readable.duplicated(RUN_KEYS, keep=False)]
    for key, group in duplicated.groupby(RUN_KEYS, sort=True):
        for index in group.index:
            others = [p for p in group[PATH] if p != runs.at[index, PATH]]
            runs.loc[index, [COMPLETE, FLAG]] = [False, f"another folder holds the same run: {others[0]}"]
    return runs


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
