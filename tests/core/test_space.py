from __future__ import annotations

import numpy as np
import pytest

from bench.core.space import CodeGrid, InvalidLatents


def test_validate_accepts_and_converts() -> None:
    grid = CodeGrid(2, 3, 4)
    out = grid.validate(np.zeros((5, 2, 3), dtype=np.int32))
    assert out.dtype == np.int64 and out.shape == (5, 2, 3)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((5, 3, 2), dtype=int), "shape"),
    (np.zeros((5, 2, 3), dtype=float), "integer dtype"),
    (np.full((5, 2, 3), 4), "outside the codebook"),
    (np.full((5, 2, 3), -1), "outside the codebook"),
])
def test_validate_rejects(bad: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidLatents, match=message):
        CodeGrid(2, 3, 4).validate(bad)


def test_validate_names_offending_position() -> None:
    mask = np.ones((2, 3, 4), dtype=bool)
    mask[1, 2, 3] = False
    latents = np.zeros((2, 2, 3), dtype=int)
    latents[1, 1, 2] = 3
    with pytest.raises(InvalidLatents, match=r"latent 1 has code 3 at position \(1, 2\).*mask"):
        CodeGrid(2, 3, 4, mask).validate(latents)


def test_validate_checks_batch_size() -> None:
    with pytest.raises(InvalidLatents, match=r"\(3, 2, 3\)"):
        CodeGrid(2, 3, 4).validate(np.zeros((2, 2, 3), dtype=int), n=3)


def test_mask_must_allow_a_code_everywhere() -> None:
    mask = np.ones((2, 2, 3), dtype=bool)
    mask[0, 1] = False
    with pytest.raises(ValueError, match=r"no code at position \(0, 1\)"):
        CodeGrid(2, 2, 3, mask)


def test_sampling_respects_mask_and_probs() -> None:
    mask = np.zeros((2, 2, 5), dtype=bool)
    mask[..., [1, 3]] = True
    grid = CodeGrid(2, 2, 5, mask)
    z = grid.sample(2000, np.random.default_rng(0))
    assert set(np.unique(z)) == {1, 3}
    probs = np.zeros((2, 2, 5))
    probs[..., 3] = 1.0
    assert (grid.sample(50, np.random.default_rng(0), probs) == 3).all()
    assert grid.contains(z).all() and not grid.contains(np.zeros((1, 2, 2), dtype=int)).any()


def test_from_data_mask_and_digest() -> None:
    latents = np.array([[[0, 1]], [[2, 1]]])
    grid = CodeGrid.from_data(latents, 4)
    assert grid.allowed_codes(0, 0).tolist() == [0, 2]
    assert grid.allowed_codes(0, 1).tolist() == [1]
    assert grid == CodeGrid.from_data(latents, 4) and grid != CodeGrid(1, 2, 4)
