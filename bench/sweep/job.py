"""The job callable: one process runs a pack of runs, sharing one task cache so models load once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import UncompletedJobError
from submitit.helpers import Checkpointable
from submitit.slurm.slurm import SlurmJobEnvironment

from bench.core import constants as C
from bench.core.config import RunConfig
from bench.run.runner import TaskCache, execute_run, run_folder
from bench.store.files import StoreError, now_iso
from bench.store.locks import FolderLocked


@dataclass
class JobReport:
    """What one job returns: final status per run id and how many task models it built."""

    statuses: dict[str, str]
    model_loads: int
    seconds: float
    host: str
    slurm_job_id: str | None


class SweepJob(Checkpointable):
    """Runs a pack of runs in one process, sharing one TaskCache so each model loads once.

    Checkpointable: when SLURM preempts the job or its time limit nears, submitit calls
    :meth:`checkpoint` and requeues a copy of this object. Run state lives in the run folders
    (checkpointed after every batch), so the copy resumes unfinished runs; ``finished`` (pickled
    with the copy) keeps runs that ended in an earlier attempt, failures included, from rerunning.
    When the job may not be requeued any more, submitit raises ``UncompletedJobError`` at
    whatever line runs: the run it interrupts is marked failed with that reason and the error
    ends the job (the launcher reports it); the pack's other runs are left as they were.
    """

    def __init__(self, sweep_dir: str, configs: list[dict[str, Any]], sweep_name: str, retry_failed: bool,
                 threads: int, extend: bool = False) -> None:
        self.sweep_dir = sweep_dir
        self.configs = configs
        self.sweep_name = sweep_name
        self.retry_failed = retry_failed
        self.threads = threads
        self.extend = extend
        self.finished: dict[str, str] = {}

    def __call__(self) -> JobReport:
        start = time.perf_counter()
        try:
            env = submitit.JobEnvironment()
        except RuntimeError:  # called outside any submitit executor: nothing requeues it
            env = None
        if env is not None:
            harden_requeue(env)
        # before any model library starts its thread pool
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(var, str(self.threads))
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(self.threads)
        tasks = TaskCache()
        for data in self.configs:
            config = RunConfig.from_dict(data)
            if config.run_id not in self.finished:
                self.finished[config.run_id] = self._run_one(config, tasks)
        return JobReport(statuses=dict(self.finished), model_loads=tasks.loads,
                         seconds=time.perf_counter() - start, host=socket.gethostname(),
                         slurm_job_id=os.environ.get("SLURM_JOB_ID"))

    def _run_one(self, config: RunConfig, tasks: TaskCache) -> str:
        folder = run_folder(Path(self.sweep_dir), config)
        name = f"run {config.run_id} {'/'.join(config.run_dir_parts())}"
        try:
            status = folder.status()
        except StoreError as exc:
            status = "damaged"
            print(f"[{now_iso()}] {name}: {exc}", flush=True)
        if status in (C.STATUS_FAILED, "damaged") and not self.retry_failed:
            return status
        print(f"[{now_iso()}] {name}: {status} -> running", flush=True)
        try:
            status = execute_run(config, folder, tasks=tasks, sweep=self.sweep_name, extend=self.extend,
                                 restart_damaged=self.retry_failed, propagate=(UncompletedJobError,))
        except FolderLocked as exc:
            print(f"[{now_iso()}] {name}: skipped, {exc}", flush=True)
            return "locked"
        print(f"[{now_iso()}] run {config.run_id}: {status}", flush=True)
        return status

    def checkpoint(self) -> submitit.helpers.DelayedSubmission:
        """Requeue this pack; runs resume from their per-batch checkpoints."""
        return submitit.helpers.DelayedSubmission(self)


def run_ignoring_sigterm(command: list[str], timeout: float) -> None:
    """Run ``command`` to its end with SIGTERM blocked in it; raise if it fails or times out.

    A blocked signal mask survives fork and exec, and scontrol never unblocks SIGTERM, so the
    SIGTERM that cancels the job's step cannot kill it; SIGKILL (after KillWait) still can.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        process = subprocess.Popen(command)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    if code != 0:
        raise subprocess.CalledProcessError(code, command)


def harden_requeue(env: submitit.JobEnvironment) -> None:
    """Make submitit's requeue on preemption survive the step kill it sets off.

    submitit's handler runs ``scontrol requeue``; the requeue cancels the job's step, whose
    SIGTERM can reach scontrol before it returns. submitit then raises ``CalledProcessError``
    inside the signal handler, the interrupted run is recorded as failed, and the requeued job
    leaves it so. ``env`` is the process's one job environment, the object the handler calls.
    """
    if not isinstance(env, SlurmJobEnvironment):
        return

    def requeue(self: SlurmJobEnvironment, countdown: int) -> None:
        run_ignoring_sigterm(["scontrol", "requeue", str(self.job_id)], timeout=60)
        print(f"[{now_iso()}] requeued job {self.job_id} ({countdown} remaining timeouts)", flush=True)

    env._requeue = types.MethodType(requeue, env)  # type: ignore[method-assign]
