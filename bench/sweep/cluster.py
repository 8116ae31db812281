"""Which jobs of a launch are still alive, without an accounting database (``squeue``, ``/proc``)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Sequence

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

