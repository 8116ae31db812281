"""scikit-optimize wrappers: valid, new, distinct proposals; duplicates and masks handled."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bench.core import registry
from bench.core.optimizer import Observations
from bench.core.space import CodeGrid

NAMES = ["skopt-rf", "skopt-et", "skopt-gbrt", "skopt-gp"]


def observations(space: CodeGrid, n: int, seed: int = 0) -> Observations:
    latents = space.sample(n, np.random.default_rng(seed))
    flat = latents.reshape(n, -1)
    return Observations(space, latents, ((flat == 1).sum(axis=1) + 0.01 * flat.sum(axis=1)).astype(np.float64))


@pytest.mark.parametrize("name", NAMES)
def test_batch_is_valid_new_and_distinct(name: str) -> None:
    space = CodeGrid(3, 3, 6)
    data = observations(space, 15)
    optimizer = registry.optimizer_spec(name).build(space, 0, overrides={"n_candidates": 300})
    proposal = optimizer.propose(4, data)
    batch = proposal.latents
    space.validate(batch, n=4)
    keys = {z.tobytes() for z in batch}
    assert len(keys) == 4
    assert not keys & {z.tobytes() for z in data.latents}
    assert proposal.info[-1]["solver"] == name


@pytest.mark.parametrize("name", ["skopt-rf", "skopt-gp"])
def test_nearly_exhausted_space_gets_the_unseen_latents(name: str) -> None:
    space = CodeGrid(1, 3, 2)  # 8 latents
    every = np.array(list(itertools.product(range(2), repeat=3))).reshape(8, 1, 3)
    data = Observations(space, every[:5], np.arange(5, dtype=np.float64))
    batch = registry.optimizer_spec(name).build(space, 0, overrides={"n_candidates": 50}).propose(3, data).latents
    assert {z.tobytes() for z in batch} == {z.tobytes() for z in every[5:]}


def test_forbidden_codes_in_the_data_are_not_proposed() -> None:
    space = CodeGrid(2, 2, 4)
    data = observations(space, 12)
    mask = np.ones((2, 2, 4), dtype=bool)
    mask[..., 1] = False  # code 1 scores best in the data but is no longer allowed
    mask[0, 1] = False
    mask[0, 1, 3] = True  # a single allowed code: a fixed position
    masked = space.with_mask(mask)
    batch = registry.optimizer_spec("skopt-et").build(masked, 0, overrides={"n_candidates": 200}).propose(
        3, Observations(masked, data.latents, data.scores)).latents
    masked.validate(batch, n=3)
    assert (batch[:, 0, 1] == 3).all()


def test_label_encoding_keeps_the_wide_grid_cheap() -> None:
    """8x8 positions x 256 codes: skopt's one-hot transform would hold 16,384 columns per candidate."""
    space = CodeGrid(8, 8, 256)
    data = observations(space, 30)
    optimizer = registry.optimizer_spec("skopt-rf").build(space, 0, overrides={"n_candidates": 200})
    skopt_optimizer = optimizer._skopt([np.arange(256)] * 64, 0)
    assert skopt_optimizer.space.transformed_n_dims == 64
    space.validate(optimizer.propose(2, data).latents, n=2)
