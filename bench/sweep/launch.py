"""Launch sweeps through submitit (SLURM job arrays, local processes, in-process debug) and report status.

A launch expands the spec, writes ``<out>/sweep.json``, picks the runs that still need work
(skipping completed ones, resuming partial ones, and rerunning failed ones only with
``--retry-failed``), packs them into jobs that share one :class:`~bench.runner.TaskCache`, and
submits the jobs. Each job is a :class:`submitit.helpers.Checkpointable`: on preemption or a time
limit submitit requeues it, and since every run checkpoints after each batch, the requeued job
resumes each unfinished run where it stopped. Waiting never blocks forever: jobs are polled
with ``squeue`` (no accounting database needed) under an overall timeout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import submitit
from submitit.core.utils import pickle_load
from submitit.helpers import Checkpointable

from bench.core import constants as C
from bench.core.config import ConfigError, RunConfig
from bench.core.errors import UserError
from bench.store.files import now_iso, read_json, write_json
from bench.run.runner import TaskCache, execute_run, run_folder
from bench.sweep.spec import SweepSpec, load_spec, parse_spec, read_resolved_runs, write_resolved

EXECUTORS = ("slurm", "local", "debug")
PROFILES_DIR = Path(__file__).resolve().parents[2] / "slurm" / "profiles"
LAUNCHES_DIR = "launches"  # <out>/launches/<stamp>.json: which job runs which runs
SUBMITIT_DIR = "submitit"  # <out>/submitit/<stamp>/: job pickles and logs, fresh per launch
POLL_S = 1.0
#: a job absent from the queue without a result is declared lost only after this long
#: (covers the moment between a job's exit and its result file appearing, and requeues)
LOST_GRACE_S = 15.0


# --- cluster profiles -----------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """Resources of one job on a cluster, read from ``slurm/profiles/<name>.toml``.

    ``partition`` None uses the cluster's default partition. ``gpus_per_node`` 0 requests no
    GPU. ``array_parallelism`` caps the array's jobs running at once. ``max_timeouts`` is how
    many times a job hitting its time limit is requeued (preemptions always requeue).
    ``extra_sbatch`` adds ``#SBATCH --key=value`` lines; ``setup`` adds shell lines before the
    job starts (module loads, activating an environment).
    """

    name: str
    partition: str | None = None
    gpus_per_node: int = 0
    cpus_per_task: int = 1
    mem_gb: float = 4.0
    timeout_min: int = 60
    array_parallelism: int = 16
    max_timeouts: int = 3
    extra_sbatch: dict[str, Any] = field(default_factory=dict)
    setup: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> Profile:
        """Validate a profile table; unknown keys raise :class:`ConfigError` naming them."""
        valid = [f for f in cls.__dataclass_fields__ if f != "name"]
        for key in data:
            if key not in valid:
                raise ConfigError(f"unknown key {key!r} in profile {name!r}; valid keys: {', '.join(valid)}")
        ints = {"gpus_per_node": 0, "cpus_per_task": 1, "timeout_min": 1, "array_parallelism": 1, "max_timeouts": 0}
        for key, minimum in ints.items():
            value = data.get(key, getattr(cls, key))
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"profile {name!r}: {key} must be a whole number >= {minimum}, got {value!r}")
        mem = data.get("mem_gb", cls.mem_gb)
        if isinstance(mem, bool) or not isinstance(mem, (int, float)) or mem <= 0:
            raise ConfigError(f"profile {name!r}: mem_gb must be a number > 0, got {mem!r}")
        if not isinstance(data.get("extra_sbatch", {}), dict):
            raise ConfigError(f"profile {name!r}: extra_sbatch must be a table of sbatch options")
        setup = data.get("setup", [])
        if not isinstance(setup, list) or not all(isinstance(line, str) for line in setup):
            raise ConfigError(f"profile {name!r}: setup must be a list of shell lines")
        partition = data.get("partition")
        if partition is not None and (not isinstance(partition, str) or not partition):
            raise ConfigError(f"profile {name!r}: partition must be a non-empty name")
        return cls(name=name, **{**data, "setup": tuple(setup), "mem_gb": float(mem)})


def load_profile(name: str) -> Profile:
    """A profile by name (``slurm/profiles/<name>.toml``) or by path to a ``.toml`` file."""
    path = Path(name) if name.endswith(".toml") else PROFILES_DIR / f"{name}.toml"
    if not path.exists():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))
        raise UserError(f"unknown profile {name!r}; valid profiles: {', '.join(known)} (or a path to a .toml file)")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"profile {str(path)!r} is not valid TOML: {exc}") from None
    return Profile.from_dict(path.stem, data)


# --- the job callable -----------------------------------------------------------------------


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
    """

    def __init__(self, sweep_dir: str, configs: list[dict[str, Any]], sweep_name: str, retry_failed: bool,
                 threads: int) -> None:
        self.sweep_dir = sweep_dir
        self.configs = configs
        self.sweep_name = sweep_name
        self.retry_failed = retry_failed
        self.threads = threads
        self.finished: dict[str, str] = {}

    def __call__(self) -> JobReport:
        start = time.perf_counter()
        # before any model library starts its thread pool
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(var, str(self.threads))
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(self.threads)
        tasks = TaskCache()
        for data in self.configs:
            config = RunConfig.from_dict(data)
            if config.run_id in self.finished:
                continue
            folder = run_folder(Path(self.sweep_dir), config)
            status = folder.status()
            if status == C.STATUS_FAILED and not self.retry_failed:
                self.finished[config.run_id] = status
                continue
            print(f"[{now_iso()}] run {config.run_id} {'/'.join(config.run_dir_parts())}: {status} -> running",
                  flush=True)
            status = execute_run(config, folder, tasks=tasks, sweep=self.sweep_name)
            self.finished[config.run_id] = status
            print(f"[{now_iso()}] run {config.run_id}: {status}", flush=True)
        return JobReport(statuses=dict(self.finished), model_loads=tasks.loads,
                         seconds=time.perf_counter() - start, host=socket.gethostname(),
                         slurm_job_id=os.environ.get("SLURM_JOB_ID"))

    def checkpoint(self) -> submitit.helpers.DelayedSubmission:
        """Requeue this pack; runs resume from their per-batch checkpoints."""
        return submitit.helpers.DelayedSubmission(self)


# --- planning -------------------------------------------------------------------------------


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


def runs_to_do(sweep_dir: Path, runs: Sequence[RunConfig], retry_failed: bool) -> list[RunConfig]:
    """Runs that still need work: not completed, and not failed unless ``retry_failed``."""
    todo = []
    for config in runs:
        status = run_folder(sweep_dir, config).status()
        if status == C.STATUS_COMPLETED or (status == C.STATUS_FAILED and not retry_failed):
            continue
        todo.append(config)
    return todo


# --- job liveness without an accounting database ---------------------------------------------


def slurm_available() -> bool:
    """Whether a SLURM controller answers (``sinfo`` succeeds)."""
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def squeue_ids(job_ids: Sequence[str], folder: str | None = None) -> set[str] | None:
    """Ids among ``job_ids`` still queued or running (array ids as ``A_i``); None if squeue failed.

    With ``folder`` (a launch's submitit folder), only jobs whose batch script lives there count:
    job ids restart at 1 when a cluster's state is wiped, so a bare id may name someone else's job.
    """
    bases = sorted({job_id.split("_")[0] for job_id in job_ids})
    if not bases:
        return set()
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%o", "-j", ",".join(bases)], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        # squeue fails with "Invalid job id" once every listed job has left the queue
        return set() if "Invalid job id" in out.stderr else None
    listed = set()
    for line in out.stdout.splitlines():
        job_id, _, command = line.strip().partition("|")
        if job_id and (folder is None or command.startswith(folder)):
            listed.add(job_id)
    return {job_id for job_id in job_ids if job_id in listed}


def _local_job_alive(pid: str) -> bool:
    """Whether ``pid`` is a running submitit local job (not a later process that reused the id)."""
    try:
        return b"submitit" in Path(f"/proc/{int(pid)}/cmdline").read_bytes()
    except (ValueError, OSError):
        return False


def jobs_alive(executor: str, job_ids: Sequence[str], host: str | None, folder: str | None = None) -> set[str] | None:
    """Which recorded jobs of a launch are still queued or running; None when it cannot be told."""
    if executor == "slurm":
        return squeue_ids(job_ids, folder) if job_ids else set()
    if executor == "local":
        if host is not None and host != socket.gethostname():
            return None
        return {job_id for job_id in job_ids if _local_job_alive(job_id)}
    return set()  # debug jobs run inside the launching command


# --- launching ------------------------------------------------------------------------------


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


def _check_no_live_launch(sweep_dir: Path) -> None:
    """Refuse to launch while an earlier launch's jobs still run: both would write the same runs."""
    for launch in read_launches(sweep_dir):
        ids = [job["job_id"] for job in launch["jobs"]]
        alive = jobs_alive(launch["executor"], ids, launch.get("host"), launch["submitit_folder"])
        if alive:
            raise UserError(f"jobs {', '.join(sorted(alive))} of an earlier launch of this sweep are still queued or "
                            "running; wait for them (bench status) or cancel them (scancel) before relaunching")


def read_launches(sweep_dir: Path) -> list[dict[str, Any]]:
    """Launch records of a sweep folder, oldest first."""
    return [read_json(path) for path in sorted((Path(sweep_dir) / LAUNCHES_DIR).glob("*.json"))]


def launch(spec: SweepSpec, sweep_dir: Path, executor_kind: str, *, profile: Profile,
           retry_failed: bool = False, runs_per_job: int | None = None, wait: bool = True,
           wait_timeout_s: float | None = None, log: Any = print) -> LaunchResult:
    """Submit the runs of ``spec`` that still need work and (with ``wait``) wait for them."""
    started = time.perf_counter()
    sweep_dir = Path(sweep_dir)
    write_resolved(spec, sweep_dir)
    todo = runs_to_do(sweep_dir, spec.runs, retry_failed)
    if not todo:
        log(f"nothing to do: {len(spec.runs)} runs already completed or failed (use --retry-failed to rerun failures)")
        return LaunchResult(None, [], [], [], [], time.perf_counter() - started)
    _check_no_live_launch(sweep_dir)
    if executor_kind == "local":
        packs = plan_local_jobs(todo, local_slots(profile))
    else:
        packs = plan_jobs(todo, runs_per_job or spec.executor.runs_per_job)
    stamp = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    executor = make_executor(executor_kind, sweep_dir / SUBMITIT_DIR / stamp, profile)
    callables = [SweepJob(str(sweep_dir.resolve()), [c.to_dict() for c in pack], spec.name, retry_failed,
                          profile.cpus_per_task) for pack in packs]
    try:
        with executor.batch():
            jobs = [executor.submit(job) for job in callables]
    except Exception as exc:  # noqa: BLE001 - sbatch rejections (bad partition, GPUs, ...) are user errors
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else type(exc).__name__)
        raise UserError(f"{executor_kind} submission failed with profile {profile.name!r}: {reason}") from None
    job_ids = [str(job.job_id) for job in jobs]
    launch_file = sweep_dir / LAUNCHES_DIR / f"{stamp}.json"
    write_json(launch_file, {
        "executor": executor_kind, "profile": profile.name, "submitted": now_iso(), "host": socket.gethostname(),
        "submitit_folder": str(executor.folder),
        "jobs": [{"job_id": job_id, "runs": [c.run_id for c in pack], "stdout": str(job.paths.stdout),
                  "stderr": str(job.paths.stderr)} for job_id, job, pack in zip(job_ids, jobs, packs)]})
    log(f"submitted {len(todo)} runs in {len(jobs)} {executor_kind} jobs ({', '.join(job_ids[:8])}"
        f"{' ...' if len(job_ids) > 8 else ''}); launch record {launch_file}")
    if not wait and executor_kind != "debug":
        return LaunchResult(launch_file, job_ids, [], [], job_ids, time.perf_counter() - started)
    if wait_timeout_s is None:
        waves = math.ceil(len(jobs) / (local_slots(profile) if executor_kind == "local" else profile.array_parallelism))
        wait_timeout_s = 60.0 * profile.timeout_min * (profile.max_timeouts + 1) * waves + 600.0
    progress = QueryProgress(sweep_dir, todo) if executor_kind != "debug" else None
    reports, lost, unfinished = wait_for_jobs(executor_kind, jobs, wait_timeout_s, log, progress)
    return LaunchResult(launch_file, job_ids, reports, lost, unfinished, time.perf_counter() - started)


class QueryProgress:
    """A progress bar over the optimizer queries of the launched runs, read from their run.json."""

    def __init__(self, sweep_dir: Path, runs: Sequence[RunConfig]) -> None:
        from tqdm import tqdm

        self.folders = [(run_folder(sweep_dir, c), c.budget) for c in runs]
        self.bar = tqdm(total=sum(budget for _, budget in self.folders), desc=f"sweep ({len(runs)} runs)",
                        unit="query", dynamic_ncols=True)

    def update(self) -> None:
        done = 0
        for folder, budget in self.folders:
            try:
                done += min(int(folder.read_run().get("queries_done", 0)), budget)
            except (OSError, ValueError):
                pass  # not started yet
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        self.update()
        self.bar.close()


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
                  progress: QueryProgress | None = None) -> tuple[list[JobReport], list[str], list[str]]:
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
            progress.update()
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
    if progress is not None:
        progress.close()
    return reports, lost, sorted(pending)


# --- status ---------------------------------------------------------------------------------


@dataclass
class RunStatus:
    """One run's state as ``bench status`` shows it."""

    config: RunConfig
    folder: Path
    state: str
    queries_done: int
    error: str | None = None
    log: str | None = None
    note: str = ""


def sweep_status(sweep_dir: Path) -> list[RunStatus]:
    """Per-run state of a sweep folder, in ``sweep.json`` order.

    A run marked running whose job is no longer queued (cancelled, killed, or the debug
    launcher interrupted) is shown as running with a note: relaunching resumes it.
    """
    sweep_dir = Path(sweep_dir)
    configs = read_resolved_runs(sweep_dir)
    if not configs:
        raise UserError(f"{str(sweep_dir)!r} holds no sweep.json; is it a folder written by bench sweep?")
    job_of_run: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for launch_record in read_launches(sweep_dir):
        for job in launch_record["jobs"]:
            for run_id in job["runs"]:
                job_of_run[run_id] = (launch_record, job)
    alive_cache: dict[str, set[str] | None] = {}
    out = []
    for config in configs:
        folder = run_folder(sweep_dir, config)
        state = folder.status()
        info = folder.read_run() if folder.exists() else {}
        launch_record, job = job_of_run.get(config.run_id, (None, None))
        entry = RunStatus(config=config, folder=folder.path, state=state, queries_done=int(info.get("queries_done", 0)))
        if state == C.STATUS_FAILED:
            entry.error = info.get("error")
            entry.log = info.get("error_file")
        if launch_record is not None and job is not None and state in (C.STATUS_RUNNING, C.STATUS_PENDING):
            key = launch_record["submitit_folder"]
            if key not in alive_cache:
                alive_cache[key] = jobs_alive(launch_record["executor"], [j["job_id"] for j in launch_record["jobs"]],
                                              launch_record.get("host"), key)
            alive = alive_cache[key]
            if alive is not None and job["job_id"] not in alive:
                entry.note = f"job {job['job_id']} is gone; relaunch to {'resume' if state == C.STATUS_RUNNING else 'run'}"
            else:
                entry.note = f"job {job['job_id']}"
            entry.log = entry.log or job["stdout"]
        out.append(entry)
    return out


def format_status(rows: Sequence[RunStatus]) -> str:
    """A table of runs (state, task, method, seed, progress, note) and a summary line."""
    lines = [f"{'state':10s} {'task':22s} {'method':24s} {'seed':>4s} {'queries':>9s}  note"]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
        c = row.config
        lines.append(f"{row.state:10s} {c.task:22s} {c.label:24s} {c.seed:4d} "
                     f"{row.queries_done:>4d}/{c.budget:<4d}  {row.note}".rstrip())
        if row.error:
            lines.append(f"{'':10s}   error: {row.error}")
        if row.log and row.state in (C.STATUS_FAILED, C.STATUS_RUNNING):
            lines.append(f"{'':10s}   log: {row.log}")
    order = (C.STATUS_COMPLETED, C.STATUS_RUNNING, C.STATUS_PENDING, C.STATUS_FAILED)
    summary = ", ".join(f"{counts.get(state, 0)} {state}" for state in order)
    lines.append(f"{len(rows)} runs: {summary}")
    return "\n".join(lines)


# --- CLI ------------------------------------------------------------------------------------


def cmd_sweep(args: argparse.Namespace) -> int:
    spec = load_spec(Path(args.spec))
    profile = load_profile(args.profile or spec.executor.profile)
    from bench.cli.main import writable_dir

    out = writable_dir(Path(args.out) if args.out else Path("results") / spec.name)
    result = launch(spec, out, args.executor, profile=profile, retry_failed=args.retry_failed,
                    runs_per_job=args.runs_per_job, wait=args.wait,
                    wait_timeout_s=None if args.wait_timeout_min is None else 60.0 * args.wait_timeout_min)
    rows = sweep_status(out)
    print(format_status(rows))
    if result.reports:
        loads = [r.model_loads for r in result.reports]
        print(f"{len(result.reports)} jobs reported; task models built per job: {max(loads)} at most")
    failed = sum(row.state == C.STATUS_FAILED for row in rows)
    if args.wait and result.unfinished_jobs:
        print(f"{len(result.unfinished_jobs)} jobs still queued or running; follow them with `bench status {out}`",
              file=sys.stderr)
        return 1
    if result.lost_jobs or failed:
        print(f"{failed} runs failed, {len(result.lost_jobs)} jobs lost; rerun this command to resume "
              "(add --retry-failed to rerun failures)", file=sys.stderr)
        return 1
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    rows = sweep_status(Path(args.dir))
    print(format_status(rows))
    return 0


def register(subparsers: Any) -> None:
    """Add ``bench sweep`` and ``bench status``."""
    from bench.cli.main import _positive_int

    p = subparsers.add_parser(
        "sweep", help="expand a sweep spec and run it (SLURM, local processes or in-process)",
        description="Expand a TOML sweep spec (see slurm/README.md) into runs and submit the ones that still need "
                    "work: completed runs are skipped, partial ones resume, failed ones rerun with --retry-failed.")
    p.add_argument("spec", help="sweep spec, e.g. slurm/specs/tiny.toml")
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="slurm: job arrays; local: processes on this machine (default); debug: in this process")
    p.add_argument("--profile", default=None, help="cluster profile (slurm/profiles/NAME.toml); default: the spec's")
    p.add_argument("--out", default=None, help="sweep folder (default: results/<spec name>)")
    p.add_argument("--retry-failed", action="store_true", help="rerun failed runs (resuming their checkpoints)")
    p.add_argument("--runs-per-job", type=_positive_int, default=None,
                   help="runs packed in one SLURM job (default: the spec's executor.runs_per_job)")
    p.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                   help="wait for the jobs and print the final status (default: wait)")
    p.add_argument("--wait-timeout-min", type=float, default=None,
                   help="stop waiting after this many minutes (default: from the profile's time limit)")
    p.set_defaults(func=cmd_sweep)

    p = subparsers.add_parser("status", help="per-run state of a sweep folder",
                              description="Show every run of a sweep (pending, running, completed, failed with "
                                          "the error's first line and log path) and a summary.")
    p.add_argument("dir", help="sweep folder, e.g. results/demo")
    p.set_defaults(func=cmd_status)


# --- bench perf sweep -----------------------------------------------------------------------


def perf_spec(n_runs: int, budget: int) -> SweepSpec:
    """A sweep of ``n_runs`` trivial runs: random search on the small closed-form task."""
    return parse_spec({"name": "perf-sweep", "seeds": list(range(n_runs)), "tasks": ["closed-form/small"],
                       "run": {"budget": budget, "batch_size": 1, "n_initial": 5},
                       "method": [{"optimizer": "random"}], "executor": {"profile": "local", "runs_per_job": 4}})


def _measure(kind: str, spec: SweepSpec, profile: Profile, runs_per_job: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-perf-{kind}-") as tmp:
        result = launch(spec, Path(tmp), kind, profile=profile, runs_per_job=runs_per_job,
                        wait_timeout_s=600.0, log=lambda *a: None)
        if result.lost_jobs or result.unfinished_jobs or len(result.reports) != len(result.job_ids):
            raise RuntimeError(f"{kind} sweep did not finish: lost {result.lost_jobs}, unfinished "
                               f"{result.unfinished_jobs}")
        in_run_s = sum(float(run_folder(Path(tmp), c).read_records()[C.ELAPSED_S].max()) for c in spec.runs)
        slots = local_slots(profile) if kind == "local" else min(profile.array_parallelism, len(result.job_ids))
        loads = [r.model_loads for r in result.reports]
        return {"wall_s": result.wall_s, "jobs": len(result.job_ids), "parallel": slots, "in_run_s": in_run_s,
                # launch wall time not spent inside runs, per run (runs of parallel jobs overlap)
                "overhead_s_per_run": (result.wall_s - in_run_s / slots) / len(spec.runs),
                "model_loads_per_job": sum(loads) / len(loads)}


def perf_main(name: str, argv: Sequence[str]) -> int:
    """``bench perf sweep``: per-run overhead of local and SLURM sweeps; last line is JSON."""
    parser = argparse.ArgumentParser(prog=f"bench perf {name}", description=perf_main.__doc__)
    parser.add_argument("--runs", type=int, default=8, help="trivial runs per sweep (>= 8)")
    parser.add_argument("--budget", type=int, default=5, help="queries per run")
    parser.add_argument("--runs-per-job", type=int, default=4, help="runs per SLURM job")
    parser.add_argument("--profile", default="local", help="profile for both executors")
    parser.add_argument("--no-slurm", action="store_true", help="skip SLURM even when available")
    args = parser.parse_args(argv)
    spec = perf_spec(max(8, args.runs), args.budget)
    profile = load_profile(args.profile)
    local = _measure("local", spec, profile, args.runs_per_job)
    print(f"local: {len(spec.runs)} runs in {local['jobs']} jobs, {local['wall_s']:.2f} s wall, "
          f"{local['overhead_s_per_run']:.3f} s overhead per run, {local['model_loads_per_job']:.2f} loads per job")
    slurm = None
    if not args.no_slurm and slurm_available():
        slurm = _measure("slurm", spec, profile, args.runs_per_job)
        print(f"slurm: {len(spec.runs)} runs in {slurm['jobs']} array jobs, {slurm['wall_s']:.2f} s wall, "
              f"{slurm['overhead_s_per_run']:.3f} s overhead per run, {slurm['model_loads_per_job']:.2f} loads per job")
    else:
        print("slurm: not measured (no controller answers sinfo, or --no-slurm)")
    loads = [m["model_loads_per_job"] for m in (local, slurm) if m is not None]
    print(json.dumps({
        "runs": len(spec.runs), "budget": args.budget,
        "overhead_s_per_run_local": round(local["overhead_s_per_run"], 4),
        "overhead_s_per_run_slurm": None if slurm is None else round(slurm["overhead_s_per_run"], 4),
        "model_loads_per_job": max(loads),
        "wall_s_local": round(local["wall_s"], 3), "wall_s_slurm": None if slurm is None else round(slurm["wall_s"], 3),
        "jobs_local": local["jobs"], "jobs_slurm": None if slurm is None else slurm["jobs"],
    }))
    return 0
