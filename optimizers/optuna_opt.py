"""Optuna's samplers through the ask-and-tell interface: ``optuna-tpe`` (TPESampler) and ``optuna-gp`` (GPSampler).

Every grid position with more than one category is one ``CategoricalDistribution`` named
``p<index>`` whose choices are the position's allowed codes plus any code the data use there.
Each ``propose`` builds an in-memory study (direction "maximize") with a sampler seeded from
(seed, call count), adds every observation as a completed trial (``study.add_trial``: the
initial design and every later point, in evaluation order), then calls ``study.ask`` ``n``
times; the asked trials stay RUNNING, which TPE's constant liar (on by default in Optuna 5)
uses to spread a batch. Rebuilding from the data (see
:class:`bench.optimizers._common.ReplayedLibraryOptimizer`) is what Optuna itself does at
every ask: both samplers read the study's trials and keep no model between asks, so the
replayed study gives the library its full information.

TPE presets: the bare ``optuna-tpe`` uses Optuna 5's default (multivariate TPE for one
objective); ``optuna-tpe/independent`` is the per-parameter TPE (Optuna 4's default),
``optuna-tpe/multivariate`` states the default explicitly and ``optuna-tpe/group`` adds
``group=True`` (independent TPEs over groups of parameters that co-occur; with a fixed search
space there is one group, so it behaves like multivariate TPE).

GPSampler handles categoricals with a Hamming-type distance inside its Matérn kernel (no one-hot),
and optimises its acquisition over categoricals by local search. That search is what makes it
slow on the VQ grid: one proposal at N = 200 on 64 positions x 256 codes took 272 CPU s
(``bench perf propose --optimizer optuna-gp --sizes 200``), so ``optuna-gp`` suits small grids.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from bench.core.optimizer import Observations
from bench.core.registry import register_optimizer
from bench.core.space import CodeGrid
from bench.optimizers._common import PositionCategories, ReplayedLibraryOptimizer


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Silence Optuna's INFO lines ("A new study created ...", one per call) for the block only."""
    logger = logging.getLogger("optuna")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


class OptunaOptimizer(ReplayedLibraryOptimizer):
    """An Optuna sampler over one categorical per position, replayed from the data at every call."""

    solver = "optuna"

    def __init__(self, space: CodeGrid, seed: int, n_startup_trials: int = 10) -> None:
        super().__init__(space, seed)
        self.n_startup_trials = int(n_startup_trials)

    @abstractmethod
    def sampler(self, seed: int) -> Any:
        """The seeded Optuna sampler of one call."""

    def ask_free(self, n: int, data: Observations, positions: PositionCategories, seed: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        """Add every observation to a fresh study, then ask ``n`` trials."""
        import optuna

        distributions = {f"p{p}": optuna.distributions.CategoricalDistribution([int(c) for c in codes])
                         for p, codes in zip(positions.free, positions.categories)}
        with _quiet_optuna():
            study = optuna.create_study(direction="maximize", sampler=self.sampler(seed),
                                        storage=optuna.storages.InMemoryStorage())
        names = list(distributions)
        for z, score in zip(data.flat[:, positions.free].tolist(), data.scores.tolist()):
            study.add_trial(optuna.trial.create_trial(params=dict(zip(names, z)), distributions=distributions,
                                                      value=float(score)))
        asked = np.empty((n, len(names)), dtype=np.int64)
        for row in range(n):
            trial = study.ask(distributions)
            asked[row] = [trial.params[name] for name in names]
        return asked, {"n_trials_told": len(data)}


@register_optimizer("optuna-tpe", package="optuna",
                    presets={"independent": {"multivariate": False}, "multivariate": {"multivariate": True},
                             "group": {"multivariate": True, "group": True}})
class OptunaTPE(OptunaOptimizer):
    """Optuna's TPESampler (ask-and-tell, in-memory study), one categorical per grid position."""

    solver = "optuna-tpe"

    def __init__(self, space: CodeGrid, seed: int, multivariate: bool | None = None, group: bool = False,
                 constant_liar: bool = True, n_startup_trials: int = 10, n_ei_candidates: int = 24) -> None:
        super().__init__(space, seed, n_startup_trials)
        self.multivariate = multivariate
        self.group = bool(group)
        self.constant_liar = bool(constant_liar)
        self.n_ei_candidates = int(n_ei_candidates)

    def sampler(self, seed: int) -> Any:
        """TPESampler with this optimizer's settings, seeded ``seed``."""
        import optuna

        return optuna.samplers.TPESampler(seed=seed, multivariate=self.multivariate, group=self.group,
                                          constant_liar=self.constant_liar, n_startup_trials=self.n_startup_trials,
                                          n_ei_candidates=self.n_ei_candidates)


@register_optimizer("optuna-gp", package="optuna")
class OptunaGP(OptunaOptimizer):
    """Optuna's GPSampler (Matérn kernel with a categorical distance, logEI), one categorical per grid position."""

    solver = "optuna-gp"

    def sampler(self, seed: int) -> Any:
        """GPSampler seeded ``seed`` (its startup phase samples uniformly)."""
        import optuna

        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=self.n_startup_trials,
                                         warn_independent_sampling=False)
