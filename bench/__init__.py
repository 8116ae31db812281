"""Benchmark harness for black-box optimizers in the discrete latent space of a VQ-VAE."""

from __future__ import annotations

__version__ = "0.1.0"
