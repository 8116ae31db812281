"""What ``run.json`` records about the machine and the code: package versions, git state, host."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

#: distributions whose versions decide results; a plug-in adds its own primary package
CORE_PACKAGES = ("numpy", "scipy", "pandas", "pyarrow", "torch", "torchvision", "lightgbm", "xgboost", "catboost",
                 "highspy", "scikit-optimize", "scikit-learn", "entmoot", "pytorch-fid", "submitit")
_REPO = Path(__file__).resolve().parents[2]


def package_versions(extra: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """Versions of the packages that determine results, plus ``extra`` distributions (a plug-in's own)."""
    out = {"python": platform.python_version()}
    for name in (*CORE_PACKAGES, *extra):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_state(repo: Path | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the checkout this code runs from (None outside git)."""
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", *args], cwd=repo or _REPO, capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()

        return {"commit": git("rev-parse", "HEAD"),
                "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def host_info() -> dict[str, Any]:
    """Host name, platform, SLURM job id and CPU count of this process."""
    return {"hostname": socket.gethostname(), "platform": platform.platform(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"), "cpus": os.cpu_count()}
