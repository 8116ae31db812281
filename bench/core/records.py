"""The record schema: latents as compact bytes, and record rows as a typed DataFrame.

Column names live in :mod:`bench.core.constants`; this module fixes their dtypes and the byte
encoding of a latent, which the run loop writes and the store and the analysis read.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

from bench.core import constants as C

RECORD_DTYPES = {
    C.SEED: "int64", C.BATCH: "int64", C.EVAL: "int64", C.QUERY: "int64", C.SCORE: "float64",
    C.BEST_SO_FAR: "float64", C.IS_INIT: "bool", C.IS_DUPLICATE: "bool", C.IS_FALLBACK: "bool",
    C.PROPOSE_S: "float64", C.EVALUATE_S: "float64", C.ELAPSED_S: "float64", C.MODEL_VERSION: "int64",
    **{column: "float64" for column in C.EXTRA_COLUMNS},
}
_TEXT_COLUMNS = (C.RUN_ID, C.TASK, C.TASK_SIGNATURE, C.OPTIMIZER, C.PRESET_HASH)
DIAGNOSTIC_COLUMNS = (C.DIAG_BATCH, C.DIAG_KIND, C.DIAG_MESSAGE)
METRIC_COLUMNS = (C.METRIC_AT_QUERY, C.METRIC_SUBSET, C.METRIC_NAME, C.METRIC_VALUE, C.METRIC_STD, C.METRIC_N,
                  C.METRIC_REFERENCE, C.METRIC_FEATURES)


def _latent_dtype(codebook_size: int) -> np.dtype:
    return np.dtype(np.uint8) if codebook_size <= 256 else np.dtype("<u2")


def encode_latent(latent: np.ndarray, codebook_size: int) -> bytes:
    """A latent grid as bytes: uint8 per code when the codebook has <= 256 codes, else uint16."""
    return np.asarray(latent, dtype=_latent_dtype(codebook_size)).tobytes()


def decode_latents(blobs: Iterable[bytes], shape: tuple[int, int], codebook_size: int) -> np.ndarray:
    """Inverse of :func:`encode_latent` for a sequence of blobs: (n, height, width) int64."""
    blobs = list(blobs)
    if not blobs:
        return np.zeros((0, *shape), dtype=np.int64)
    flat = np.frombuffer(b"".join(blobs), dtype=_latent_dtype(codebook_size))
    return flat.reshape(len(blobs), *shape).astype(np.int64)


def records_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Record rows as a DataFrame with the canonical column order and dtypes."""
    frame = pd.DataFrame(rows, columns=list(C.RECORD_COLUMNS))
    for col, dtype in RECORD_DTYPES.items():
        frame[col] = frame[col].astype(dtype)
    for col in _TEXT_COLUMNS:
        frame[col] = frame[col].astype("str")
    return frame


def rows_frame(rows: list[dict[str, Any]], columns: Iterable[str]) -> pd.DataFrame:
    """Diagnostic or metric rows as a DataFrame that has at least ``columns`` (empty ones as objects)."""
    frame = pd.DataFrame(rows)
    for col in columns:
        if col not in frame.columns:
            frame[col] = pd.Series(dtype=object)
    return frame
