"""Sweep specs, job planning, idempotent relaunch, retry of failures and status (no SLURM needed)."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bench.core import constants as C
from bench.cli.main import main as bench_main
from bench.core.config import ConfigError
from bench.store.sweep_folder import LAUNCHES_DIR, SweepFolder
from bench.sweep.launch import launch
from bench.sweep.plan import plan_jobs, plan_local_jobs
from bench.sweep.profiles import PROFILES_DIR, Profile, load_profile
from bench.sweep.status import format_status, sweep_status
from bench.store.files import read_json
from bench.core.registry import UnknownName
from bench.run.runner import execute_run, run_folder
from bench.sweep.spec import SWEEP_FILE, load_spec, parse_spec, read_resolved_runs, write_resolved
from tests import REPO_ROOT

REPO = REPO_ROOT
SPEC: dict[str, Any] = {
    "name": "t",
    "seeds": [0, 1],
    "tasks": ["closed-form/small", {"name": "closed-form", "params": {"height": 2, "width": 3, "codebook_size": 4}}],
    "run": {"budget": 6, "batch_size": 2, "n_initial": 4, "retrain": {"epochs": 0.5}, "metrics": {"every": 0}},
    "method": [{"optimizer": "random"},
               {"optimizer": "evolution", "label": "evo", "budget": 4, "retrain": {"k": 0.01}}],
    "executor": {"profile": "local", "runs_per_job": 3},
}
PROFILE = Profile(name="test", cpus_per_task=1, timeout_min=30, array_parallelism=2)


def spec_with(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(SPEC)
    data.update(changes)
    return data


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=list(C.TIMING_COLUMNS)).reset_index(drop=True)


def quiet(*_: Any) -> None:
    pass


# --- spec parsing and expansion -------------------------------------------------------------


def test_expansion_is_task_major_with_merged_options() -> None:
    spec = parse_spec(SPEC)
    assert spec.name == "t" and len(spec.runs) == 2 * 2 * 2
    assert [(c.task, c.label, c.seed) for c in spec.runs[:4]] == [
        ("closed-form/small", "random", 0), ("closed-form/small", "random", 1),
        ("closed-form/small", "evo", 0), ("closed-form/small", "evo", 1)]
    evo = spec.runs[2]
    assert evo.optimizer == "evolution" and evo.budget == 4 and evo.batch_size == 2
    # method-level retrain merges into [run].retrain key by key
    assert evo.retrain.k == 0.01 and evo.retrain.epochs == 0.5 and math.isinf(evo.retrain.every)
    assert spec.runs[0].label == "random" and spec.runs[0].budget == 6
    assert spec.runs[4].task_params == {"height": 2, "width": 3, "codebook_size": 4}
    assert len({c.run_id for c in spec.runs}) == len(spec.runs)
    assert [c.run_id for c in parse_spec(copy.deepcopy(SPEC)).runs] == [c.run_id for c in spec.runs]
    assert spec.executor.profile == "local" and spec.executor.runs_per_job == 3


@pytest.mark.parametrize("change, key", [
    ({"colour": 1}, "colour"),
    ({"run": {"budget": 5, "budjet": 3}}, "budjet"),
    ({"run": {"metrics": {"evry": 3}}}, "evry"),
    ({"run": {"retrain": {"kk": 3}}}, "kk"),
    ({"method": [{"optimizer": "random", "sed": 1}]}, "sed"),
    ({"executor": {"profile": "local", "runs_per_jobs": 2}}, "runs_per_jobs"),
    ({"tasks": [{"name": "closed-form", "parms": {}}]}, "parms"),
])
def test_unknown_keys_are_named(change: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        parse_spec(spec_with(**change))


@pytest.mark.parametrize("change, message", [
    ({"seeds": []}, "seeds"),
    ({"seeds": [0, 0]}, "repeat"),
    ({"method": [{"optimizer": "random"}, {"optimizer": "random"}]}, "used twice"),
    ({"method": [{"label": "x"}]}, "optimizer"),
    ({"executor": {"runs_per_job": 0}}, "runs_per_job"),
    ({"tasks": ["closed-form", {"name": "closed-form", "params": {"height": 2}}]}, "share the folder"),
    ({"run": {"budget": 0}}, "budget"),
])
def test_invalid_values_raise_config_errors(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_spec(spec_with(**change))


def test_unknown_names_fail_before_submitting() -> None:
    with pytest.raises(UnknownName, match="no-such-opt"):
        parse_spec(spec_with(method=[{"optimizer": "no-such-opt"}]))
    with pytest.raises(UnknownName, match="heigth"):
        parse_spec(spec_with(tasks=[{"name": "closed-form", "params": {"heigth": 2}}]))


def test_shipped_spec_and_profiles_parse() -> None:
    spec = load_spec(REPO / "slurm" / "specs" / "tiny.toml")
    assert spec.name == "tiny" and len(spec.runs) == 8
    local, gpu = load_profile("local"), load_profile("gpu-cluster")
    assert local.gpus_per_node == 0 and local.array_parallelism == 2
    assert gpu.gpus_per_node >= 1 and gpu.extra_sbatch and gpu.setup
    assert {p.stem for p in PROFILES_DIR.glob("*.toml")} >= {"local", "gpu-cluster"}


def test_profile_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('partition = "x"\ngpus = 1\n')
    with pytest.raises(ConfigError, match="gpus"):
        load_profile(str(bad))
    bad.write_text("gpus_per_node = -1\n")
    with pytest.raises(ConfigError, match="gpus_per_node"):
        load_profile(str(bad))
    with pytest.raises(Exception, match="valid profiles"):
        load_profile("no-such-profile")


def test_sweep_json_lists_every_resolved_run(tmp_path: Path) -> None:
    spec = parse_spec(SPEC)
    path = write_resolved(spec, SweepFolder(tmp_path))
    data = read_json(path)
    assert path.name == SWEEP_FILE and data["name"] == "t"
    assert [r["run_id"] for r in data["runs"]] == [c.run_id for c in spec.runs]
    assert data["runs"][0]["folder"] == "runs/task=closed-form+small/opt=random/seed=0"
    # the JSON round trip (inf written as a string) keeps every run id
    assert [c.run_id for c in read_resolved_runs(SweepFolder(tmp_path))] == [c.run_id for c in spec.runs]
    with pytest.raises(ConfigError, match="holds sweep"):
        write_resolved(parse_spec(spec_with(name="other")), SweepFolder(tmp_path))


# --- planning -------------------------------------------------------------------------------


def test_packs_never_mix_tasks() -> None:
    runs = parse_spec(SPEC).runs
    packs = plan_jobs(runs, 3)
    assert [len(p) for p in packs] == [3, 1, 3, 1]
    assert all(len({(c.task, repr(c.task_params)) for c in pack}) == 1 for pack in packs)
    assert [c for pack in packs for c in pack] == list(runs)
    local = plan_local_jobs(runs, 2)
    assert [len(p) for p in local] == [4, 4] and [c for p in local for c in p] == list(runs)
    assert len(plan_local_jobs(runs[:1], 2)) == 1


# --- launching with the in-process executor ---------------------------------------------------


def test_debug_sweep_then_idempotent_relaunch(tmp_path: Path) -> None:
    spec = parse_spec(SPEC)
    write_resolved(spec, SweepFolder(tmp_path))
    assert {row.state for row in sweep_status(tmp_path)} == {C.STATUS_PENDING}
    result = launch(spec, tmp_path, "debug", profile=PROFILE, log=quiet)
    assert len(result.reports) == 4 and not result.lost_jobs  # two tasks x 4 runs, packs of <= 3
    assert all(r.model_loads == 1 for r in result.reports)
    rows = sweep_status(tmp_path)
    assert [row.state for row in rows] == [C.STATUS_COMPLETED] * 8
    assert "8 runs: 8 completed, 0 running, 0 pending, 0 failed" in format_status(rows)
    before = {c.run_id: run_folder(tmp_path, c).read_records() for c in spec.runs}
    again = launch(spec, tmp_path, "debug", profile=PROFILE, log=quiet)
    assert again.job_ids == [] and again.launch_file is None
    assert len(list((tmp_path / LAUNCHES_DIR).glob("*.json"))) == 1
    for config in spec.runs:
        pd.testing.assert_frame_equal(run_folder(tmp_path, config).read_records(), before[config.run_id])
        assert run_folder(tmp_path, config).read_info()["attempts"] == 1


def test_relaunch_resumes_partial_run_to_identical_records(tmp_path: Path) -> None:
    spec = parse_spec(spec_with(seeds=[3], tasks=["closed-form/small"], method=[{"optimizer": "evolution"}],
                                run={"budget": 8, "batch_size": 1, "n_initial": 4}))
    config = spec.runs[0]
    reference = run_folder(tmp_path / "reference", config)
    assert execute_run(config, reference) == C.STATUS_COMPLETED
    folder = run_folder(tmp_path / "sweep", config)
    assert execute_run(config, folder, stop_after_batches=3) == C.STATUS_RUNNING  # as if preempted
    write_resolved(spec, SweepFolder(tmp_path / "sweep"))
    assert [row.state for row in sweep_status(tmp_path / "sweep")] == [C.STATUS_RUNNING]
    launch(spec, tmp_path / "sweep", "debug", profile=PROFILE, log=quiet)
    assert folder.read_info()["attempts"] == 2 and folder.status() == C.STATUS_COMPLETED
    pd.testing.assert_frame_equal(comparable(folder.read_records()), comparable(reference.read_records()))


def test_failed_runs_are_isolated_and_rerun_only_when_asked(tmp_path: Path) -> None:
    # codebook_size 0 passes the name check but makes the task raise when it is built
    spec = parse_spec(spec_with(tasks=["closed-form/small", {"name": "closed-form", "params": {"codebook_size": 0}}],
                                method=[{"optimizer": "random"}]))
    result = launch(spec, tmp_path, "debug", profile=PROFILE, runs_per_job=4, log=quiet)
    assert len(result.reports) == 2
    rows = sweep_status(tmp_path)
    states = {(row.config.task, row.config.seed): row for row in rows}
    assert states[("closed-form/small", 0)].state == C.STATUS_COMPLETED
    failed = states[("closed-form", 1)]
    assert failed.state == C.STATUS_FAILED and failed.error and failed.log
    assert Path(failed.log).name == C.ERROR_FILE and "Traceback" in Path(failed.log).read_text()
    text = format_status(rows)
    assert "2 completed, 0 running, 0 pending, 2 failed" in text and f"error: {failed.error}" in text

    assert launch(spec, tmp_path, "debug", profile=PROFILE, log=quiet).job_ids == []
    retried = launch(spec, tmp_path, "debug", profile=PROFILE, retry_failed=True, log=quiet)
    assert sorted(r for rep in retried.reports for r in rep.statuses) == sorted(
        c.run_id for c in spec.runs if c.task == "closed-form")
    assert run_folder(tmp_path, failed.config).read_info()["attempts"] == 2
    assert run_folder(tmp_path, spec.runs[0]).read_info()["attempts"] == 1


def test_cli_sweep_and_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec_file = tmp_path / "mini.toml"
    spec_file.write_text('seeds = [0]\ntasks = ["closed-form/small"]\n[run]\nbudget = 3\nn_initial = 3\n'
                         '[[method]]\noptimizer = "random"\n')
    out = tmp_path / "out"
    assert bench_main(["sweep", str(spec_file), "--executor", "debug", "--out", str(out)]) == 0
    assert bench_main(["status", str(out)]) == 0
    assert "1 runs: 1 completed" in capsys.readouterr().out
    spec_file.write_text(spec_file.read_text() + "typo = 1\n")
    assert bench_main(["sweep", str(spec_file), "--executor", "debug", "--out", str(out)]) == 2
    assert "typo" in capsys.readouterr().err
    assert bench_main(["status", str(tmp_path)]) == 2


@pytest.mark.slow
def test_local_executor_runs_jobs_in_parallel_processes(tmp_path: Path) -> None:
    spec = parse_spec(spec_with(method=[{"optimizer": "random"}], tasks=["closed-form/small"], seeds=[0, 1, 2, 3]))
    result = launch(spec, tmp_path, "local", profile=PROFILE, wait_timeout_s=300, log=quiet)
    assert len(result.job_ids) == 2 and len(result.reports) == 2 and not result.lost_jobs
    assert {r.model_loads for r in result.reports} == {1}
    assert [row.state for row in sweep_status(tmp_path)] == [C.STATUS_COMPLETED] * 4
