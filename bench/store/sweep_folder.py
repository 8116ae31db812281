"""A sweep's folder: ``sweep.json``, launch records, submitit's job files, run folders, the report.

==========================  ===========================================================
``sweep.json``              the spec as written and every expanded run (id, folder, config)
``launches/<stamp>.json``   which job of which launch runs which runs
``submitit/<stamp>/``       submitit's job pickles and logs (written by submitit)
``runs/task=/opt=/seed=/``  one :class:`~bench.store.run_folder.RunFolder` per run
``report/``                 the report, replaced as a whole by :func:`staged_folder`
==========================  ===========================================================
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from bench.store.files import UMASK, StoreError, read_json, write_json
from bench.store.locks import FolderLock
from bench.store.run_folder import RunFolder, iter_run_folders

SWEEP_FILE = "sweep.json"
LAUNCHES_DIR = "launches"
SUBMITIT_DIR = "submitit"
REPORT_DIR = "report"
_STAGING = ".staging-"


class SweepFolder:
    """Reads and writes one sweep's folder (see the module doc)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def lock(self) -> FolderLock:
        """The lock of the one process that launches into this sweep."""
        return FolderLock(self.path, what="sweep folder")

    def run(self, parts: tuple[str, str, str]) -> RunFolder:
        """The folder of one run."""
        return RunFolder.for_config(self.path, parts)

    def runs(self) -> Iterator[RunFolder]:
        """Every run folder, sorted."""
        return iter_run_folders(self.path)

    # --- sweep.json ----------------------------------------------------------------------------
    def read_resolved(self) -> dict[str, Any] | None:
        """``sweep.json`` (None when absent); :class:`StoreError` when it is damaged."""
        path = self.path / SWEEP_FILE
        if not path.exists():
            return None
        data = read_json(path, expect=dict)
        if not isinstance(data.get("runs"), list) or not all(isinstance(r, dict) and isinstance(r.get("config"), dict)
                                                             for r in data["runs"]):
            raise StoreError(f"cannot read {str(path)!r}: not a bench sweep record (no list of runs with configs)")
        return data

    def write_resolved(self, resolved: dict[str, Any]) -> None:
        """Atomically replace ``sweep.json``."""
        write_json(self.path / SWEEP_FILE, resolved)

    # --- launches ------------------------------------------------------------------------------
    def read_launches(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Launch records, oldest first, and the problems of those that cannot be read."""
        records, problems = [], []
        for path in sorted((self.path / LAUNCHES_DIR).glob("*.json")):
            try:
                record = read_json(path, expect=dict)
                if not isinstance(record.get("jobs"), list):
                    raise StoreError(f"cannot read {str(path)!r}: no list of jobs")
                records.append(record)
            except StoreError as exc:
                problems.append(str(exc))
        return records, problems

    def write_launch(self, stamp: str, record: dict[str, Any]) -> Path:
        """Store the launch record ``launches/<stamp>.json``; returns its path."""
        path = self.path / LAUNCHES_DIR / f"{stamp}.json"
        write_json(path, record)
        return path

    def submitit_folder(self, stamp: str) -> Path:
        """Where submitit keeps the job files of one launch."""
        return self.path / SUBMITIT_DIR / stamp


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return result == 0


def _swap_in(staging: Path, target: Path) -> None:
    """Make ``staging`` the ``target`` folder; the previous ``target`` ends up at ``staging`` (to delete)."""
    if not target.exists():
        os.rename(staging, target)
        staging.mkdir()
        return
    if _exchange(staging, target):
        return
    old = target.with_name(f".{target.name}{_STAGING}old")
    shutil.rmtree(old, ignore_errors=True)
    os.rename(target, old)  # a kill between these two renames leaves the old report at `old`, intact
    os.rename(staging, target)
    os.rename(old, staging)


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """Yield an empty staging folder; when the block succeeds it replaces ``target`` as a whole.

    A failed or killed block leaves the previous ``target`` untouched (the staging folder is
    removed at the next call). Writers of one target are serialised by a lock in its parent.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise StoreError(f"{str(target)!r} is a file; the report needs a folder there: choose another --out")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create {str(target.parent)!r}: {exc.strerror}; choose another --out") from None
    with FolderLock(target.parent, what="report folder", name=f".{target.name}.lock"):
        for leftover in target.parent.glob(f".{target.name}{_STAGING}*"):
            shutil.rmtree(leftover, ignore_errors=True)
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}{_STAGING}", dir=target.parent))
        except OSError as exc:
            raise StoreError(f"cannot write into {str(target.parent)!r}: {exc.strerror}; choose another --out "
                             "(for a read-only results folder: bench report DIR --out /somewhere/else)") from None
        try:
            yield staging
            os.chmod(staging, 0o777 & ~UMASK)  # mkdtemp makes 0700; reports are shared
            _swap_in(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

