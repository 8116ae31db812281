"""One contract, checked for every registered optimizer and preset.

Modelled on optuna's parametrized sampler tests: adding an optimizer adds it here automatically.
"""

from __future__ import annotations

import functools
import json
import pickle
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.core import registry
from bench.core.optimizer import Observations
from bench.core.task import Task

TASK = "closed-form"
N_INITIAL = 20
BATCH = 3
# Presets whose point is a large-scale configuration run a cheap stand-in here: the contract is
# about seeding and state, not scale.
OVERRIDES: dict[str, dict] = {}

ALL = sorted(registry.optimizers())


def observations(task: Task, seed: int = 0) -> Observations:
    init = task.initial_data(seed, N_INITIAL)
    return Observations(task.space, init.latents, init.scores)


def two_rounds(name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two consecutive batches: the second sees the first one's evaluations."""
    task = registry.task_spec(TASK).build()
    data = observations(task)
    opt = registry.optimizer_spec(name).build(task.space, seed, overrides=OVERRIDES.get(name))
    first = opt.propose(BATCH, data).latents
    data2 = Observations(task.space, np.concatenate([data.latents, first]),
                         np.concatenate([data.scores, task.evaluate(first).scores]))
    second = opt.propose(BATCH, data2).latents
    return first, second


@functools.lru_cache(maxsize=None)
def cached_rounds(name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`two_rounds`, computed once per test session (the tests compare against it)."""
    return two_rounds(name, seed)


def _fresh_process_proposals(names: list[str]) -> dict[str, list]:
    code = (
        "import json, sys\n"
        "from tests.test_optimizer_contract import two_rounds\n"
        "out = {}\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    a, b = two_rounds(name, 0)\n"
        "    out[name] = [a.tolist(), b.tolist()]\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(names)], capture_output=True, text=True,
                          check=True, timeout=900, cwd=Path(__file__).resolve().parents[1])
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def fresh_process() -> dict[str, list]:
    return _fresh_process_proposals(ALL)


@pytest.mark.parametrize("name", ALL)
def test_proposals_are_valid(name: str) -> None:
    task = registry.task_spec(TASK).build()
    first, second = cached_rounds(name, 0)
    for batch in (first, second):
        assert batch.shape == (BATCH, *task.space.shape)
        assert np.issubdtype(batch.dtype, np.integer)
        task.space.validate(batch, n=BATCH)


@pytest.mark.parametrize("name", ALL)
def test_proposals_respect_mask(name: str) -> None:
    task = registry.task_spec(TASK).build()
    data = observations(task)
    mask = np.zeros((*task.space.shape, task.space.codebook_size), dtype=bool)
    mask[..., ::2] = True  # even codes only
    masked = task.space.with_mask(mask)
    latents = data.latents - data.latents % 2
    masked_data = Observations(masked, latents, task.evaluate(latents).scores)
    opt = registry.optimizer_spec(name).build(masked, 0, overrides=OVERRIDES.get(name))
    masked.validate(opt.propose(BATCH, masked_data).latents, n=BATCH)


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_proposals(name: str) -> None:
    a = cached_rounds(name, 0)
    b = two_rounds(name, 0)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("name", ALL)
def test_different_seed_different_proposals(name: str) -> None:
    a = np.concatenate(cached_rounds(name, 0))
    b = np.concatenate(cached_rounds(name, 1))
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("name", ALL)
def test_same_proposals_in_fresh_process(name: str, fresh_process: dict[str, list]) -> None:
    first, second = cached_rounds(name, 0)
    assert fresh_process[name] == [first.tolist(), second.tolist()]


@pytest.mark.parametrize("name", ALL)
def test_global_rng_untouched(name: str) -> None:
    np_state = np.random.get_state()
    py_state = random.getstate()
    torch_state = torch.random.get_rng_state().clone()
    two_rounds(name, 0)
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
    assert random.getstate() == py_state
    assert torch.equal(torch.random.get_rng_state(), torch_state)


@pytest.mark.parametrize("name", ALL)
def test_state_dict_resumes_exactly(name: str) -> None:
    task = registry.task_spec(TASK).build()
    spec = registry.optimizer_spec(name)
    data = observations(task)
    opt = spec.build(task.space, 0, overrides=OVERRIDES.get(name))
    first = opt.propose(BATCH, data).latents
    state = pickle.loads(pickle.dumps(opt.state_dict()))
    data2 = Observations(task.space, np.concatenate([data.latents, first]),
                         np.concatenate([data.scores, task.evaluate(first).scores]))
    restored = spec.build(task.space, 0, overrides=OVERRIDES.get(name))
    restored.load_state_dict(state)
    np.testing.assert_array_equal(opt.propose(BATCH, data2).latents, restored.propose(BATCH, data2).latents)


@pytest.mark.parametrize("name", ALL)
def test_proposals_are_distinct_and_new(name: str) -> None:
    task = registry.task_spec(TASK).build()
    data = observations(task)
    batch = registry.optimizer_spec(name).build(task.space, 0, overrides=OVERRIDES.get(name)).propose(BATCH, data).latents
    keys = {z.tobytes() for z in np.asarray(batch, dtype=np.int64)}
    assert len(keys) == BATCH
    assert not keys & {z.tobytes() for z in data.latents.astype(np.int64)}
