"""Contract tests every optimizer and every task must pass (pytest classes to subclass).

Modelled on optuna's ``testing/pytest_samplers.py``. In a package of your own::

    from bench.testing import OptimizerContract, TaskContract

    class TestMyOptimizer(OptimizerContract):
        optimizer_names = ["my-optimizer", "my-optimizer/fast"]
        fresh_process_imports = ["my_package.optimizers"]   # what registers them, if not an entry point

    class TestMyTask(TaskContract):
        task_names = ["my-task"]

pytest then runs every check below for every name (``-k my-optimizer`` picks one).
"""

from __future__ import annotations

import functools
import json
import random
import subprocess
import sys
from typing import Any, ClassVar, Sequence

import numpy as np
import pytest

from bench.core import constants as C
from bench.core import registry
from bench.core.optimizer import Observations, Proposal
from bench.core.task import Evaluation, Task
from bench.store import safe


def _build_task(name: str, params: dict[str, Any] | None = None) -> Task:
    return registry.task_spec(name).build(overrides=params or {})


def _observations(task: Task, seed: int, n: int) -> Observations:
    """The initial design as the run loop hands it to optimizers (with the task's codebook and prior, if any)."""
    init = task.initial_data(seed, n)
    return Observations(task.space, init.latents, init.scores, codebook=task.codebook(), prior=task.code_prior())


def grown(task: Task, data: Observations, latents: np.ndarray) -> Observations:
    """``data`` plus ``latents`` and their scores."""
    return Observations(data.space, np.concatenate([data.latents, latents]),
                        np.concatenate([data.scores, task.evaluate(latents).scores]), codebook=data.codebook,
                        prior=data.prior)


def two_rounds(name: str, seed: int, task_name: str, overrides: dict[str, Any] | None, batch: int,
               n_initial: int) -> tuple[np.ndarray, np.ndarray]:
    """Two consecutive batches of ``name`` on ``task_name``: the second sees the first one's scores."""
    task = _build_task(task_name)
    data = _observations(task, 0, n_initial)
    optimizer = registry.optimizer_spec(name).build(task.space, seed, overrides=overrides)
    first = optimizer.propose(batch, data).latents
    return first, optimizer.propose(batch, grown(task, data, first)).latents


@functools.lru_cache(maxsize=None)
def _cached_rounds(name: str, seed: int, task_name: str, overrides_json: str, batch: int,
                   n_initial: int) -> tuple[np.ndarray, np.ndarray]:
    return two_rounds(name, seed, task_name, json.loads(overrides_json), batch, n_initial)


def fresh_process_main(argv: Sequence[str]) -> None:
    """Entry of the fresh-process check: print the two rounds of every requested optimizer as JSON."""
    request = json.loads(argv[0])
    for module in request["imports"]:
        __import__(module)
    out = {}
    for name in request["names"]:
        a, b = two_rounds(name, 0, request["task"], request["overrides"].get(name), request["batch"],
                          request["n_initial"])
        out[name] = [a.tolist(), b.tolist()]
    print(json.dumps(out))


class OptimizerContract:
    """Seeding, validity and state: what the harness relies on from every optimizer (see the module doc)."""

    #: registered optimizer (or preset) names to check
    optimizer_names: ClassVar[Sequence[str]] = ()
    #: the task the checks run on, and its initial design size
    task_name: ClassVar[str] = "closed-form"
    n_initial: ClassVar[int] = 20
    batch: ClassVar[int] = 3
    #: cheap stand-in parameters per name (the contract is about seeding and state, not scale)
    overrides: ClassVar[dict[str, dict[str, Any]]] = {}
    #: modules a fresh process imports before building the optimizers (registrations)
    fresh_process_imports: ClassVar[Sequence[str]] = ()

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "optimizer_name" in metafunc.fixturenames:
            metafunc.parametrize("optimizer_name", list(self.optimizer_names))

    def rounds(self, name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Two batches of ``name`` with ``seed`` (computed once per process)."""
        return _cached_rounds(name, seed, self.task_name, json.dumps(self.overrides.get(name), sort_keys=True),
                              self.batch, self.n_initial)

    def build(self, name: str, space: Any, seed: int = 0) -> Any:
        return registry.optimizer_spec(name).build(space, seed, overrides=self.overrides.get(name))

    @pytest.fixture(scope="class")
    @classmethod
    def fresh_process(cls) -> dict[str, list[Any]]:
        """Both rounds of every name, computed in one new Python process (no shared state)."""
        request = {"names": list(cls.optimizer_names), "task": cls.task_name, "overrides": cls.overrides,
                   "batch": cls.batch, "n_initial": cls.n_initial, "imports": list(cls.fresh_process_imports)}
        code = "import sys; from bench.testing.contracts import fresh_process_main; fresh_process_main(sys.argv[1:])"
        proc = subprocess.run([sys.executable, "-c", code, json.dumps(request)], capture_output=True, text=True,
                              timeout=1800)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def test_proposals_are_valid(self, optimizer_name: str) -> None:
        task = _build_task(self.task_name)
        for batch in self.rounds(optimizer_name, 0):
            task.space.validate(batch, n=self.batch)

    def test_propose_returns_a_proposal_with_plain_info(self, optimizer_name: str) -> None:
        task = _build_task(self.task_name)
        proposal = self.build(optimizer_name, task.space).propose(self.batch, _observations(task, 0, self.n_initial))
        assert isinstance(proposal, Proposal)
        safe.dumps(list(proposal.info))  # diagnostics are plain data

    def test_proposals_respect_mask(self, optimizer_name: str) -> None:
        task = _build_task(self.task_name)
        data = _observations(task, 0, self.n_initial)
        mask = np.zeros((*task.space.shape, task.space.codebook_size), dtype=bool)
        mask[..., ::2] = True  # even codes only
        masked = task.space.with_mask(mask)
        latents = data.latents - data.latents % 2
        masked_data = Observations(masked, latents, task.evaluate(latents).scores, codebook=task.codebook(),
                                   prior=task.code_prior())
        masked.validate(self.build(optimizer_name, masked).propose(self.batch, masked_data).latents, n=self.batch)

    def test_same_seed_same_proposals(self, optimizer_name: str) -> None:
        again = two_rounds(optimizer_name, 0, self.task_name, self.overrides.get(optimizer_name), self.batch,
                           self.n_initial)
        for a, b in zip(self.rounds(optimizer_name, 0), again):
            np.testing.assert_array_equal(a, b)

    def test_different_seed_different_proposals(self, optimizer_name: str) -> None:
        assert not np.array_equal(np.concatenate(self.rounds(optimizer_name, 0)),
                                  np.concatenate(self.rounds(optimizer_name, 1)))

    def test_same_proposals_in_fresh_process(self, optimizer_name: str, fresh_process: dict[str, list[Any]]) -> None:
        first, second = self.rounds(optimizer_name, 0)
        assert fresh_process[optimizer_name] == [first.tolist(), second.tolist()]

    def test_global_rng_untouched(self, optimizer_name: str) -> None:
        import torch

        np_state, py_state = np.random.get_state(), random.getstate()
        torch_state = torch.random.get_rng_state().clone()
        two_rounds(optimizer_name, 0, self.task_name, self.overrides.get(optimizer_name), self.batch, self.n_initial)
        after = np.random.get_state()
        assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
        assert random.getstate() == py_state
        assert torch.equal(torch.random.get_rng_state(), torch_state)

    def test_state_dict_resumes_exactly(self, optimizer_name: str) -> None:
        task = _build_task(self.task_name)
        data = _observations(task, 0, self.n_initial)
        optimizer = self.build(optimizer_name, task.space)
        first = optimizer.propose(self.batch, data).latents
        state = safe.loads(safe.dumps(optimizer.state_dict()))  # through the checkpoint format
        more = grown(task, data, first)
        restored = self.build(optimizer_name, task.space)
        restored.load_state_dict(state)
        np.testing.assert_array_equal(optimizer.propose(self.batch, more).latents,
                                      restored.propose(self.batch, more).latents)

    def test_proposals_are_distinct_and_new(self, optimizer_name: str) -> None:
        task = _build_task(self.task_name)
        data = _observations(task, 0, self.n_initial)
        batch = self.build(optimizer_name, task.space).propose(self.batch, data).latents
        keys = {z.tobytes() for z in np.asarray(batch, dtype=np.int64)}
        assert len(keys) == self.batch
        assert not keys & {z.tobytes() for z in data.latents.astype(np.int64)}


class TaskContract:
    """What the harness relies on from every task: a seeded initial design, valid latents,
    evaluations of the right shape that are deterministic, and a stable signature."""

    #: registered task names to check, and parameters per name
    task_names: ClassVar[Sequence[str]] = ()
    task_params: ClassVar[dict[str, dict[str, Any]]] = {}
    n: ClassVar[int] = 6

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "task_name" in metafunc.fixturenames:
            metafunc.parametrize("task_name", list(self.task_names))

    def task(self, name: str) -> Task:
        return _build_task(name, self.task_params.get(name))

    def test_initial_design_is_seeded_and_valid(self, task_name: str) -> None:
        task = self.task(task_name)
        a, b, c = task.initial_data(0, self.n), task.initial_data(0, self.n), task.initial_data(1, self.n)
        task.space.validate(a.latents, n=self.n)
        np.testing.assert_array_equal(a.latents, b.latents)
        np.testing.assert_array_equal(a.scores, b.scores)
        assert not np.array_equal(a.latents, c.latents)
        assert np.asarray(a.scores).shape == (self.n,) and np.all(np.isfinite(a.scores))
        if a.images is not None:
            assert len(a.images) == self.n and a.images.ndim == 4
            assert float(a.images.min()) >= 0.0 and float(a.images.max()) <= 1.0

    def test_evaluate_shapes_and_determinism(self, task_name: str) -> None:
        task = self.task(task_name)
        latents = task.space.sample(self.n, np.random.default_rng(5))
        first, second = task.evaluate(latents), task.evaluate(latents)
        assert isinstance(first, Evaluation) and first.scores.shape == (self.n,)
        assert np.all(np.isfinite(first.scores))
        np.testing.assert_array_equal(first.scores, second.scores)
        assert set(first.extras) <= set(C.EXTRA_COLUMNS)
        if first.images is not None:
            assert first.images.shape[0] == self.n and first.images.dtype == np.float32
            assert float(first.images.min()) >= 0.0 and float(first.images.max()) <= 1.0

    def test_evaluate_rejects_invalid_latents(self, task_name: str) -> None:
        task = self.task(task_name)
        bad = np.full((1, *task.space.shape), task.space.codebook_size, dtype=np.int64)
        with pytest.raises(ValueError):
            task.evaluate(bad)

    def test_signature_is_stable(self, task_name: str) -> None:
        assert self.task(task_name).signature() == self.task(task_name).signature()

    def test_global_rng_untouched(self, task_name: str) -> None:
        import torch

        np_state, torch_state = np.random.get_state(), torch.random.get_rng_state().clone()
        task = self.task(task_name)
        task.evaluate(task.initial_data(2, self.n).latents)
        assert np.array_equal(np.random.get_state()[1], np_state[1])
        assert torch.equal(torch.random.get_rng_state(), torch_state)
