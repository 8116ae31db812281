"""The optimizer contract (bench.testing.OptimizerContract), checked for every registered optimizer and preset.

Adding an optimizer adds it here automatically.
"""

from __future__ import annotations

from typing import Any

from bench.core import registry
from bench.testing import OptimizerContract


class TestEveryRegisteredOptimizer(OptimizerContract):
    optimizer_names = sorted(registry.optimizers())
    # Presets whose point is a large-scale configuration run a cheap stand-in here: the contract
    # is about seeding and state, not scale.
    overrides: dict[str, dict[str, Any]] = {}
