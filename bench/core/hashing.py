"""Stable short hashes of plain data (run ids, preset hashes, artifact configurations)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def stable_hash(obj: Any) -> str:
    """Short SHA-256 of a JSON-serialisable object with sorted keys."""
    text = json.dumps(obj, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
