"""The search space: a grid of unordered categorical variables (VQ-VAE codebook indices)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


class InvalidLatents(ValueError):
    """A batch of latents does not belong to the search space."""


@dataclass(frozen=True, eq=False)
class CodeGrid:
    """An (height x width) grid whose every position takes one of ``codebook_size`` codes.

    ``mask`` is an optional boolean array of shape (height, width, codebook_size): ``mask[i, j, c]``
    says whether code ``c`` may be used at position (i, j), e.g. because it was seen there in the
    training data. ``None`` allows every code everywhere.
    """

    height: int
    width: int
    codebook_size: int
    mask: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in ("height", "width", "codebook_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"CodeGrid.{name} must be a positive integer, got {value!r}")
        if self.mask is not None:
            mask = np.asarray(self.mask, dtype=bool)
            if mask.shape != (self.height, self.width, self.codebook_size):
                raise ValueError(
                    f"CodeGrid.mask must have shape {(self.height, self.width, self.codebook_size)}, "
                    f"got {mask.shape}"
                )
            empty = np.argwhere(~mask.any(axis=2))
            if len(empty):
                i, j = empty[0]
                raise ValueError(f"CodeGrid.mask allows no code at position ({i}, {j})")
            mask = mask.copy()
            mask.setflags(write=False)
            object.__setattr__(self, "mask", mask)

    # --- shape helpers -------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """Grid shape (height, width)."""
        return (self.height, self.width)

    @property
    def n_positions(self) -> int:
        """Number of categorical variables, height * width."""
        return self.height * self.width

    def allowed_mask(self) -> np.ndarray:
        """Boolean (height, width, codebook_size) array of allowed codes (all True without mask)."""
        if self.mask is None:
            return np.ones((self.height, self.width, self.codebook_size), dtype=bool)
        return self.mask

    def allowed_codes(self, i: int, j: int) -> np.ndarray:
        """Sorted array of the codes allowed at position (i, j)."""
        if self.mask is None:
            return np.arange(self.codebook_size)
        return np.flatnonzero(self.mask[i, j])

    def allowed_codes_flat(self) -> list[np.ndarray]:
        """Allowed codes for every position in row-major (flattened) order."""
        return [self.allowed_codes(i, j) for i in range(self.height) for j in range(self.width)]

    # --- validation ----------------------------------------------------------------------
    def validate(self, latents: np.ndarray, n: int | None = None) -> np.ndarray:
        """Check a batch of latents and return it as an int64 array of shape (n, height, width).

        Raises :class:`InvalidLatents` naming the first offending item and position.
        """
        arr = np.asarray(latents)
        expected = (n if n is not None else "n", self.height, self.width)
        if arr.ndim != 3 or arr.shape[1:] != self.shape or (n is not None and arr.shape[0] != n):
            raise InvalidLatents(f"expected latents of shape {expected}, got {arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise InvalidLatents(f"latents must have an integer dtype, got {arr.dtype}")
        arr = arr.astype(np.int64, copy=False)
        bad = (arr < 0) | (arr >= self.codebook_size)
        if bad.any():
            b, i, j = np.argwhere(bad)[0]
            raise InvalidLatents(
                f"latent {b} has code {arr[b, i, j]} at position ({i}, {j}), "
                f"outside the codebook [0, {self.codebook_size})"
            )
        if self.mask is not None:
            ok = self.mask[np.arange(self.height)[None, :, None], np.arange(self.width)[None, None, :], arr]
            if not ok.all():
                b, i, j = np.argwhere(~ok)[0]
                raise InvalidLatents(
                    f"latent {b} has code {arr[b, i, j]} at position ({i}, {j}), "
                    f"which the mask does not allow there"
                )
        return arr

    def contains(self, latents: np.ndarray) -> np.ndarray:
        """Boolean array: which latents of a (n, height, width) batch lie in the space."""
        arr = np.asarray(latents, dtype=np.int64)
        inside = ((arr >= 0) & (arr < self.codebook_size)).all(axis=(1, 2))
        if self.mask is not None:
            clipped = np.clip(arr, 0, self.codebook_size - 1)
            ok = self.mask[np.arange(self.height)[None, :, None], np.arange(self.width)[None, None, :], clipped]
            inside &= ok.all(axis=(1, 2))
        return inside

    # --- sampling ------------------------------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator, probs: np.ndarray | None = None) -> np.ndarray:
        """Draw ``n`` latents, independently per position.

        ``probs`` is an optional (height, width, codebook_size) array of per-position code
        probabilities (renormalised over the allowed codes); default is uniform over allowed codes.
        """
        weights = self.allowed_mask().astype(np.float64)
        if probs is not None:
            weights = weights * np.asarray(probs, dtype=np.float64)
            zero = weights.sum(axis=2) <= 0
            weights[zero] = self.allowed_mask()[zero]  # no mass left: fall back to uniform
        cdf = np.cumsum(weights, axis=2)
        cdf /= cdf[..., -1:]
        u = rng.random((n, self.height, self.width, 1))
        codes = (u > cdf[None]).sum(axis=3)
        return np.minimum(codes, self.codebook_size - 1).astype(np.int64)

    # --- identity ------------------------------------------------------------------------
    def digest(self) -> str:
        """Short hash of the shape, codebook size and mask."""
        h = hashlib.sha256(f"{self.height}x{self.width}x{self.codebook_size}".encode())
        if self.mask is not None:
            h.update(np.packbits(self.mask).tobytes())
        return h.hexdigest()[:16]

    def with_mask(self, mask: np.ndarray | None) -> CodeGrid:
        """The same grid with another mask."""
        return CodeGrid(self.height, self.width, self.codebook_size, mask)

    @classmethod
    def from_data(cls, latents: np.ndarray, codebook_size: int) -> CodeGrid:
        """A grid whose mask allows, at each position, the codes seen there in ``latents``."""
        arr = np.asarray(latents, dtype=np.int64)
        n, h, w = arr.shape
        mask = np.zeros((h, w, codebook_size), dtype=bool)
        mask[np.arange(h)[None, :, None], np.arange(w)[None, None, :], arr] = True
        return cls(h, w, codebook_size, mask)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CodeGrid) and self.digest() == other.digest()

    def __hash__(self) -> int:
        return hash(self.digest())
