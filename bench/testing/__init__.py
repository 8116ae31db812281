"""Test support shipped with the harness: the contract tests any optimizer or task must pass, and a
writer of synthetic run folders for testing analyses (see :mod:`bench.testing.contracts`)."""

from __future__ import annotations

from bench.testing.contracts import OptimizerContract, TaskContract

__all__ = ["OptimizerContract", "TaskContract"]
