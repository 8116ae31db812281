"""Argument types and helpers shared by the ``bench`` subcommands."""

from __future__ import annotations

import argparse
import math
import os
import tomllib
from pathlib import Path
from typing import Any, Sequence

from bench.core.config import MAX_SEED
from bench.core.errors import UserError


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def seed(text: str) -> int:
    """argparse type: a 32-bit seed."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"a seed must be between 0 and {MAX_SEED}, got {value}")
    return value


def float_or_inf(text: str) -> float:
    """argparse type: a number, or ``inf``/``never``."""
    if text.strip().lower() in ("inf", "infinity", "never"):
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'inf', got {text!r}") from None
    if math.isnan(value):
        raise argparse.ArgumentTypeError("expected a number or 'inf', got nan")
    return value


def key_values(pairs: Sequence[str] | None, flag: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` with values parsed as TOML scalars when possible."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{flag} expects KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
    return out


def writable_dir(path: Path) -> Path:
    """Create ``path`` if needed and check it is a writable folder, else raise :class:`UserError`."""
    if path.exists() and not path.is_dir():
        raise UserError(f"output folder {str(path)!r} is a file; choose another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {str(path)!r}: {exc.strerror}; choose another --out") from None
    if not os.access(path, os.W_OK):
        raise UserError(f"output folder {str(path)!r} is not writable; choose another --out")
    return path
