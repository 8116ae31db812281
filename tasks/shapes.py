"""Tripp et al.'s (NeurIPS 2020) 2D-shapes task on a VQ-VAE latent grid.

Images are 64x64 binary pictures of one filled square, side 1-20 px, anywhere in the frame;
the VQ-VAE trains on them. The objective is the number of shaded pixels (value > 0.5) of the
decoded image: at most 4,096, at most 400 in the training data. Literature reference (2-D VAE,
500 queries): 464 ± 3 without retraining, about 1,400 with k = 1e-3, r = 5 (Tripp et al. 2020).

The scorer is closed-form, so the task trains nothing but the VQ-VAE. Its VQ-VAE keeps the
paper's 8x8 grid and 256 codes but uses narrower convolutions (16/32/64 channels, 32-dim codes,
float16 weights: 0.47 MB) and Adam lr 2e-3 for 3 epochs of 6,000 squares, so that the shipped
artifacts stay well under 1.5 MB and ``bench prepare --task shapes --retrain`` takes about two
CPU-minutes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.core.registry import register_task
from bench.tasks.image_task import TrainingSettings, VQImageTask
from bench.tasks.vqvae import VQVAEConfig

IMAGE_SIZE = 64
#: a pixel is shaded when its decoded value exceeds this
SHADE_THRESHOLD = 0.5
#: square sides of the training data (Tripp et al.) and of the "reference-high" set
TRAIN_SIDES = (1, 20)
HIGH_SIDES = (21, 40)


def square_images(n: int, rng: np.random.Generator, sides: tuple[int, int] = TRAIN_SIDES,
                  size: int = IMAGE_SIZE) -> np.ndarray:
    """``n`` float32 images (n, 1, size, size): one filled square per image, side uniform in ``sides``
    (inclusive), position uniform among those that keep it inside the frame."""
    side = rng.integers(sides[0], sides[1] + 1, size=n)
    top = (rng.random(n) * (size - side + 1)).astype(np.int64)
    left = (rng.random(n) * (size - side + 1)).astype(np.int64)
    pos = np.arange(size)
    rows = (pos[None, :] >= top[:, None]) & (pos[None, :] < (top + side)[:, None])
    cols = (pos[None, :] >= left[:, None]) & (pos[None, :] < (left + side)[:, None])
    return (rows[:, :, None] & cols[:, None, :]).astype(np.float32)[:, None]


def shaded_pixels(images: np.ndarray) -> np.ndarray:
    """Number of pixels above :data:`SHADE_THRESHOLD` per image (float64, (n,))."""
    images = np.asarray(images)
    return (images > SHADE_THRESHOLD).reshape(len(images), -1).sum(axis=1).astype(np.float64)


class ShapeFeatures(nn.Module):
    """Closed-form features of 64x64 one-channel images for "task-feature FID" (no weights to train).

    97 numbers per image: the shaded mass on an 8x8 grid of cells (64), the row and column
    profiles in 16 bins each (32), and the total shaded fraction (1). They tell clean squares
    of a given size range from blobs, stripes or scattered pixels.
    """

    def forward(self, images: Tensor) -> Tensor:
        x = images[:, :1].float()
        cells = F.avg_pool2d(x, 8).flatten(1)
        rows = F.avg_pool1d(x.mean(dim=3), 4).flatten(1)
        cols = F.avg_pool1d(x.mean(dim=2), 4).flatten(1)
        return torch.cat([cells, rows, cols, x.mean(dim=(1, 2, 3))[:, None]], dim=1)


@register_task("shapes")
class ShapesTask(VQImageTask):
    """Tripp et al.'s 2D shapes: maximise the shaded pixels of a decoded 64x64 binary image (max 4096)."""

    vqvae_config: ClassVar[VQVAEConfig] = VQVAEConfig(in_channels=1, channels=(16, 32, 64), res_channels=16,
                                                     code_dim=32, codebook_size=256, lr=2e-3)
    training: ClassVar[TrainingSettings] = TrainingSettings(epochs=3.0, n_images=6000, n_test_images=1000)
    quick_training: ClassVar[TrainingSettings] = TrainingSettings(epochs=1.0, n_images=512, n_test_images=64)
    half_precision_checkpoint: ClassVar[bool] = True
    min_psnr_db: ClassVar[float] = 20.0
    #: the known optimum of the objective: every pixel shaded
    optimum_value: ClassVar[float] = float(IMAGE_SIZE * IMAGE_SIZE)

    def training_images(self, split: str, n: int, seed: int) -> np.ndarray:
        """Squares of side 1-20 for every split but "reference-high" (sides 21-40, above the training max)."""
        rng = np.random.default_rng(seed)
        return square_images(n, rng, HIGH_SIDES if split == "reference-high" else TRAIN_SIDES)

    def train_scorers(self, artifact_dir: Path, device: torch.device, progress: bool, quick: bool) -> dict[str, Any]:
        """Nothing to train: the scorer is the closed-form pixel count."""
        return {"scorer": f"closed-form count of pixels > {SHADE_THRESHOLD}", "max": self.optimum_value,
                "training_max": float(TRAIN_SIDES[1] ** 2)}

    def load_scorers(self, artifact_dir: Path, device: torch.device) -> None:
        """Nothing to load (closed-form scorer)."""

    def score_images(self, images: np.ndarray) -> np.ndarray:
        """Shaded pixels of each image."""
        return shaded_pixels(images)

    def score_tensor(self, images: Tensor) -> Tensor:
        """Shaded pixels of an image tensor, on its device."""
        return (images > SHADE_THRESHOLD).flatten(1).sum(1)

    def feature_network(self) -> nn.Module:
        """:class:`ShapeFeatures` (closed-form, independent of the VQ-VAE and the scorer)."""
        return ShapeFeatures().to(self.device)

    def artifact_config(self) -> dict[str, Any]:
        return {"train_sides": list(TRAIN_SIDES), "high_sides": list(HIGH_SIDES), "image_size": IMAGE_SIZE}
