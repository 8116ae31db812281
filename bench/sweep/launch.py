"""Launch a sweep through submitit (SLURM job arrays, local processes, in-process debug) and wait for it.

A launch takes the sweep folder's lock (one launcher per folder), writes ``sweep.json``, picks
the runs that still need work (:func:`bench.sweep.plan.runs_to_do`), packs them into jobs that
share one task cache, submits the jobs and records which job runs which runs. Each job is a
:class:`~bench.sweep.job.SweepJob`: on preemption or a time limit submitit requeues it, and
since every run checkpoints after each batch, the requeued job resumes each unfinished run where
it stopped. Waiting never blocks forever: jobs are polled with ``squeue`` (no accounting database
needed) under an overall timeout.
"""

from __future__ import annotations

import math
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import submitit
from submitit.core.utils import pickle_load

from bench.core.errors import UserError
from bench.store.files import now_iso
from bench.store.sweep_folder import SweepFolder
from bench.sweep.cluster import jobs_alive, slurm_available, squeue_ids
from bench.sweep.job import JobReport, SweepJob
from bench.sweep.plan import local_slots, plan_jobs, plan_local_jobs, runs_to_do
from bench.sweep.profiles import Profile
from bench.sweep.spec import SweepSpec, write_resolved

EXECUTORS = ("slurm", "local", "debug")
POLL_S = 1.0
#: a job absent from the queue without a result is declared lost only after this long
#: (covers the moment between a job's exit and its result file appearing, and requeues)
LOST_GRACE_S = 15.0


@dataclass
class LaunchResult:
    """The outcome of one ``bench sweep`` call."""

    launch_file: Path | None
    job_ids: list[str]
    reports: list[JobReport]
    lost_jobs: list[str]  # ended without a result (cancelled, killed, node failure)
    unfinished_jobs: list[str]  # still queued or running when the wait ended
    wall_s: float


def make_executor(kind: str, folder: Path, profile: Profile) -> submitit.Executor:
    """A submitit executor for ``kind`` with the profile's resources."""
    if kind not in EXECUTORS:
        raise UserError(f"unknown executor {kind!r}; valid executors: {', '.join(EXECUTORS)}")
    if kind == "slurm" and not slurm_available():
        raise UserError("no SLURM controller answers (sinfo failed); start one with `bash slurm/local-cluster.sh up` "
                        "or use --executor local")
    executor = submitit.AutoExecutor(folder=folder, cluster=kind, slurm_max_num_timeout=profile.max_timeouts)
    params: dict[str, Any] = {"timeout_min": profile.timeout_min, "name": "bench-sweep"}
    if kind == "slurm":
        params.update(cpus_per_task=profile.cpus_per_task, mem_gb=profile.mem_gb,
                      slurm_array_parallelism=profile.array_parallelism)
        if profile.gpus_per_node > 0:  # a zero request is rejected by clusters without GPUs
            params["gpus_per_node"] = profile.gpus_per_node
        if profile.partition:
            params["slurm_partition"] = profile.partition
        if profile.extra_sbatch:
            params["slurm_additional_parameters"] = dict(profile.extra_sbatch)
        if profile.setup:
            params["slurm_setup"] = list(profile.setup)
    elif kind == "local":
        params["gpus_per_node"] = profile.gpus_per_node
    executor.update_parameters(**params)
    return executor


def _check_no_live_launch(sweep: SweepFolder) -> None:
    """Refuse to launch while an earlier launch's jobs still run: both would write the same runs."""
    launches, _ = sweep.read_launches()
    for record in launches:
        ids = [str(job.get("job_id")) for job in record["jobs"]]
        alive = jobs_alive(str(record.get("executor")), ids, record.get("host"), record.get("submitit_folder"))
        if alive:
            raise UserError(f"jobs {', '.join(sorted(alive))} of an earlier launch of this sweep are still queued or "
                            "running; wait for them (bench status) or cancel them (scancel) before relaunching")


def launch(spec: SweepSpec, sweep_dir: Path, executor_kind: str, *, profile: Profile,
           retry_failed: bool = False, extend: bool = False, runs_per_job: int | None = None, wait: bool = True,
           wait_timeout_s: float | None = None, log: Callable[[str], None] = print,
           progress: Callable[[], None] | None = None) -> LaunchResult:
    """Submit the runs of ``spec`` that still need work and (with ``wait``) wait for them.

    Holds the sweep folder's lock throughout, so two launches into one folder never run at once.
    ``progress()`` is called while waiting (e.g. to refresh a progress bar).
    """
    started = time.perf_counter()
    sweep = SweepFolder(sweep_dir)
    with sweep.lock():
        plan = runs_to_do(sweep.path, spec.runs, retry_failed, extend)  # identity errors before any write
        write_resolved(spec, sweep)
        if not plan.todo:
            log(f"nothing to do: {len(spec.runs)} runs already completed or failed (use --retry-failed to rerun "
                "failures)")
            return LaunchResult(None, [], [], [], [], time.perf_counter() - started)
        _check_no_live_launch(sweep)
        jobs, packs, launch_file = _submit(spec, sweep, executor_kind, profile, plan.todo, retry_failed, extend,
                                           runs_per_job)
        job_ids = [str(job.job_id) for job in jobs]
        log(f"submitted {len(plan.todo)} runs in {len(jobs)} {executor_kind} jobs ({', '.join(job_ids[:8])}"
            f"{' ...' if len(job_ids) > 8 else ''}); launch record {launch_file}")
        if not wait and executor_kind != "debug":
            return LaunchResult(launch_file, job_ids, [], [], job_ids, time.perf_counter() - started)
        if wait_timeout_s is None:
            slots = local_slots(profile) if executor_kind == "local" else profile.array_parallelism
            wait_timeout_s = 60.0 * profile.timeout_min * (profile.max_timeouts + 1) * math.ceil(len(jobs) / slots) + 600
        reports, lost, unfinished = wait_for_jobs(executor_kind, jobs, wait_timeout_s, log, progress)
        return LaunchResult(launch_file, job_ids, reports, lost, unfinished, time.perf_counter() - started)


def _submit(spec: SweepSpec, sweep: SweepFolder, executor_kind: str, profile: Profile, todo: list[Any],
            retry_failed: bool, extend: bool, runs_per_job: int | None) -> tuple[list[submitit.Job], list[Any], Path]:
    """Pack, submit, and record the launch; returns (jobs, packs, launch record path)."""
    if executor_kind == "local":
        packs = plan_local_jobs(todo, local_slots(profile))
    else:
        packs = plan_jobs(todo, runs_per_job or spec.executor.runs_per_job)
    stamp = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    executor = make_executor(executor_kind, sweep.submitit_folder(stamp), profile)
    callables = [SweepJob(str(sweep.path.resolve()), [c.to_dict() for c in pack], spec.name, retry_failed,
                          profile.cpus_per_task, extend) for pack in packs]
    try:
        with executor.batch():
            jobs = [executor.submit(job) for job in callables]
    except Exception as exc:  # noqa: BLE001 - sbatch rejections (bad partition, GPUs, ...) are user errors
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else type(exc).__name__)
        raise UserError(f"{executor_kind} submission failed with profile {profile.name!r}: {reason}") from None
    launch_file = sweep.write_launch(stamp, {
        "executor": executor_kind, "profile": profile.name, "submitted": now_iso(), "host": socket.gethostname(),
        "submitit_folder": str(executor.folder),
        "jobs": [{"job_id": str(job.job_id), "runs": [c.run_id for c in pack], "stdout": str(job.paths.stdout),
                  "stderr": str(job.paths.stderr)} for job, pack in zip(jobs, packs)]})
    return jobs, packs, launch_file


def _job_report(kind: str, job: submitit.Job) -> JobReport:
    """The job's return value, read straight from its result file once that exists.

    ``job.result()`` of a local job would also wait for the job's process to exit, which can
    take seconds after the result is written on a loaded machine.
    """
    if kind == "debug" or not job.paths.result_pickle.exists():
        return job.result()
    outcome, value = pickle_load(job.paths.result_pickle)
    if outcome != "success":
        raise RuntimeError(str(value))
    return value


def wait_for_jobs(kind: str, jobs: Sequence[submitit.Job], timeout_s: float, log: Any = print,
                  progress: Callable[[], None] | None = None) -> tuple[list[JobReport], list[str], list[str]]:
    """Collect job reports; return (reports, lost job ids, job ids still unfinished at the timeout).

    Never calls submitit's blocking waits on SLURM jobs (they hang without ``sacct`` when a job
    dies without a result): a job is finished when its result file exists and lost when it has
    left the queue without one for :data:`LOST_GRACE_S`.
    """
    reports: list[JobReport] = []
    lost: list[str] = []
    pending = {str(job.job_id): job for job in jobs}
    folder = jobs[0].paths.folder if jobs else None
    missing_since: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    last_queue_check = -math.inf
    while pending:
        if progress is not None:
            progress()
        for job_id, job in list(pending.items()):
            if kind == "debug" or job.paths.result_pickle.exists() or (kind == "local" and job.done()):
                del pending[job_id]
                try:
                    reports.append(_job_report(kind, job))
                except Exception as exc:  # noqa: BLE001 - a job error must not stop the others' collection
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    log(f"job {job_id} ended without a report: {first}\n  log: {job.paths.stderr}")
                    lost.append(job_id)
        if not pending:
            break
        now = time.monotonic()
        if kind == "slurm" and now - last_queue_check >= 5.0:
            last_queue_check = now
            alive = squeue_ids(list(pending), str(folder))
            for job_id in list(pending):
                if alive is None or job_id in alive:
                    missing_since.pop(job_id, None)
                elif now - missing_since.setdefault(job_id, now) >= LOST_GRACE_S:
                    if not pending[job_id].paths.result_pickle.exists():
                        log(f"job {job_id} left the queue without a result (cancelled or killed); "
                            f"its runs stay resumable\n  log: {pending[job_id].paths.stderr}")
                        lost.append(job_id)
                        del pending[job_id]
        if now >= deadline:
            log(f"stopped waiting after {timeout_s:.0f} s; {len(pending)} jobs still queued or running "
                "(they go on; see bench status)")
            break
        time.sleep(POLL_S)
    return reports, lost, sorted(pending)


