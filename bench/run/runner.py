"""Execute one run into its folder: check its identity, resume it, store every batch, record its end.

This is the edge around the pure loop :func:`bench.run.loop.run`: everything it reads or writes
goes through :class:`bench.store.run_folder.RunFolder`, under the run folder's lock.

How a run ends:

* ``completed``: every query of its budget is recorded (and only then);
* ``failed`` with the reason in ``run.json`` (and the traceback in ``error.txt``): the task or the
  optimizer raised, the optimizer crashed or fell back too often, or the process was interrupted
  without a requeue (``KeyboardInterrupt``, or an exception the caller names in ``propagate``
  such as submitit's ``UncompletedJobError``; these are re-raised after the run is marked);
* still ``running``: the process was stopped to be requeued (``SystemExit`` from a cluster's
  preemption handler) or killed; the next attempt resumes from the last checkpoint.
"""

from __future__ import annotations

import copy
import dataclasses
import traceback
from pathlib import Path
from typing import Any, Callable

from bench.core import constants as C
from bench.core.config import RunConfig, config_differences
from bench.core.errors import UserError
from bench.core.records import records_frame
from bench.core.registry import PluginSpec, optimizer_spec, task_spec
from bench.core.space import CodeGrid
from bench.core.task import Task
from bench.run.loop import BatchResult, RunFailed, RunState, run, to_uint8
from bench.store.files import StoreError, now_iso
from bench.store.provenance import git_state, host_info, package_versions
from bench.store.run_folder import Checkpoint, RunFolder


class RunIdentityError(UserError):
    """The run folder holds a run with another configuration."""


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


def run_folder(sweep_dir: Path, config: RunConfig) -> RunFolder:
    """The folder of ``config`` inside a sweep: ``<sweep_dir>/runs/task=../opt=../seed=..``."""
    return RunFolder.for_config(sweep_dir, config.run_dir_parts())


# --- identity -------------------------------------------------------------------------------------


def check_identity(config: RunConfig, folder: RunFolder, info: dict[str, Any], extend: bool) -> dict[str, Any]:
    """``info`` updated for ``config``, or :class:`RunIdentityError` when the folder holds another run.

    A larger budget extends the run only with ``extend`` (recorded in ``info["extended"]``); a
    smaller budget, or any other difference, is refused.
    """
    diffs = config_differences(info["config"], config.to_dict())
    if not diffs:
        return info
    where = str(folder.path)
    if set(diffs) == {"budget"}:
        old, new = diffs["budget"]
        if new < old:
            raise RunIdentityError(f"{where} holds a run with budget {old}; a run with budget {new} would be another "
                                   "run: choose another --out")
        if not extend:
            raise RunIdentityError(f"{where} holds a run with budget {old}: add --extend to continue it to {new} "
                                   "queries (recorded in its run.json), or choose another --out")
        extended = [*info.get("extended", []), {"from_budget": old, "to_budget": new, "at": now_iso()}]
        return {**info, "config": config.to_dict(), "run_id": config.run_id, "extended": extended,
                "status": C.STATUS_RUNNING}
    shown = "; ".join(f"{key}: {a!r} -> {b!r}" for key, (a, b) in list(diffs.items())[:4])
    raise RunIdentityError(f"{where} holds a run with another configuration ({shown}); choose another --out")


# --- state <-> checkpoint ---------------------------------------------------------------------------


def state_tree(state: RunState) -> dict[str, Any]:
    """The run state as plain data for the checkpoint (query images are stored apart)."""
    return {f.name: getattr(state, f.name) for f in dataclasses.fields(state) if f.name != "query_images"}


def state_from(checkpoint: Checkpoint) -> RunState:
    """The :class:`RunState` a checkpoint holds."""
    return RunState(**checkpoint.state, query_images=checkpoint.query_images)


# --- execution ----------------------------------------------------------------------------------------


def execute_run(config: RunConfig, folder: RunFolder, *, tasks: TaskCache | None = None,
                progress: Callable[[int], None] | None = None, stop_after_batches: int | None = None,
                sweep: str | None = None, extend: bool = False, restart_damaged: bool = True,
                propagate: tuple[type[BaseException], ...] = ()) -> str:
    """Run (or resume) ``config`` in ``folder``; return the final status (see the module doc).

    A completed run is left alone. ``restart_damaged`` restarts a run whose checkpoint or
    records cannot be read from scratch (the damaged files are set aside and the reason
    recorded); without it such a run raises :class:`StoreError`. ``progress(n)`` is called with
    the number of new queries after each batch; ``stop_after_batches`` stops early (status stays
    ``running``, as after a preemption).
    """
    with folder.lock():
        folder.open_for_writing()
        info = _opening_info(config, folder, extend)
        if info.get("status") == C.STATUS_COMPLETED and not (restart_damaged and records_damaged(folder)):
            return C.STATUS_COMPLETED
        session = _Session(config, folder, info, tasks or TaskCache(), sweep, progress)
        try:
            return session.run(restart_damaged, stop_after_batches)
        except Exception as exc:  # noqa: BLE001 - the run's failure (task, optimizer, store), recorded with its reason
            session.fail(exc)
            if isinstance(exc, propagate) or isinstance(exc, MemoryError):
                raise
            return C.STATUS_FAILED
        except KeyboardInterrupt as exc:
            session.fail(exc, reason="interrupted (SIGINT: Ctrl-C or a cancelled job); rerun to resume")
            raise


def records_damaged(folder: RunFolder) -> bool:
    """Whether the run's records cannot be read (a completed run without them has lost its result)."""
    try:
        folder.read_records()
    except StoreError:
        return True
    return False


def _opening_info(config: RunConfig, folder: RunFolder, extend: bool) -> dict[str, Any]:
    """The run's ``run.json`` as it starts this attempt (identity checked)."""
    if not folder.exists():
        return {"run_id": config.run_id, "config": config.to_dict(), "status": C.STATUS_PENDING}
    try:
        info = folder.read_info()
    except StoreError as exc:  # run.json damaged: start over from its config (checkpoint permitting)
        return {"run_id": config.run_id, "config": config.to_dict(), "status": C.STATUS_RUNNING,
                "repaired": f"run.json was unreadable ({exc}); rebuilt"}
    return check_identity(config, folder, info, extend)


class _Session:
    """One attempt at a run: builds task and optimizer, resumes, stores batches, records the outcome."""

    def __init__(self, config: RunConfig, folder: RunFolder, info: dict[str, Any], tasks: TaskCache,
                 sweep: str | None, progress: Callable[[int], None] | None) -> None:
        self.config, self.folder, self.tasks, self.progress = config, folder, tasks, progress
        self.info = {**info, "status": C.STATUS_RUNNING, "sweep": sweep, "git": git_state(), "host": host_info(),
                     "attempts": int(info.get("attempts", 0)) + 1}
        self.info.setdefault("started", now_iso())
        for key in ("error", "error_file", "finished"):
            self.info.pop(key, None)

    def build(self) -> tuple[Task, PluginSpec, str]:
        config = self.config
        spec = optimizer_spec(config.optimizer)
        task = self.tasks.get(config.task, task_spec(config.task).resolved_params(config.task_params))
        spec.build(task.space, config.seed, overrides=config.optimizer_params)  # bad parameters fail up front
        preset_hash = spec.preset_hash(config.optimizer_params)
        space = task.space
        self.info.update({
            "packages": package_versions([spec.package] if spec.package else []), "preset_hash": preset_hash,
            "optimizer_params": spec.resolved_params(config.optimizer_params), "task_provenance": task.provenance(),
            "grid": {"height": space.height, "width": space.width, "codebook_size": space.codebook_size}})
        return task, spec, preset_hash

    def resume_point(self, restart_damaged: bool) -> Checkpoint | None:
        try:
            return self.folder.read_checkpoint()
        except StoreError as exc:
            if not restart_damaged:
                raise
            aside = self.folder.set_aside(str(exc))
            self.info.update({"restarted": f"from scratch: {exc} (damaged files moved to {aside.name}/)",
                              "retrain_log": [], "queries_done": 0})
            self.info.pop("images", None)
            return None

    def run(self, restart_damaged: bool, stop_after_batches: int | None) -> str:
        task, spec, preset_hash = self.build()
        checkpoint = self.resume_point(restart_damaged)
        self.folder.write_info(self.info)
        records, diagnostics, metrics = [], [], []
        state = None
        if checkpoint is not None:
            state = state_from(checkpoint)
            records = checkpoint.records.assign(**{C.RUN_ID: self.config.run_id}).to_dict("records")
            diagnostics, metrics = checkpoint.diagnostics.to_dict("records"), checkpoint.metrics.to_dict("records")
            if self.progress is not None:
                self.progress(state.queries)
        else:
            self.info["retrain_log"] = []

        def make_optimizer(space: CodeGrid) -> Any:
            return spec.build(space, self.config.seed, overrides=self.config.optimizer_params)

        batches = 0
        for result in run(task, make_optimizer(task.space), self.config, preset_hash=preset_hash, resume=state,
                          rebuild=make_optimizer):
            records += result.records
            diagnostics += result.diagnostics
            metrics += result.metrics
            self.store(result, records, diagnostics, metrics)
            batches += 1
            if stop_after_batches is not None and batches >= stop_after_batches:
                return C.STATUS_RUNNING
        self.info.update({"status": C.STATUS_COMPLETED, "finished": now_iso()})
        self.folder.write_info(self.info)
        return C.STATUS_COMPLETED

    def store(self, result: BatchResult, records: list[dict[str, Any]], diagnostics: list[dict[str, Any]],
              metrics: list[dict[str, Any]]) -> None:
        """Write one batch, then the progress in ``run.json``."""
        state = result.state
        images_before = state.queries - len(result.records) if result.new_images is not None else 0
        if state.batch == 0 and result.initial_images is not None:
            self.folder.write_initial_images(to_uint8(result.initial_images))
        image_shape = None if state.query_images is None else state.query_images.shape[1:]
        self.folder.write_batch(records_frame(records), diagnostics, metrics, state_tree(state), result.new_images,
                                images_before, image_shape)
        if image_shape is not None:
            self.info["images"] = {"shape": list(image_shape), "queries": state.queries}
        if result.retrain_stats is not None:
            self.info["retrain_log"] = [*self.info.get("retrain_log", []), {
                "after_query": state.queries, "model_version": state.model_version, **result.retrain_stats}]
        self.info.update({"task_signature": state.signature, "queries_done": state.queries, "best": state.best,
                          "fallback_batches": state.fallbacks, "load_dependent": state.load_dependent,
                          "updated": now_iso()})
        self.folder.write_info(self.info)
        if self.progress is not None:
            self.progress(len(result.records) if state.batch > 0 else 0)

    def fail(self, exc: BaseException, reason: str | None = None) -> None:
        """Mark the run failed with ``reason`` (default: the exception's first line) and its traceback."""
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        message = reason or (first if isinstance(exc, RunFailed) else f"{type(exc).__name__}: {first}".rstrip(": "))
        error_file = self.folder.write_error(traceback.format_exc())
        self.info.update({"status": C.STATUS_FAILED, "finished": now_iso(), "error": message,
                          "error_file": str(error_file)})
        self.folder.write_info(self.info)
