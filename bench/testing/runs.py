"""Synthetic run folders with known values, to test analysis code (and try a report without running).

:func:`write_run` stores one run the way the harness does (records, metrics, diagnostics and
run.json through :mod:`bench.store.files`), with every score, time and flag chosen by the caller,
so a test can assert exact figures.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.core import constants as C
from bench.core.records import encode_latent, records_frame
from bench.store.run_folder import RunFolder

GRID = {"height": 2, "width": 2, "codebook_size": 8}


def latent_for(eval_index: int, seed: int, method: str) -> np.ndarray:
    """A 2x2 latent that differs for every (eval, seed, method length) of a small run."""
    codes = [eval_index % 8, seed % 8, len(method) % 8, (eval_index // 8) % 8]
    return np.array(codes).reshape(2, 2)


@dataclass
class SyntheticRun:
    """One run's known values. Query i (1-based) is ``query_scores[i - 1]``; one query per batch.

    ``elapsed_s``: per evaluation (initial design included), default 0.1 + eval index seconds.
    ``duplicates``: queries whose latent repeats the previous query's (flagged as duplicates).
    ``fallbacks``: queries flagged as fallback proposals. ``heldout``: held-out score = heldout x score.
    ``prior_loglik``: per evaluation, or None for NaN. ``metrics``: rows of metrics.parquet.
    """

    task: str
    method: str
    seed: int
    init_scores: Sequence[float]
    query_scores: Sequence[float]
    optimizer: str | None = None  # registered name; default "opt-<method>", or "random" for method "random"
    status: str = C.STATUS_COMPLETED
    budget: int | None = None  # default: the number of query scores
    propose_s: float = 0.0
    elapsed_s: Sequence[float] | None = None
    duplicates: Collection[int] = ()
    fallbacks: Collection[int] = ()
    heldout: float = 10.0
    prior_loglik: Sequence[float] | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def optimizer_name(self) -> str:
        """The registered optimizer name run.json records."""
        if self.optimizer is not None:
            return self.optimizer
        return "random" if self.method == "random" else f"opt-{self.method}"


def _record_rows(run: SyntheticRun) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    best = -math.inf
    n_init = len(run.init_scores)
    for i, score in enumerate(list(run.init_scores) + list(run.query_scores)):
        query = 0 if i < n_init else i - n_init + 1
        best = max(best, score)
        latent = latent_for(i - 1 if query in run.duplicates else i, run.seed, run.method)
        rows.append({
            C.RUN_ID: f"{run.method}-{run.seed}", C.TASK: run.task, C.TASK_SIGNATURE: f"sig-{run.task}",
            C.OPTIMIZER: run.method, C.PRESET_HASH: "h", C.SEED: run.seed, C.BATCH: query, C.EVAL: i, C.QUERY: query,
            C.LATENT: encode_latent(latent, GRID["codebook_size"]), C.SCORE: float(score), C.BEST_SO_FAR: best,
            C.IS_INIT: query == 0, C.IS_DUPLICATE: query in run.duplicates, C.IS_FALLBACK: query in run.fallbacks,
            C.PROPOSE_S: 0.0 if query == 0 else run.propose_s, C.EVALUATE_S: 0.01,
            C.ELAPSED_S: 0.1 + i if run.elapsed_s is None else float(run.elapsed_s[i]),
            C.MODEL_VERSION: 0, C.REGRET: math.nan, C.HELDOUT_SCORE: run.heldout * score,
            C.PRIOR_LOGLIK: math.nan if run.prior_loglik is None else float(run.prior_loglik[i]),
        })
    return rows


def write_run(sweep_dir: Path, run: SyntheticRun) -> RunFolder:
    """Store ``run`` under ``sweep_dir/runs/task=<task>/opt=<method>/seed=<seed>``; return its folder."""
    folder = RunFolder.for_config(sweep_dir, (f"task={run.task.replace('/', '+')}", f"opt={run.method}",
                                              f"seed={run.seed}"))
    folder.write_tables(records_frame(_record_rows(run)),
                        [{C.DIAG_BATCH: 1, C.DIAG_KIND: "info", C.DIAG_MESSAGE: ""}], list(run.metrics or []))
    budget = len(run.query_scores) if run.budget is None else run.budget
    folder.write_info({
        "status": run.status, "run_id": f"{run.method}-{run.seed}", "task_signature": f"sig-{run.task}",
        "preset_hash": "h",
        "config": {"task": run.task, "optimizer": run.optimizer_name, "label": run.method, "seed": run.seed,
                   "budget": budget, "batch_size": 1, "task_params": {}},
        "packages": {"numpy": "1.0", "python": "3.11"}, "git": {"commit": "abc123", "dirty": False},
        "grid": GRID, **({"error": run.error} if run.error else {}),
    })
    return folder
