from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.core import constants as C
from bench.core.config import RunConfig
from bench.run.loop import run
from bench.core.optimizer import Observations, Optimizer, Proposal
from bench.core.records import decode_latents, records_frame
from bench.store.files import read_frame, write_frame
from bench.store.run_folder import RunFolder
from bench.core.registry import task_spec
from bench.run.runner import execute_run, run_folder
from tests import REPO_ROOT, BenchCLI

ROOT = REPO_ROOT


def algorithmic(frame: pd.DataFrame) -> pd.DataFrame:
    """Records without the columns that measure the machine."""
    return frame.drop(columns=list(C.TIMING_COLUMNS)).reset_index(drop=True)


class Repeater(Optimizer):
    """Proposes the best point again (a duplicate), then a fresh random one."""

    def propose(self, n: int, data: Observations) -> Proposal:
        best = data.latents[data.best_index()]
        return Proposal(np.stack([best] + list(data.space.sample(n - 1, self.rng))))


class Broken(Optimizer):
    def propose(self, n: int, data: Observations) -> Proposal:
        raise RuntimeError("solver exploded")


def run_all(optimizer: Optimizer, config: RunConfig) -> tuple[list[dict], list[dict]]:
    task = task_spec(config.task).build()
    rows, diags = [], []
    for result in run(task, optimizer, config, preset_hash="x"):
        rows += result.records
        diags += result.diagnostics
    return rows, diags


def test_duplicates_flagged_and_counts() -> None:
    config = RunConfig(task="closed-form", optimizer="random", seed=0, budget=6, batch_size=2, n_initial=5)
    task = task_spec("closed-form").build()
    rows, _ = run_all(Repeater(task.space, 0), config)
    frame = records_frame(rows)
    assert len(frame) == 11 and frame[C.IS_INIT].sum() == 5
    queries = frame[~frame[C.IS_INIT]]
    assert queries[C.QUERY].tolist() == [1, 2, 3, 4, 5, 6]
    assert queries[C.BATCH].tolist() == [1, 1, 2, 2, 3, 3]
    assert queries[C.IS_DUPLICATE].tolist() == [True, False] * 3
    assert (np.diff(frame[C.BEST_SO_FAR]) >= 0).all()
    assert np.allclose(frame[C.REGRET], task.optimum_value - frame[C.SCORE])


def test_failing_propose_falls_back_and_is_logged() -> None:
    config = RunConfig(task="closed-form", optimizer="random", seed=0, budget=4, batch_size=2, n_initial=5,
                       limits={"max_fallback_share": 1.0})
    task = task_spec("closed-form").build()
    rows, diags = run_all(Broken(task.space, 0), config)
    queries = records_frame(rows).query(f"not {C.IS_INIT}")
    assert len(queries) == 4 and queries[C.IS_FALLBACK].all()
    assert [d[C.DIAG_BATCH] for d in diags] == [1, 2]
    assert all("solver exploded" in d[C.DIAG_MESSAGE] for d in diags)


def test_initial_design_depends_on_task_and_seed_only(tmp_path: Path) -> None:
    frames = {}
    for opt in ("random", "evolution"):
        config = RunConfig(task="closed-form", optimizer=opt, seed=3, budget=3)
        execute_run(config, run_folder(tmp_path, config))
        frames[opt] = run_folder(tmp_path, config).read_records()
    a, b = (f[f[C.IS_INIT]] for f in frames.values())
    assert a[C.LATENT].tolist() == b[C.LATENT].tolist()
    other = RunConfig(task="closed-form", optimizer="random", seed=4, budget=3)
    execute_run(other, run_folder(tmp_path, other))
    c = run_folder(tmp_path, other).read_records()
    assert c[c[C.IS_INIT]][C.LATENT].tolist() != a[C.LATENT].tolist()


@pytest.mark.parametrize("optimizer", ["random", "evolution", "local-search"])
def test_resumed_run_equals_uninterrupted(tmp_path: Path, optimizer: str) -> None:
    config = RunConfig(task="closed-form", optimizer=optimizer, seed=1, budget=12, batch_size=2)
    full = RunFolder(tmp_path / "full")
    assert execute_run(config, full) == C.STATUS_COMPLETED
    part = RunFolder(tmp_path / "part")
    assert execute_run(config, part, stop_after_batches=3) == C.STATUS_RUNNING
    assert part.status() == C.STATUS_RUNNING
    assert execute_run(config, part) == C.STATUS_COMPLETED
    pd.testing.assert_frame_equal(algorithmic(full.read_records()), algorithmic(part.read_records()))
    info = part.read_info()
    assert info["attempts"] == 2 and info["status"] == C.STATUS_COMPLETED
    assert info["task_signature"] == full.read_info()["task_signature"]


def test_run_json_provenance(tmp_path: Path) -> None:
    config = RunConfig(task="closed-form", optimizer="random", seed=0, budget=3)
    folder = run_folder(tmp_path, config)
    execute_run(config, folder)
    info = folder.read_info()
    assert folder.path == tmp_path / "runs" / "task=closed-form" / "opt=random" / "seed=0"
    for key in ("config", "packages", "git", "host", "started", "finished", "status", "task_signature",
                "preset_hash", "run_id"):
        assert key in info, key
    assert info["config"]["budget"] == 3 and "numpy" in info["packages"]
    assert set(info["git"]) == {"commit", "dirty"}
    records = folder.read_records()
    latents = decode_latents(records[C.LATENT], (4, 4), 16)
    task = task_spec("closed-form").build()
    np.testing.assert_allclose(task.evaluate(latents).scores, records[C.SCORE])


def test_failed_run_is_marked_and_retried(tmp_path: Path) -> None:
    config = RunConfig(task="closed-form", optimizer="random", seed=0, budget=3, task_params={"height": 0})
    folder = run_folder(tmp_path, config)
    assert execute_run(config, folder) == C.STATUS_FAILED
    info = folder.read_info()
    assert info["status"] == C.STATUS_FAILED and "height" in info["error"]
    assert "Traceback" in (folder.path / C.ERROR_FILE).read_text()


def test_records_round_trip_through_parquet(tmp_path: Path) -> None:
    config = RunConfig(task="closed-form", optimizer="evolution", seed=0, budget=5, batch_size=2)
    task = task_spec("closed-form").build()
    from bench.core.registry import optimizer_spec
    rows, _ = run_all(optimizer_spec("evolution").build(task.space, 0), config)
    frame = records_frame(rows)
    write_frame(tmp_path / "r.parquet", frame)
    pd.testing.assert_frame_equal(frame, read_frame(tmp_path / "r.parquet"))
    assert list(frame.columns) == list(C.RECORD_COLUMNS)


def test_killed_run_leaves_only_complete_files_and_resumes(tmp_path: Path, bench_subprocess: BenchCLI) -> None:
    """SIGKILL a run mid-way: every file left is complete, and resuming matches an uninterrupted run."""
    args = ["--task", "closed-form", "--optimizer", "evolution", "--seed", "2", "--budget", "400", "-q"]
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "run", *args, "--out", str(tmp_path / "killed")],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = RunFolder(tmp_path / "killed/runs/task=closed-form/opt=evolution/seed=2")
    deadline = time.time() + 120
    while time.time() < deadline and not (folder.file(C.RECORDS_FILE).exists() and len(folder.read_records()) > 60):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert folder.status() == C.STATUS_RUNNING
    for path in folder.path.iterdir():  # temp files may remain, but under a hidden name no reader globs
        if path.name.startswith("."):
            continue
        if path.suffix == ".parquet":
            read_frame(path)
    n_before = len(folder.read_records())
    assert 20 < n_before < 420
    assert bench_subprocess("run", *args, "--out", str(tmp_path / "killed")).returncode == 0
    assert bench_subprocess("run", *args, "--out", str(tmp_path / "full")).returncode == 0
    full = RunFolder(tmp_path / "full/runs/task=closed-form/opt=evolution/seed=2")
    pd.testing.assert_frame_equal(algorithmic(full.read_records()), algorithmic(folder.read_records()))
