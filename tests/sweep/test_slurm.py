"""Sweeps through a real SLURM controller (``bash slurm/local-cluster.sh up``; CI starts it).

Covers a small sweep submitted as a job array, a job preempted with ``job._interrupt()`` that
requeues and resumes to the records of an uninterrupted run, and a cancelled job that must not
hang the client.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bench.core import constants as C
from bench.store.sweep_folder import SweepFolder
from bench.sweep.cluster import slurm_available
from bench.sweep.job import SweepJob
from bench.sweep.launch import launch, make_executor, wait_for_jobs
from bench.sweep.profiles import Profile
from bench.sweep.status import format_status, sweep_status

from bench.run.runner import execute_run, run_folder
from bench.sweep.spec import parse_spec, write_resolved

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.slow,
    pytest.mark.skipif(not slurm_available(), reason="no SLURM controller reachable (sinfo failed); "
                                                     "start one with `bash slurm/local-cluster.sh up`"),
]

PROFILE = Profile(name="test", cpus_per_task=1, mem_gb=0.5, timeout_min=30, array_parallelism=2)


def quiet(*_: Any) -> None:
    pass


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=list(C.TIMING_COLUMNS)).reset_index(drop=True)


def wait_until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.2)


def test_small_sweep_runs_as_an_array(tmp_path: Path) -> None:
    spec = parse_spec({"name": "slurm-small", "seeds": [0, 1, 2], "tasks": ["closed-form/small"],
                       "run": {"budget": 4, "n_initial": 4}, "method": [{"optimizer": "random"}]})
    result = launch(spec, tmp_path, "slurm", profile=PROFILE, runs_per_job=2, wait_timeout_s=300, log=quiet)
    assert not result.lost_jobs and not result.unfinished_jobs
    base = {job_id.split("_")[0] for job_id in result.job_ids}
    assert len(result.job_ids) == 2 and len(base) == 1  # one array, two tasks
    assert all(report.slurm_job_id and report.model_loads == 1 for report in result.reports)
    rows = sweep_status(tmp_path)
    assert [row.state for row in rows] == [C.STATUS_COMPLETED] * 3
    assert "3 runs: 3 completed" in format_status(rows)
    for config in spec.runs:
        assert run_folder(tmp_path, config).read_info()["host"]["slurm_job_id"]


def test_interrupted_job_requeues_and_resumes_identically(tmp_path: Path) -> None:
    spec = parse_spec({"name": "slurm-preempt", "seeds": [5], "tasks": ["closed-form/small"],
                       "run": {"budget": 60, "batch_size": 1, "n_initial": 4}, "method": [{"optimizer": "evolution"}]})
    config = spec.runs[0]
    sweep_dir = tmp_path / "sweep"
    write_resolved(spec, SweepFolder(sweep_dir))
    folder = run_folder(sweep_dir, config)
    executor = make_executor("slurm", sweep_dir / "submitit", PROFILE)
    job = executor.submit(SweepJob(str(sweep_dir), [config.to_dict()], spec.name, False, 1))

    def progressed() -> bool:
        return folder.exists() and int(folder.read_info().get("queries_done", 0)) >= 5

    wait_until(progressed, 180, "the run to checkpoint a few batches")
    job._interrupt()  # preemption: SIGTERM then the checkpoint signal; submitit requeues the job
    reports, lost, unfinished = wait_for_jobs("slurm", [job], 300, quiet)
    assert not lost and not unfinished and len(reports) == 1
    info = folder.read_info()
    assert info["status"] == C.STATUS_COMPLETED
    assert info["attempts"] == 2, "the job was not interrupted mid-run; make the run longer"

    reference = run_folder(tmp_path / "reference", config)
    assert execute_run(config, reference) == C.STATUS_COMPLETED
    pd.testing.assert_frame_equal(comparable(folder.read_records()), comparable(reference.read_records()))


def test_cancelled_job_does_not_hang_the_client(tmp_path: Path) -> None:
    spec = parse_spec({"name": "slurm-cancel", "seeds": [0], "tasks": ["closed-form/small"],
                       "run": {"budget": 500, "n_initial": 4}, "method": [{"optimizer": "random"}]})
    result = launch(spec, tmp_path, "slurm", profile=PROFILE, wait=False, log=quiet)
    assert result.unfinished_jobs == result.job_ids and len(result.job_ids) == 1
    subprocess.run(["scancel", result.job_ids[0]], check=True, timeout=30)
    executor = make_executor("slurm", tmp_path / "unused", PROFILE)
    job = executor.job_class(folder=next((tmp_path / "submitit").iterdir()), job_id=result.job_ids[0])
    start = time.monotonic()
    reports, lost, unfinished = wait_for_jobs("slurm", [job], 120, quiet)
    assert lost == result.job_ids and not reports and not unfinished
    assert time.monotonic() - start < 60
    row = sweep_status(tmp_path)[0]
    assert row.state in (C.STATUS_PENDING, C.STATUS_RUNNING) and "is gone" in row.note
