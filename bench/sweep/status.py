"""Per-run state of a sweep folder, as ``bench status`` shows it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from bench.core import constants as C
from bench.core.config import RunConfig
from bench.core.errors import UserError
from bench.run.runner import run_folder
from bench.store.files import StoreError
from bench.store.sweep_folder import SweepFolder
from bench.sweep.cluster import jobs_alive
from bench.sweep.spec import read_resolved_runs

STATUS_DAMAGED = "damaged"
STATES = (C.STATUS_COMPLETED, C.STATUS_RUNNING, C.STATUS_PENDING, C.STATUS_FAILED, STATUS_DAMAGED)


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


def _job_of_run(sweep: SweepFolder) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    out = {}
    for record in sweep.read_launches()[0]:
        for job in record["jobs"]:
            for run_id in job.get("runs", []):
                out[run_id] = (record, job)
    return out


def _job_note(record: dict[str, Any], job: dict[str, Any], state: str,
              alive_cache: dict[str, set[str] | None]) -> str:
    key = str(record.get("submitit_folder"))
    if key not in alive_cache:
        alive_cache[key] = jobs_alive(str(record.get("executor")), [str(j.get("job_id")) for j in record["jobs"]],
                                      record.get("host"), key)
    alive = alive_cache[key]
    if alive is not None and str(job.get("job_id")) not in alive:
        return f"job {job.get('job_id')} is gone; relaunch to {'resume' if state == C.STATUS_RUNNING else 'run'}"
    return f"job {job.get('job_id')}"


def _run_status(config: RunConfig, sweep: SweepFolder) -> RunStatus:
    folder = run_folder(sweep.path, config)
    try:
        info = folder.read_info() if folder.exists() else {}
    except StoreError as exc:
        return RunStatus(config, folder.path, STATUS_DAMAGED, 0, error=str(exc),
                         note="relaunch with --retry-failed to restart it")
    state = str(info.get("status", C.STATUS_PENDING))
    entry = RunStatus(config, folder.path, state, int(info.get("queries_done", 0)))
    if state == C.STATUS_FAILED:
        entry.error, entry.log = info.get("error"), info.get("error_file")
    if info.get("restarted"):
        entry.note = f"restarted {info['restarted']}"
    return entry


def sweep_status(sweep_dir: Path) -> list[RunStatus]:
    """Per-run state of a sweep folder, in ``sweep.json`` order; damaged runs say what is damaged.

    A run marked running whose job is no longer queued (cancelled, killed, or the debug
    launcher interrupted) is shown as running with a note: relaunching resumes it.
    """
    sweep = SweepFolder(sweep_dir)
    if not sweep.path.is_dir():
        raise UserError(f"sweep folder {str(sweep.path)!r} does not exist")
    configs = read_resolved_runs(sweep)
    if not configs:
        raise UserError(f"{str(sweep.path)!r} holds no sweep.json; is it a folder written by bench sweep?")
    job_of_run = _job_of_run(sweep)
    alive_cache: dict[str, set[str] | None] = {}
    out = []
    for config in configs:
        entry = _run_status(config, sweep)
        record, job = job_of_run.get(config.run_id, (None, None))
        if record is not None and job is not None and entry.state in (C.STATUS_RUNNING, C.STATUS_PENDING):
            entry.note = _job_note(record, job, entry.state, alive_cache)
            entry.log = entry.log or job.get("stdout")
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
    summary = ", ".join(f"{counts.get(state, 0)} {state}" for state in STATES if state != STATUS_DAMAGED
                        or counts.get(state))
    lines.append(f"{len(rows)} runs: {summary}")
    return "\n".join(lines)
