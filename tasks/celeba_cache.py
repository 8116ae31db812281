"""A one-time cache of CelebA's 64x64 crops: a memory-mapped uint8 array, filled in chunks, resumable.

Decoding the 202,599 aligned JPEGs takes minutes; every ``bench prepare`` and every run of a
CelebA task needs some of them again. The cache stores each image once, as uint8 (3, 64, 64)
(12 KB; 2.5 GB for all of CelebA), in ``<cache dir>/<key>.u8`` with a "done" mask beside it. The
key hashes everything the pixels depend on (image source, names, crop, decoding mode), so a
changed setting gets a new file. Filling is chunked: a killed process loses at most one chunk,
and the next one continues where it stopped. Writes are idempotent (the same image always
decodes to the same bytes), so concurrent runs sharing a cache do no harm.

The folder is ``$BENCH_DATA_CACHE``, else ``$XDG_CACHE_HOME/latent-bench/celeba`` (a location,
not a result-deciding setting, so it is not a task parameter).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ENV_DATA_CACHE = "BENCH_DATA_CACHE"
CACHE_FORMAT = 1
CHUNK = 2048


def default_cache_dir() -> Path:
    """``$BENCH_DATA_CACHE``, else ``$XDG_CACHE_HOME/latent-bench/celeba``."""
    if os.environ.get(ENV_DATA_CACHE):
        return Path(os.environ[ENV_DATA_CACHE]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "latent-bench" / "celeba"


def cache_key(source: Path, names: list[str], settings: dict[str, object]) -> str:
    """Hash of what the cached pixels depend on."""
    h = hashlib.sha256(f"{CACHE_FORMAT}:{source.resolve()}:{sorted(settings.items())}".encode())
    h.update("\n".join(names).encode())
    return h.hexdigest()[:20]


class ImageCache:
    """uint8 (n, *shape) images on disk, decoded on first request by ``load(index)``."""

    def __init__(self, folder: Path, key: str, n: int, shape: tuple[int, ...],
                 load: Callable[[int], np.ndarray]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{key}.u8"
        self.done_path = folder / f"{key}.done.npy"
        self.load = load
        if not self.path.exists():
            # Created under a temporary name and linked into place: two processes starting at
            # once never truncate each other's file.
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as handle:
                handle.truncate(n * int(np.prod(shape)))
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                pass
            tmp.unlink()
        self.data = np.memmap(self.path, dtype=np.uint8, mode="r+", shape=(n, *shape))
        self.done = self._read_done(n)

    def _read_done(self, n: int) -> np.ndarray:
        try:
            done = np.load(self.done_path)
            return done if done.shape == (n,) and done.dtype == bool else np.zeros(n, dtype=bool)
        except (OSError, ValueError):
            return np.zeros(n, dtype=bool)

    def _save_done(self) -> None:
        merged = self.done | self._read_done(len(self.done))  # keep what other processes marked
        tmp = self.done_path.with_name(f".{self.done_path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as handle:
            np.save(handle, merged)
        os.replace(tmp, self.done_path)
        self.done = merged

    def fill(self, indices: np.ndarray, progress: bool = False, threads: int | None = None) -> int:
        """Decode the images of ``indices`` not cached yet (chunk by chunk); returns how many were decoded."""
        from tqdm import tqdm

        todo = np.unique(np.asarray(indices, dtype=np.int64))
        todo = todo[~self.done[todo]]
        if not len(todo):
            return 0
        workers = threads or min(8, os.cpu_count() or 1)
        # JPEG decoding and resizing release the GIL: threads use every core.
        with ThreadPoolExecutor(max_workers=workers) as pool, \
                tqdm(total=len(todo), desc="CelebA 64x64 cache", unit="img", disable=not progress) as bar:
            for start in range(0, len(todo), CHUNK):
                chunk = todo[start:start + CHUNK]
                for i, image in zip(chunk, pool.map(self.load, chunk.tolist())):
                    self.data[i] = image
                self.data.flush()
                self.done[chunk] = True
                self._save_done()
                bar.update(len(chunk))
        return len(todo)

    def read(self, indices: np.ndarray) -> np.ndarray:
        """The images of ``indices`` (decoded first where missing), as an in-memory array."""
        indices = np.asarray(indices, dtype=np.int64)
        self.fill(indices)
        return np.asarray(self.data[indices])
