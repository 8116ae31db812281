"""Atomic file writes and the readers that go with them.

Every write goes to a temporary file in the same folder, is flushed to disk and renamed over
the target, so a killed process leaves either the previous complete file or the new one, never
a half-written one; the temporary names (``.<name>.<random>.tmp``) are recognised and removed by
:func:`remove_stray_temporaries` when the folder is next opened for writing. Readers read whole
files at once and turn every kind of damage into a :class:`StoreError` naming the file.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import math
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from bench.core.errors import UserError

TEMP_SUFFIX = ".tmp"


class StoreError(UserError):
    """A file of a results or artifacts folder cannot be read or written; the message names it."""


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: the process's umask, read once (files are created with modes it allows)
UMASK = _current_umask()


def _describe_os_error(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "the folder is not writable"
    return exc.strerror or str(exc)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` then atomically rename ``tmp_path`` to ``path``.

    An :class:`OSError` (full disk, read-only folder) becomes a :class:`StoreError` naming ``path``;
    the previous file, if any, is left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise StoreError(f"cannot write {str(path)!r}: {_describe_os_error(exc)}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, 0o666 & ~UMASK)  # mkstemp makes 0600; results are shared with colleagues
        write(tmp_path)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except OSError as exc:
        raise StoreError(f"cannot write {str(path)!r}: {_describe_os_error(exc)}") from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: Path, data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: Path, text: str) -> None:
    """Atomically write UTF-8 ``text`` to ``path``."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def remove_stray_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files that killed writes left in ``folder``; returns them.

    Call it only while holding the folder's lock: a live writer's temporary file looks the same.
    """
    removed = []
    for path in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def read_bytes(path: Path) -> bytes:
    """The bytes of ``path``; :class:`StoreError` if it cannot be read."""
    try:
        return Path(path).read_bytes()
    except IsADirectoryError:
        raise StoreError(f"{str(path)!r} is a folder, expected a file") from None
    except OSError as exc:
        raise StoreError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy values as Python ones and non-finite floats as strings (``"inf"``)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else str(value)
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj


def json_text(obj: Any) -> str:
    """Pretty, key-sorted JSON of :func:`jsonable` ``obj``."""
    return json.dumps(jsonable(obj), indent=2, sort_keys=True) + "\n"


def write_json(path: Path, obj: Any) -> None:
    """Atomically write pretty, key-sorted JSON (``inf``/``nan`` become strings)."""
    write_text(path, json_text(obj))


def read_json(path: Path, expect: type | None = None) -> Any:
    """Parse a JSON file; :class:`StoreError` naming the file if it is unreadable, not JSON, or
    (with ``expect``) not of that type."""
    data = read_bytes(path)
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        reason = "it is empty" if not data.strip() else f"it is not valid JSON ({str(exc).splitlines()[0]})"
        raise StoreError(f"cannot read {str(path)!r}: {reason}") from None
    if expect is not None and not isinstance(value, expect):
        raise StoreError(f"cannot read {str(path)!r}: expected a JSON {'object' if expect is dict else expect.__name__}, "
                         f"got {type(value).__name__}")
    return value


def write_frame(path: Path, frame: pd.DataFrame) -> None:
    """Atomically write a DataFrame as Parquet (pyarrow, no index)."""
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, engine="pyarrow", index=False))


def read_frame(path: Path) -> pd.DataFrame:
    """Read a Parquet file written by :func:`write_frame`; :class:`StoreError` if it is damaged.

    The bytes are read in one go: pyarrow may otherwise reopen the path between footer and
    pages, and a concurrent atomic replace would hand it pages of a different file.
    """
    data = read_bytes(path)
    try:
        return pd.read_parquet(io.BytesIO(data), engine="pyarrow")
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for damaged files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(f"cannot read {str(path)!r}: not a readable Parquet file ({first})") from None


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def now_iso() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
