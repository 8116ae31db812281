"""The job's requeue on preemption survives the SIGTERM that the requeue itself sets off, and a
job called outside submitit still runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from submitit.local.local import LocalJobEnvironment
from submitit.slurm.slurm import SlurmJobEnvironment

from bench.core import constants as C
from bench.sweep.job import SweepJob, harden_requeue, run_ignoring_sigterm
from bench.sweep.spec import parse_spec

# the child sends itself SIGTERM, as slurmstepd does to every process of a cancelled step
SELF_TERM = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"]


def test_a_sigterm_to_the_requeue_command_does_not_end_it() -> None:
    assert subprocess.run(SELF_TERM).returncode == -15  # what killed scontrol before
    run_ignoring_sigterm(SELF_TERM, timeout=30)


def test_a_failing_requeue_command_still_raises() -> None:
    with pytest.raises(subprocess.CalledProcessError):
        run_ignoring_sigterm([sys.executable, "-c", "raise SystemExit(3)"], timeout=30)
    with pytest.raises(subprocess.TimeoutExpired):
        run_ignoring_sigterm([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)


def test_only_the_slurm_environment_is_hardened(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr("bench.sweep.job.run_ignoring_sigterm", lambda command, timeout: calls.append(command))
    monkeypatch.setenv("SLURM_JOB_ID", "79")
    slurm = SlurmJobEnvironment()
    harden_requeue(slurm)
    slurm._requeue(2)
    assert calls == [["scontrol", "requeue", "79"]]
    local = LocalJobEnvironment()
    harden_requeue(local)
    assert "_requeue" not in vars(local)


def test_a_job_called_outside_submitit_still_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in [v for v in os.environ if v.startswith(("SUBMITIT_", "SLURM_"))]:
        monkeypatch.delenv(var)
    config = parse_spec({"name": "direct", "seeds": [0], "tasks": ["closed-form/small"],
                         "run": {"budget": 6, "n_initial": 4}, "method": [{"optimizer": "random"}]}).runs[0]
    report = SweepJob(str(tmp_path), [config.to_dict()], "direct", False, 1)()
    assert report.statuses == {config.run_id: C.STATUS_COMPLETED}
