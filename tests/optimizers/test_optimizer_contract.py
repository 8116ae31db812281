"""The optimizer contract (bench.testing.OptimizerContract), checked for every registered optimizer and preset.

Adding an optimizer adds it here automatically.
"""

from __future__ import annotations

from typing import Any

from bench.core import registry
from bench.testing import OptimizerContract


class TestEveryRegisteredOptimizer(OptimizerContract):
    # The project's own plug-ins only: test modules register misbehaving optimizers (tests/plugins.py)
    # that must not be held to the contract (one of them never returns).
    optimizer_names = sorted(name for name, spec in registry.optimizers().items()
                             if spec.target.startswith("bench.optimizers."))
    # closed-form with a learned code prior (and its code vectors): every optimizer runs here,
    # prior-based ones included
    task_name = "closed-form/prior"
    # Presets whose point is a large-scale configuration run a cheap stand-in here: the contract
    # is about seeding and state, not scale.
    overrides: dict[str, dict[str, Any]] = {
        # the GP's acquisition search costs seconds per ask on 16 positions; its GP path is checked
        # on a small grid in tests/optimizers/test_library_optimizers.py
        "optuna-gp": {"n_startup_trials": 100},
        "botorch-cat": {"n_neighbours": 16, "n_steps": 3, "fit_maxiter": 10},
    }
