from __future__ import annotations

from pathlib import Path

import pytest

from bench.core import constants as C
from bench.cli.main import main
from bench.store.run_folder import RunFolder
from tests import BenchCLI


def test_list_names_everything(capsys: pytest.CaptureFixture) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("closed-form", "random", "random/empirical", "evolution", "local-search"):
        assert name in out


@pytest.mark.parametrize("args, message", [
    (["--task", "nope", "--optimizer", "random"], "unknown task 'nope'; valid tasks: celeba-dialog, "),
    (["--task", "closed-form", "--optimizer", "nope"], "unknown optimizer 'nope'; valid optimizers:"),
    (["--task", "closed-form", "--optimizer", "random/nope"], "unknown optimizer 'random/nope'"),
    (["--task", "closed-form", "--optimizer", "random", "--opt", "colour=red"], "no parameter 'colour'"),
    (["--task", "closed-form", "--optimizer", "random", "--budget", "0"], "--budget: expected a number >= 1"),
    (["--task", "closed-form", "--optimizer", "random", "--budget", "3", "--batch-size", "5"],
     "batch_size (5) must not exceed budget (3)"),
    (["--task", "closed-form", "--optimizer", "random", "--out", "/proc/forbidden"], "cannot create output folder"),
])
def test_bad_input_is_one_line_exit_2(args: list[str], message: str, bench_subprocess: BenchCLI) -> None:
    proc = bench_subprocess("run", *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.startswith("bench")]) == 1


@pytest.mark.parametrize("optimizer", ["random", "random/empirical", "evolution", "local-search"])
def test_run_writes_records(tmp_path: Path, optimizer: str) -> None:
    assert main(["run", "--task", "closed-form", "--optimizer", optimizer, "--seed", "0", "--budget", "200",
                 "--batch-size", "10", "--out", str(tmp_path), "-q"]) == 0
    folder = RunFolder(tmp_path / "runs/task=closed-form" / f"opt={optimizer.replace('/', '+')}" / "seed=0")
    records = folder.read_records()
    assert len(records) == 220 and records[C.QUERY].max() == 200
    assert folder.status() == C.STATUS_COMPLETED
    assert (folder.path / C.RUN_FILE).exists()


def test_help_teaches(bench_subprocess: BenchCLI) -> None:
    proc = bench_subprocess("--help")
    assert proc.returncode == 0 and "bench run --task closed-form" in proc.stdout
