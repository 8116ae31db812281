"""Integrity of results: failures stay in their run, signals are never swallowed, folders are safe to open.

Every test here provokes a failure for real: an optimizer that exits, hangs or returns garbage, a
signal delivered while ``propose`` runs, a planted pickle payload, damaged files, a killed report.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import submitit

import tests.plugins  # noqa: F401 - registers the misbehaving optimizers
from bench.analysis.aggregate import load_sweep
from bench.cli.main import main
from bench.core import constants as C
from bench.core.config import RunConfig
from bench.run.runner import execute_run, run_folder
from bench.store import safe
from bench.store.locks import FolderLock
from bench.store.run_folder import iter_run_folders
from bench.sweep.launch import launch
from bench.sweep.profiles import Profile
from bench.sweep.spec import parse_spec
from tests.plugins import PluginSweepJob
from tests import REPO_ROOT

ROOT = REPO_ROOT
PROFILE = Profile(name="test", cpus_per_task=1, timeout_min=30, array_parallelism=2)


def config(optimizer: str = "random", **changes: object) -> RunConfig:
    base: dict[str, object] = {"task": "closed-form/small", "optimizer": optimizer, "seed": 0, "budget": 6,
                               "n_initial": 4}
    return RunConfig.from_dict({**base, **changes})


def algorithmic(folder_path: Path) -> pd.DataFrame:
    records = pd.read_parquet(folder_path / C.RECORDS_FILE)
    return records.drop(columns=list(C.TIMING_COLUMNS)).reset_index(drop=True)


def reference_records(tmp_path: Path, cfg: RunConfig) -> pd.DataFrame:
    folder = run_folder(tmp_path / "reference", cfg)
    assert execute_run(cfg, folder) == C.STATUS_COMPLETED
    return algorithmic(folder.path)


# --- failures inside propose stay in their run -------------------------------------------------------


def test_sys_exit_fails_only_its_run_and_the_job_goes_on(tmp_path: Path) -> None:
    spec = parse_spec({"name": "exits", "seeds": [0], "tasks": ["closed-form/small"],
                       "run": {"budget": 4, "n_initial": 4},
                       "method": [{"optimizer": "test-exit"}, {"optimizer": "random"}]})
    result = launch(spec, tmp_path, "debug", profile=PROFILE, runs_per_job=2, log=lambda *a: None)
    assert result.reports[0].statuses == {spec.runs[0].run_id: C.STATUS_FAILED, spec.runs[1].run_id: C.STATUS_COMPLETED}
    info = run_folder(tmp_path, spec.runs[0]).read_info()
    assert info["status"] == C.STATUS_FAILED and "sys.exit(3)" in info["error"]


@pytest.mark.parametrize("kind, message", [("nan", "NaN"), ("none", "Proposal"), ("array", "Proposal"),
                                           ("out-of-range", "outside the codebook"), ("shape", "shape"),
                                           ("raise", "solver exploded")])
def test_an_optimizer_that_always_fails_fails_its_run(tmp_path: Path, kind: str, message: str) -> None:
    cfg = config("test-bad", optimizer_params={"kind": kind})
    folder = run_folder(tmp_path, cfg)
    assert execute_run(cfg, folder) == C.STATUS_FAILED
    info = folder.read_info()
    assert "failed in" in info["error"] and "first error" in info["error"] and message in info["error"]
    # allowed on purpose: every batch falls back to harness-drawn random points, and the run completes
    tolerant = config("test-bad", optimizer_params={"kind": kind}, limits={"max_fallback_share": 1.0})
    folder = run_folder(tmp_path / "tolerant", tolerant)
    assert execute_run(tolerant, folder) == C.STATUS_COMPLETED
    records = pd.read_parquet(folder.file(C.RECORDS_FILE))
    assert records.loc[~records[C.IS_INIT], C.IS_FALLBACK].all()


def test_a_hanging_propose_hits_the_time_limit(tmp_path: Path) -> None:
    cfg = config("test-hang", limits={"time_limit_s": 1.0})
    folder = run_folder(tmp_path, cfg)
    started = time.monotonic()
    assert execute_run(cfg, folder) == C.STATUS_FAILED
    assert time.monotonic() - started < 30
    assert "did not return within 1 s" in folder.read_info()["error"]
    # on_timeout = fallback: the run goes on with random points and is flagged load-dependent
    cfg = config("test-hang", budget=2, limits={"time_limit_s": 1.0, "on_timeout": "fallback",
                                                "max_fallback_share": 1.0})
    folder = run_folder(tmp_path / "fallback", cfg)
    assert execute_run(cfg, folder) == C.STATUS_COMPLETED
    assert folder.read_info()["load_dependent"] is True
    runs = load_sweep(tmp_path / "fallback").runs
    assert bool(runs.loc[0, "complete"]) and "load-dependent" in runs.loc[0, "note"]


# --- signals delivered while propose runs --------------------------------------------------------------


def _signal_inside_propose(tmp_path: Path, max_num_timeout: int) -> tuple[submitit.Job, RunConfig, Path]:
    marker = tmp_path / "marker"
    cfg = config("test-sleepy", optimizer_params={"marker": str(marker), "sleep_s": 30.0})
    executor = submitit.LocalExecutor(tmp_path / "submitit", max_num_timeout=max_num_timeout)
    executor.update_parameters(timeout_min=5)  # at <= 10 min submitit counts every signal as a time-out
    sweep = tmp_path / "sweep"
    job = executor.submit(PluginSweepJob(str(sweep), [cfg.to_dict()], "signals", False, 1))
    deadline = time.monotonic() + 120
    while not marker.exists() or not marker.read_text().strip():
        assert time.monotonic() < deadline, "the job never reached propose"
        time.sleep(0.1)
    os.kill(int(marker.read_text()), signal.SIGUSR2)  # submitit's time-out signal, inside propose
    while not job.done():
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.2)
    return job, cfg, sweep


@pytest.mark.slow
def test_time_out_without_requeue_inside_propose_fails_the_run(tmp_path: Path) -> None:
    job, cfg, sweep = _signal_inside_propose(tmp_path, max_num_timeout=0)
    with pytest.raises(submitit.core.utils.FailedJobError, match="UncompletedJobError"):
        job.result()
    info = run_folder(sweep, cfg).read_info()
    assert info["status"] == C.STATUS_FAILED and "UncompletedJobError" in info["error"]
    assert load_sweep(sweep).runs.loc[0, "complete"] == False  # noqa: E712 - numpy bool


@pytest.mark.slow
def test_time_out_with_requeue_inside_propose_resumes_identically(tmp_path: Path) -> None:
    job, cfg, sweep = _signal_inside_propose(tmp_path, max_num_timeout=1)
    assert job.result().statuses == {cfg.run_id: C.STATUS_COMPLETED}
    resumed = run_folder(sweep, cfg)
    assert resumed.read_info()["attempts"] == 2
    uninterrupted = config("test-sleepy")  # no marker: never sleeps; same proposals
    expected = reference_records(tmp_path, uninterrupted).drop(columns=[C.RUN_ID, C.PRESET_HASH])
    pd.testing.assert_frame_equal(algorithmic(resumed.path).drop(columns=[C.RUN_ID, C.PRESET_HASH]), expected)


@pytest.mark.slow
def test_ctrl_c_inside_propose_fails_the_run_and_a_rerun_resumes_it(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    args = ["run", "--task", "closed-form/small", "--optimizer", "test-sleepy", "--budget", "6", "--n-initial", "4",
            "--opt", f"marker={str(marker)!r}", "--out", str(tmp_path / "out"), "-q"]
    # Ctrl-C as in a terminal: a test runner started in the background of a non-interactive shell
    # inherits SIGINT ignored, and Python then keeps it ignored (no KeyboardInterrupt at all).
    code = ("import signal, sys, tests.plugins; signal.signal(signal.SIGINT, signal.default_int_handler); "
            f"from bench.cli.main import main; sys.exit(main({args!r}))")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists() or not marker.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "rerun the same command to resume" in err and "Traceback" not in err
    cfg = config("test-sleepy", optimizer_params={"marker": str(marker)})
    folder = run_folder(tmp_path / "out", cfg)
    assert folder.read_info()["status"] == C.STATUS_FAILED and "interrupted" in folder.read_info()["error"]
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    expected = reference_records(tmp_path, cfg)
    pd.testing.assert_frame_equal(algorithmic(folder.path), expected)


# --- safe results folders ---------------------------------------------------------------------------------


class Payload:
    """Unpickling this runs a shell command that creates a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.path}",))


def test_planted_pickles_never_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config()
    folder = run_folder(tmp_path, cfg)
    assert execute_run(cfg, folder, stop_after_batches=2) == C.STATUS_RUNNING
    pwned = tmp_path / "pwned"
    # an older version's pickle checkpoint, and a checkpoint.npz holding a pickled object array
    (folder.path / "checkpoint.pkl").write_bytes(pickle.dumps(Payload(pwned)))
    with open(folder.file(C.CHECKPOINT_FILE), "wb") as fh:
        np.save(fh, np.array([Payload(pwned)], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle=False"):
        safe.loads(folder.file(C.CHECKPOINT_FILE).read_bytes())
    assert main(["report", str(tmp_path)]) == 0
    assert execute_run(cfg, folder, restart_damaged=False) == C.STATUS_FAILED
    assert "cannot read" in folder.read_info()["error"]
    assert execute_run(cfg, folder) == C.STATUS_COMPLETED  # restarted from scratch, saying so
    assert "from scratch" in folder.read_info()["restarted"]
    assert not pwned.exists()


def test_unsafe_optimizer_state_is_refused_with_its_place(tmp_path: Path) -> None:
    with pytest.raises(safe.UnsafeState, match=r"state\['solver'\] holds a builtins.object"):
        safe.dumps({"solver": object()})


# --- damaged folders never stop the others ----------------------------------------------------------------


@pytest.fixture()
def small_sweep(tmp_path: Path) -> tuple[Path, list[RunConfig]]:
    spec = parse_spec({"name": "damage", "seeds": [0, 1, 2], "tasks": ["closed-form/small"],
                       "run": {"budget": 4, "n_initial": 4}, "method": [{"optimizer": "random"}]})
    launch(spec, tmp_path / "s", "debug", profile=PROFILE, log=lambda *a: None)
    return tmp_path / "s", list(spec.runs)


@pytest.mark.parametrize("damage", ["run.json", "records", "checkpoint"])
def test_a_damaged_run_is_listed_and_retried(small_sweep: tuple[Path, list[RunConfig]], damage: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    sweep, runs = small_sweep
    folder = run_folder(sweep, runs[1])
    if damage == "checkpoint":  # a checkpoint matters only to an unfinished run
        info = folder.read_info()
        folder.write_info({**info, "status": C.STATUS_RUNNING})
    target = {"run.json": C.RUN_FILE, "records": C.RECORDS_FILE, "checkpoint": C.CHECKPOINT_FILE}[damage]
    data = folder.file(target).read_bytes()
    folder.file(target).write_bytes(data[: len(data) // 2])
    assert main(["status", str(sweep)]) == 0
    out = capsys.readouterr().out
    if damage == "run.json":
        assert "damaged" in out and "run.json" in out
    assert main(["report", str(sweep)]) == 0
    runs_table = (sweep / "report" / "runs.md").read_text()
    if damage != "checkpoint":  # the report reads run.json and records, never checkpoints
        assert "damaged" in runs_table
    assert runs_table.count("included") >= 2
    spec_path = sweep / "spec.toml"
    spec_path.write_text('name = "damage"\nseeds = [0, 1, 2]\ntasks = ["closed-form/small"]\n'
                         '[run]\nbudget = 4\nn_initial = 4\n[[method]]\noptimizer = "random"\n')
    assert main(["sweep", str(spec_path), "--executor", "debug", "--out", str(sweep), "--retry-failed"]) == 0
    info = folder.read_info()
    assert info["status"] == C.STATUS_COMPLETED
    assert ("restarted" in info) or ("repaired" in info)


def test_stray_temporaries_are_removed_on_the_next_write(tmp_path: Path) -> None:
    cfg = config()
    folder = run_folder(tmp_path, cfg)
    execute_run(cfg, folder, stop_after_batches=1)
    stray = folder.path / f".{C.RECORDS_FILE}.abc123.tmp"
    stray.write_bytes(b"half a parquet file")
    execute_run(cfg, folder)
    assert not stray.exists()


def test_records_that_disagree_with_their_config_are_not_averaged(small_sweep: tuple[Path, list[RunConfig]]) -> None:
    sweep, runs = small_sweep
    folder = run_folder(sweep, runs[0])
    records = pd.read_parquet(folder.file(C.RECORDS_FILE))
    records[C.RUN_ID] = "someone-else"
    records.to_parquet(folder.file(C.RECORDS_FILE))
    table = load_sweep(sweep).runs.set_index(C.SEED)
    assert not table.loc[0, "complete"] and "disagree" in table.loc[0, "flag"]
    assert table.loc[1, "complete"] and table.loc[2, "complete"]


# --- atomic report, locks --------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_killed_report_leaves_the_previous_one_intact(small_sweep: tuple[Path, list[RunConfig]]) -> None:
    sweep, _ = small_sweep
    assert main(["report", str(sweep)]) == 0
    before = {p.name: p.read_bytes() for p in (sweep / "report").iterdir()}
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "report", str(sweep)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(4.0)  # mid-way: figures take longer than this
    proc.kill()
    proc.wait()
    after = {p.name: p.read_bytes() for p in (sweep / "report").iterdir()}
    assert after == before
    assert main(["report", str(sweep)]) == 0
    assert not list(sweep.glob(".report.staging-*"))


def test_one_launcher_per_sweep_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec_path = ROOT / "slurm" / "specs" / "tiny.toml"
    out = tmp_path / "tiny"
    with FolderLock(out, what="sweep folder"):
        assert main(["sweep", str(spec_path), "--executor", "debug", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is being written by pid" in err and "Traceback" not in err
    assert not (out / "sweep.json").exists()


def test_a_dead_holder_releases_the_lock(tmp_path: Path) -> None:
    code = (f"from bench.store.locks import FolderLock; import time; FolderLock({str(tmp_path)!r}).acquire(); "
            "print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    with pytest.raises(Exception, match="being written by"):
        FolderLock(tmp_path).acquire()
    proc.kill()
    proc.wait()
    FolderLock(tmp_path).acquire().release()


def test_extend_continues_a_run_on_purpose_and_says_so(tmp_path: Path) -> None:
    short, longer = config(budget=4), config(budget=7)
    folder = run_folder(tmp_path, short)
    assert execute_run(short, folder) == C.STATUS_COMPLETED
    assert execute_run(longer, folder, extend=True) == C.STATUS_COMPLETED
    info = folder.read_info()
    assert info["extended"][0]["from_budget"] == 4 and info["extended"][0]["to_budget"] == 7
    records = pd.read_parquet(folder.file(C.RECORDS_FILE))
    assert records[C.RUN_ID].unique().tolist() == [longer.run_id]
    assert records[C.QUERY].max() == 7
    runs = load_sweep(tmp_path).runs
    assert bool(runs.loc[0, "complete"]) and "extended from 4 to 7" in runs.loc[0, "note"]


def test_a_refusal_inside_propose_fails_the_run_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """cmaes-embed refuses a task without a codebook (a UserError): no random fallback batches."""
    argv = ["run", "--task", "closed-form", "--task-opt", "code_dim=0", "--optimizer", "cmaes-embed",
            "--budget", "6", "--out", str(tmp_path), "-q"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "codebook" in err and "Traceback" not in err
    folder = next(iter_run_folders(tmp_path))
    assert folder.status() == C.STATUS_FAILED
    assert not folder.file(C.RECORDS_FILE).exists() or not folder.read_records()[C.IS_FALLBACK].any()
