"""Execute one run into its folder: build task and optimizer, resume, checkpoint every batch.

This is the I/O edge around :func:`bench.experiment.run`. A run folder holds ``run.json``
(status and provenance), ``records.parquet``, ``proposals.parquet``, ``metrics.parquet`` and
``checkpoint.pkl``; see :mod:`bench.records`.
"""

from __future__ import annotations

import copy
import traceback
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from bench.core import constants as C
from bench.core.config import RunConfig
from bench.run.loop import BatchResult, run
from bench.store.files import (RunFolder, atomic_write, git_state, host_info, now_iso, package_versions,
                           records_frame)
from bench.core.registry import optimizer_spec, task_spec
from bench.core.task import Task


class TaskCache:
    """Builds each (task, params) once per process and hands every run its own copy.

    Loading models is the expensive part; a deep copy keeps runs that fine-tune the model from
    seeing each other's changes. ``loads`` counts real builds (reported by ``bench perf sweep``).
    """

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self.loads = 0

    def get(self, name: str, params: dict[str, Any]) -> Task:
        key = repr((name, sorted(params.items())))
        if key not in self._tasks:
            self._tasks[key] = task_spec(name).build(overrides=params)
            self.loads += 1
        return copy.deepcopy(self._tasks[key])


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for col in columns:
        if col not in frame.columns:
            frame[col] = pd.Series(dtype=object)
    return frame


def execute_run(config: RunConfig, folder: RunFolder, *, tasks: TaskCache | None = None,
                progress: Callable[[int], None] | None = None, stop_after_batches: int | None = None,
                sweep: str | None = None) -> str:
    """Run (or resume) ``config`` in ``folder``; return the final status.

    A completed run is left alone. A partial one resumes from its checkpoint. Any exception is
    caught: the run is marked failed with the traceback in ``error.txt`` and its last checkpoint
    is kept, so ``--retry-failed`` resumes it. ``progress(n)`` is called with the number of new
    queries after each batch. ``stop_after_batches`` stops early (status stays ``running``):
    tests use it to simulate preemption.
    """
    if folder.exists() and folder.status() == C.STATUS_COMPLETED:
        return C.STATUS_COMPLETED
    tasks = tasks or TaskCache()
    info: dict[str, Any] = folder.read_run() if folder.exists() else {}
    info.update({"run_id": config.run_id, "config": config.to_dict(), "status": C.STATUS_RUNNING,
                 "sweep": sweep, "packages": package_versions(), "git": git_state(), "host": host_info()})
    info.setdefault("started", now_iso())
    info["attempts"] = int(info.get("attempts", 0)) + 1
    info.pop("error", None)
    folder.write_run(info)
    try:
        spec = optimizer_spec(config.optimizer)
        task = tasks.get(config.task, task_spec(config.task).resolved_params(config.task_params))
        spec.resolved_params(config.optimizer_params)  # bad parameters fail before the run starts

        def make_optimizer(space: Any) -> Any:
            return spec.build(space, config.seed, overrides=config.optimizer_params)

        preset_hash = spec.preset_hash(config.optimizer_params)
        info["task_provenance"] = task.provenance()
        if spec.package:
            info["packages"] = {**info["packages"], **package_versions([spec.package])}
        info.update({"preset_hash": preset_hash, "optimizer_params": spec.resolved_params(config.optimizer_params),
                     "grid": {"height": task.space.height, "width": task.space.width,
                              "codebook_size": task.space.codebook_size}})
        saved = folder.read_checkpoint()
        records, diagnostics, metrics, state = ([], [], [], None)
        if saved is not None:
            rec_frame, diag_frame, met_frame, state = saved
            records = rec_frame.to_dict("records")
            diagnostics = diag_frame.to_dict("records") if diag_frame is not None else []
            metrics = met_frame.to_dict("records") if met_frame is not None else []
            if progress is not None:
                progress(state.queries)
        retrain_log: list[dict[str, Any]] = list(info.get("retrain_log", [])) if state is not None else []
        batches = 0
        result: BatchResult
        for result in run(task, make_optimizer(task.space), config, preset_hash=preset_hash, resume=state,
                          rebuild=make_optimizer):
            records += result.records
            diagnostics += result.diagnostics
            metrics += result.metrics
            if result.retrain_stats is not None:
                retrain_log.append({"after_query": result.state.queries, "model_version": result.state.model_version,
                                    **result.retrain_stats})
            folder.write_checkpoint(records_frame(records),
                                    _frame(diagnostics, [C.DIAG_BATCH, C.DIAG_KIND, C.DIAG_MESSAGE]),
                                    _frame(metrics, [C.METRIC_AT_QUERY, C.METRIC_SUBSET, C.METRIC_NAME,
                                                     C.METRIC_VALUE, C.METRIC_STD, C.METRIC_N,
                                                     C.METRIC_REFERENCE, C.METRIC_FEATURES]),
                                    result.state)
            info.update({"task_signature": result.state.signature, "queries_done": result.state.queries,
                         "best": result.state.best, "retrain_log": retrain_log, "updated": now_iso()})
            folder.write_run(info)
            if progress is not None:
                progress(len(result.records) if result.state.batch > 0 else 0)
            batches += 1
            if stop_after_batches is not None and batches >= stop_after_batches:
                return C.STATUS_RUNNING
        info.update({"status": C.STATUS_COMPLETED, "finished": now_iso()})
        folder.write_run(info)
        return C.STATUS_COMPLETED
    except Exception as exc:  # noqa: BLE001 - isolate failures: mark the run failed, keep going
        text = traceback.format_exc()
        atomic_write(folder.path / C.ERROR_FILE, lambda tmp: tmp.write_text(text))
        info.update({"status": C.STATUS_FAILED, "finished": now_iso(),
                     "error": f"{type(exc).__name__}: {exc}".splitlines()[0],
                     "error_file": str(folder.path / C.ERROR_FILE)})
        folder.write_run(info)
        return C.STATUS_FAILED


def run_folder(sweep_dir: Path, config: RunConfig) -> RunFolder:
    """The folder of ``config`` inside a sweep: ``<sweep_dir>/runs/task=../opt=../seed=..``."""
    return RunFolder.for_config(sweep_dir, config.run_dir_parts())
