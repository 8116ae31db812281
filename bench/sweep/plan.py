"""Which runs of a sweep still need work, and how they are packed into jobs."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from bench.core import constants as C
from bench.core.config import RunConfig
from bench.run.runner import check_identity, records_damaged, run_folder
from bench.store.files import StoreError
from bench.sweep.profiles import Profile


@dataclass
class Plan:
    """The runs to submit, and the runs left alone with the reason."""

    todo: list[RunConfig] = field(default_factory=list)
    skipped: list[tuple[RunConfig, str]] = field(default_factory=list)


def runs_to_do(sweep_dir: Path, runs: Sequence[RunConfig], retry_failed: bool, extend: bool = False) -> Plan:
    """Runs that still need work: not completed, and not failed or damaged unless ``retry_failed``.

    Every existing run folder must hold the run its config describes: a folder holding another
    run raises :class:`~bench.run.runner.RunIdentityError` (before anything is submitted), and a
    larger budget extends a run only with ``extend``.
    """
    plan = Plan()
    for config in runs:
        folder = run_folder(sweep_dir, config)
        if not folder.exists():
            plan.todo.append(config)
            continue
        try:
            info = folder.read_info()
        except StoreError as exc:
            (plan.todo.append(config) if retry_failed else plan.skipped.append((config, f"damaged: {exc}")))
            continue
        info = check_identity(config, folder, info, extend)
        status = info["status"]
        if status == C.STATUS_COMPLETED and not (retry_failed and records_damaged(folder)):
            plan.skipped.append((config, "completed"))
        elif status == C.STATUS_FAILED and not retry_failed:
            plan.skipped.append((config, "failed (rerun with --retry-failed)"))
        else:
            plan.todo.append(config)
    return plan


def _task_key(config: RunConfig) -> str:
    return repr((config.task, sorted(config.task_params.items())))


def plan_jobs(runs: Sequence[RunConfig], runs_per_job: int) -> list[list[RunConfig]]:
    """Packs of at most ``runs_per_job`` runs; a pack never mixes tasks, so it loads one model."""
    groups: dict[str, list[RunConfig]] = {}
    for config in runs:
        groups.setdefault(_task_key(config), []).append(config)
    return [group[i:i + runs_per_job] for group in groups.values() for i in range(0, len(group), runs_per_job)]


def plan_local_jobs(runs: Sequence[RunConfig], slots: int) -> list[list[RunConfig]]:
    """Exactly ``min(slots, len(runs))`` packs of consecutive runs, all running at once.

    Runs come in task-major order, so consecutive packs span few tasks and load few models.
    """
    n_jobs = max(1, min(slots, len(runs)))
    size = math.ceil(len(runs) / n_jobs)
    return [list(runs[i:i + size]) for i in range(0, len(runs), size)]


def local_slots(profile: Profile) -> int:
    """Jobs the local executor runs at once: the machine's cores divided by the job's CPUs."""
    return max(1, min(profile.array_parallelism, (os.cpu_count() or 1) // profile.cpus_per_task))
