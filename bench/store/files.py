"""Every read and write of run folders: records, diagnostics, metrics, run.json, checkpoints.

All writes are atomic (write to a temporary file in the same folder, fsync, rename), so a
killed process leaves either the previous complete file or the new complete file, never a
half-written one.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pickle
import platform
import socket
import subprocess
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd

from bench.core import constants as C

# --- compact latents ------------------------------------------------------------------------


def encode_latent(latent: np.ndarray, codebook_size: int) -> bytes:
    """A latent grid as bytes: uint8 per code when the codebook has <= 256 codes, else uint16."""
    dtype = np.uint8 if codebook_size <= 256 else np.dtype("<u2")
    return np.asarray(latent, dtype=dtype).tobytes()


def decode_latents(blobs: Any, shape: tuple[int, int], codebook_size: int) -> np.ndarray:
    """Inverse of :func:`encode_latent` for a sequence of blobs: (n, height, width) int64."""
    dtype = np.uint8 if codebook_size <= 256 else np.dtype("<u2")
    blobs = list(blobs)
    if not blobs:
        return np.zeros((0, *shape), dtype=np.int64)
    flat = np.frombuffer(b"".join(blobs), dtype=dtype)
    return flat.reshape(len(blobs), *shape).astype(np.int64)


# --- atomic file writes ---------------------------------------------------------------------


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` then atomically rename ``tmp_path`` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are shared with colleagues
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: Path, obj: Any) -> None:
    """Atomically write pretty, key-sorted JSON (``inf``/``nan`` become strings)."""
    text = json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else str(value)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_frame(path: Path, frame: pd.DataFrame) -> None:
    """Atomically write a DataFrame as Parquet (pyarrow, no index)."""
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, engine="pyarrow", index=False))


def read_frame(path: Path) -> pd.DataFrame:
    """Read a Parquet file written by :func:`write_frame`.

    The bytes are read in one go: pyarrow may otherwise reopen the path between footer and
    pages, and a concurrent atomic replace would hand it pages of a different file.
    """
    return pd.read_parquet(io.BytesIO(Path(path).read_bytes()), engine="pyarrow")


def write_pickle(path: Path, obj: Any) -> None:
    def dump(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)

    atomic_write(path, dump)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_pickle(path: Path) -> Any:
    with open(path, "rb") as fh:
        return pickle.load(fh)


# --- record frames --------------------------------------------------------------------------

_RECORD_DTYPES = {
    C.SEED: "int64", C.BATCH: "int64", C.EVAL: "int64", C.QUERY: "int64", C.SCORE: "float64",
    C.BEST_SO_FAR: "float64", C.IS_INIT: "bool", C.IS_DUPLICATE: "bool", C.IS_FALLBACK: "bool",
    C.PROPOSE_S: "float64", C.EVALUATE_S: "float64", C.ELAPSED_S: "float64",
    C.MODEL_VERSION: "int64", C.REGRET: "float64", C.HELDOUT_SCORE: "float64",
}


def records_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Record rows as a DataFrame with the canonical column order and dtypes."""
    frame = pd.DataFrame(rows, columns=list(C.RECORD_COLUMNS))
    for col, dtype in _RECORD_DTYPES.items():
        frame[col] = frame[col].astype(dtype)
    for col in (C.RUN_ID, C.TASK, C.TASK_SIGNATURE, C.OPTIMIZER, C.PRESET_HASH):
        frame[col] = frame[col].astype("str")
    return frame


# --- run folders ----------------------------------------------------------------------------


def package_versions(extra: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """Versions of the packages that determine results, plus ``extra`` distributions (a plug-in's own)."""
    names = ["numpy", "scipy", "pandas", "pyarrow", "torch", "torchvision", "lightgbm", "xgboost",
             "catboost", "highspy", "scikit-optimize", "scikit-learn", "entmoot", "pytorch-fid", "submitit",
             *extra]
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_state(repo: Path | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the checkout this code runs from (None outside git)."""
    repo = repo or Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                    capture_output=True, text=True, timeout=10, check=True).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def host_info() -> dict[str, Any]:
    return {"hostname": socket.gethostname(), "platform": platform.platform(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"), "cpus": os.cpu_count()}


class RunFolder:
    """One run's folder: ``<root>/runs/task=<t>/opt=<o>/seed=<s>/``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def for_config(cls, sweep_dir: Path, parts: tuple[str, str, str]) -> RunFolder:
        return cls(Path(sweep_dir) / "runs" / Path(*parts))

    # files
    @property
    def records_path(self) -> Path:
        return self.path / C.RECORDS_FILE

    @property
    def run_json_path(self) -> Path:
        return self.path / C.RUN_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / C.CHECKPOINT_FILE

    def exists(self) -> bool:
        return self.run_json_path.exists()

    def read_run(self) -> dict[str, Any]:
        return read_json(self.run_json_path)

    def write_run(self, info: dict[str, Any]) -> None:
        write_json(self.run_json_path, info)

    def status(self) -> str:
        if not self.run_json_path.exists():
            return C.STATUS_PENDING
        return str(self.read_run().get("status", C.STATUS_PENDING))

    def read_records(self) -> pd.DataFrame:
        return read_frame(self.records_path)

    def read_optional(self, name: str) -> pd.DataFrame | None:
        path = self.path / name
        return read_frame(path) if path.exists() else None

    def write_checkpoint(self, records: pd.DataFrame, diagnostics: pd.DataFrame, metrics: pd.DataFrame,
                         state: Any) -> None:
        """Write the tables, then the state: the state is only trusted if its tables exist.

        The state names the number of record rows it belongs to, so a reader can tell a state
        from a later crash-interrupted write apart (see :meth:`read_checkpoint`).
        """
        write_frame(self.records_path, records)
        write_frame(self.path / C.DIAGNOSTICS_FILE, diagnostics)
        write_frame(self.path / C.METRICS_FILE, metrics)
        write_pickle(self.checkpoint_path, {"n_records": len(records), "state": state})

    def read_checkpoint(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Any] | None:
        """The last consistent (records, diagnostics, metrics, state), or None if there is none."""
        if not self.checkpoint_path.exists() or not self.records_path.exists():
            return None
        payload = read_pickle(self.checkpoint_path)
        records = self.read_records()
        n = payload["n_records"]
        if len(records) < n:
            return None  # tables older than the state: cannot happen with write order above
        diagnostics = self.read_optional(C.DIAGNOSTICS_FILE)
        metrics = self.read_optional(C.METRICS_FILE)
        # a crash between the table writes and the state write leaves tables one batch ahead:
        # cut them back to the state's batch so the resumed run rewrites that batch identically
        state = payload["state"]
        records = records.iloc[:n].reset_index(drop=True)
        batch = int(records[C.BATCH].max()) if len(records) else -1
        if diagnostics is not None:
            diagnostics = diagnostics[diagnostics[C.DIAG_BATCH] <= batch].reset_index(drop=True)
        if metrics is not None and len(metrics) and len(records):
            metrics = metrics[metrics[C.METRIC_AT_QUERY] <= int(records[C.QUERY].max())].reset_index(drop=True)
        return records, diagnostics, metrics, state


def iter_run_folders(sweep_dir: Path) -> Iterator[RunFolder]:
    """Every run folder (one holding ``run.json``) under ``<sweep_dir>/runs``, sorted."""
    for run_json in sorted((Path(sweep_dir) / "runs").glob(f"task=*/opt=*/seed=*/{C.RUN_FILE}")):
        yield RunFolder(run_json.parent)
