"""One run's folder: ``<sweep>/runs/task=<t>/opt=<o>/seed=<s>/``.

==========================  ===========================================================
``run.json``                resolved config, status, provenance, progress (always JSON)
``records.parquet``         one row per evaluation (:mod:`bench.core.records`)
``proposals.parquet``       per-batch diagnostics of the optimizer
``metrics.parquet``         FID/KID checkpoints
``checkpoint.npz``          the state after the last batch, pickle-free (:mod:`bench.store.safe`)
``query_images.u8``         every scored image of an image task, raw uint8, appended per batch
``initial_images.npz``      the first images of the initial design (what the report shows)
``error.txt``               the traceback of a failed run
==========================  ===========================================================

A batch is stored in an order that makes every crash recoverable: images, then tables, then the
checkpoint (which names how many record rows and images it covers), then ``run.json``.
:meth:`RunFolder.read_checkpoint` cuts tables and images back to what the checkpoint covers.
"""

from __future__ import annotations

import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from bench.core import constants as C
from bench.core.records import DIAGNOSTIC_COLUMNS, METRIC_COLUMNS, rows_frame
from bench.store import safe
from bench.store.files import (StoreError, now_iso, read_bytes, read_frame, read_json, remove_stray_temporaries,
                               write_bytes, write_frame, write_json, write_text)
from bench.store.locks import FolderLock

#: version of the run-folder layout written by this code
RUN_FORMAT = 2
#: initial-design images kept for reports
N_INITIAL_IMAGES = 16
LEGACY_CHECKPOINT = "checkpoint.pkl"


@dataclass
class Checkpoint:
    """The last consistent state of a run folder: its tables, the state tree and the query images."""

    records: pd.DataFrame
    diagnostics: pd.DataFrame
    metrics: pd.DataFrame
    state: dict[str, Any]
    query_images: np.ndarray | None


class RunFolder:
    """Reads and writes one run's folder (see the module doc); every damage is a :class:`StoreError`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def for_config(cls, sweep_dir: Path, parts: tuple[str, str, str]) -> RunFolder:
        """The folder ``<sweep_dir>/runs/<parts>``."""
        return cls(Path(sweep_dir) / "runs" / Path(*parts))

    def file(self, name: str) -> Path:
        """Path of one of the folder's files."""
        return self.path / name

    # --- run.json -----------------------------------------------------------------------------
    def exists(self) -> bool:
        """Whether the folder holds a run (its ``run.json``)."""
        return self.file(C.RUN_FILE).exists()

    def read_info(self) -> dict[str, Any]:
        """The parsed ``run.json``; :class:`StoreError` if it is damaged or not a run record."""
        info = read_json(self.file(C.RUN_FILE), expect=dict)
        if not isinstance(info.get("config"), dict) or not isinstance(info.get("status"), str):
            raise StoreError(f"cannot read {str(self.file(C.RUN_FILE))!r}: not a bench run record "
                             "(no 'config' and 'status')")
        return info

    def write_info(self, info: dict[str, Any]) -> None:
        """Atomically replace ``run.json``."""
        write_json(self.file(C.RUN_FILE), {**info, "format": RUN_FORMAT})

    def status(self) -> str:
        """``pending`` without ``run.json``, else its status (:class:`StoreError` if damaged)."""
        return self.read_info()["status"] if self.exists() else C.STATUS_PENDING

    def write_error(self, text: str) -> Path:
        """Store a failed run's traceback; returns the file."""
        write_text(self.file(C.ERROR_FILE), text)
        return self.file(C.ERROR_FILE)

    # --- tables -------------------------------------------------------------------------------
    def read_records(self) -> pd.DataFrame:
        """``records.parquet`` (extra columns added by newer versions appear as NaN)."""
        frame = read_frame(self.file(C.RECORDS_FILE))
        for column in C.EXTRA_COLUMNS:
            if column not in frame.columns:
                frame[column] = np.nan
        return frame

    def read_table(self, name: str) -> pd.DataFrame | None:
        """``proposals.parquet`` or ``metrics.parquet``, None when absent."""
        return read_frame(self.file(name)) if self.file(name).exists() else None

    # --- images -------------------------------------------------------------------------------
    def read_query_images(self) -> np.ndarray | None:
        """uint8 (Q, C, H, W) images of the queries ``run.json`` counts, None when not stored."""
        images = self.read_info().get("images")
        if not images:
            return None
        return self._read_frames(tuple(images["shape"]), int(images["queries"]))

    def _read_frames(self, shape: tuple[int, ...], count: int) -> np.ndarray:
        frame_bytes = int(np.prod(shape))
        path = self.file(C.QUERY_IMAGES_FILE)
        data = read_bytes(path) if path.exists() else b""
        if len(data) < count * frame_bytes:
            raise StoreError(f"cannot read {str(path)!r}: holds {len(data) // frame_bytes} images, "
                             f"the run recorded {count}")
        return np.frombuffer(data[:count * frame_bytes], dtype=np.uint8).reshape(count, *shape).copy()

    def read_initial_images(self) -> np.ndarray | None:
        """uint8 images of the start of the initial design, None when not stored."""
        path = self.file(C.INITIAL_IMAGES_FILE)
        if not path.exists():
            return None
        try:
            with np.load(io.BytesIO(read_bytes(path)), allow_pickle=False) as archive:
                return archive["images"].copy()
        except (ValueError, KeyError, OSError) as exc:
            raise StoreError(f"cannot read {str(path)!r}: {exc}") from None

    def write_initial_images(self, images: np.ndarray) -> None:
        """Keep the first :data:`N_INITIAL_IMAGES` initial-design images (uint8) for reports."""
        buffer = io.BytesIO()
        np.savez_compressed(buffer, images=np.asarray(images[:N_INITIAL_IMAGES], dtype=np.uint8))
        write_bytes(self.file(C.INITIAL_IMAGES_FILE), buffer.getvalue())

    def _append_images(self, images: np.ndarray, already: int) -> None:
        """Append one batch's images after the first ``already`` frames (cutting any crash leftovers)."""
        path = self.file(C.QUERY_IMAGES_FILE)
        frame_bytes = int(np.prod(images.shape[1:]))
        try:
            with open(path, "ab") as fh:
                fh.truncate(already * frame_bytes)
                fh.write(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise StoreError(f"cannot write {str(path)!r}: {exc.strerror}") from None

    # --- checkpoints --------------------------------------------------------------------------
    def write_batch(self, records: pd.DataFrame, diagnostics: list[dict[str, Any]], metrics: list[dict[str, Any]],
                    state: dict[str, Any], new_images: np.ndarray | None, images_before: int,
                    image_shape: tuple[int, ...] | None) -> None:
        """Store one finished batch: new images, the tables, then the checkpoint (see the module doc).

        ``state`` is plain data holding ``queries``, the number of stored query images it covers.
        """
        if new_images is not None and len(new_images):
            self._append_images(new_images, images_before)
        self.write_tables(records, diagnostics, metrics)
        payload = {"format": RUN_FORMAT, "n_records": len(records), "state": state,
                   "image_shape": None if image_shape is None else list(image_shape)}
        write_bytes(self.file(C.CHECKPOINT_FILE), safe.dumps(payload, what="checkpoint"))

    def write_tables(self, records: pd.DataFrame, diagnostics: list[dict[str, Any]],
                     metrics: list[dict[str, Any]]) -> None:
        """Replace the records, diagnostics and metrics tables (each file atomically)."""
        write_frame(self.file(C.RECORDS_FILE), records)
        write_frame(self.file(C.DIAGNOSTICS_FILE), rows_frame(diagnostics, DIAGNOSTIC_COLUMNS))
        write_frame(self.file(C.METRICS_FILE), rows_frame(metrics, METRIC_COLUMNS))

    def has_checkpoint(self) -> bool:
        """Whether a checkpoint exists (of this format or an older one)."""
        return self.file(C.CHECKPOINT_FILE).exists() or self.file(LEGACY_CHECKPOINT).exists()

    def read_checkpoint(self) -> Checkpoint | None:
        """The last consistent checkpoint, or None if there is none; :class:`StoreError` if damaged."""
        path = self.file(C.CHECKPOINT_FILE)
        if not path.exists():
            if self.file(LEGACY_CHECKPOINT).exists():
                raise StoreError(f"{str(self.file(LEGACY_CHECKPOINT))!r} was written by an older version (pickle), "
                                 "which is never loaded; restart the run (--retry-failed) or use another --out")
            return None
        try:
            payload = safe.loads(read_bytes(path))
            n_records, state, image_shape = int(payload["n_records"]), payload["state"], payload["image_shape"]
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"cannot read {str(path)!r}: {exc}") from None
        records = self.read_records()
        if len(records) < n_records:
            raise StoreError(f"{str(self.file(C.RECORDS_FILE))!r} holds {len(records)} rows, the checkpoint "
                             f"{n_records}")
        records = records.iloc[:n_records].reset_index(drop=True)
        last_batch = int(records[C.BATCH].max()) if len(records) else -1
        last_query = int(records[C.QUERY].max()) if len(records) else 0
        diagnostics = _cut(self.read_table(C.DIAGNOSTICS_FILE), C.DIAG_BATCH, last_batch)
        metrics = _cut(self.read_table(C.METRICS_FILE), C.METRIC_AT_QUERY, last_query)
        images = None if image_shape is None else self._read_frames(tuple(image_shape), int(state["queries"]))
        return Checkpoint(records, diagnostics, metrics, state, images)

    # --- writing sessions ---------------------------------------------------------------------
    def lock(self) -> FolderLock:
        """The lock every writer of this run holds (two jobs never write one run)."""
        return FolderLock(self.path, what="run folder")

    def open_for_writing(self) -> None:
        """Create the folder and remove temporary files that killed writes left (hold :meth:`lock`)."""
        self.path.mkdir(parents=True, exist_ok=True)
        remove_stray_temporaries(self.path)

    def set_aside(self, reason: str) -> Path:
        """Move the folder's run files into ``damaged-<time>/`` (a restart from scratch); returns it."""
        target = self.path / f"damaged-{now_iso().replace(':', '')}"
        target.mkdir(parents=True, exist_ok=True)
        for path in self.path.iterdir():
            if path.is_file() and path.name != ".bench.lock":
                shutil.move(str(path), str(target / path.name))
        write_text(target / "reason.txt", reason + "\n")
        return target


def _cut(frame: pd.DataFrame | None, column: str, last: int) -> pd.DataFrame:
    """Rows of ``frame`` up to ``last`` in ``column`` (a crash can leave tables one batch ahead)."""
    if frame is None or not len(frame):
        return frame if frame is not None else pd.DataFrame()
    return frame[frame[column] <= last].reset_index(drop=True)


def iter_run_folders(sweep_dir: Path) -> Iterator[RunFolder]:
    """Every run folder (one holding ``run.json``) under ``<sweep_dir>/runs``, sorted."""
    for run_json in sorted((Path(sweep_dir) / "runs").glob(f"task=*/opt=*/seed=*/{C.RUN_FILE}")):
        yield RunFolder(run_json.parent)
