"""Small CNNs trained on the task's own data: smile regressors and a task-feature network.

* :class:`SmileScorer` is the black-box objective: a strided CNN regressing the smile degree,
  bounded to [0, 5] by a scaled sigmoid (the paper's scorer returns an expected degree in
  [0, 5] too, so queries cannot score outside the label range).
* :class:`HeldoutSmileScorer` is the independent check: another architecture (it sees the image
  at half resolution, max-pools and ends in an MLP), another seed and another data split, so a
  report that games the first scorer with pixel patterns shows up as a gap between the two.
* :class:`FeatureNetwork` is trained to predict every generator factor (nuisances and smile);
  its 64-d penultimate layer is the feature space of the task-feature FID/KID.

All three expose ``regress(images) -> (N, k)`` for training by :func:`train_regressor`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from bench.tasks.inference import batched_inference

SMILE_MAX = 5.0


class _SmileRegressor(nn.Module):
    """A ``body`` then a ``head`` whose single output is squashed to [0, 5] (subclasses build both)."""

    body: nn.Module
    head: nn.Module

    def regress(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 1) smile degree in [0, 5]."""
        return SMILE_MAX * torch.sigmoid(self.head(self.body(images - 0.5)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N,) smile degree in [0, 5]."""
        return self.regress(images)[:, 0]


class SmileScorer(_SmileRegressor):
    """Smile degree in [0, 5] of 64x64 RGB images in [0, 1] (strided convs, global average pool)."""

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 4, stride=2, padding=1), nn.ReLU(),  # 32x32
            nn.Conv2d(w, w * 2, 4, stride=2, padding=1), nn.ReLU(),  # 16x16
            nn.Conv2d(w * 2, w * 3, 4, stride=2, padding=1), nn.ReLU(),  # 8x8
            nn.Conv2d(w * 3, w * 3, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(w * 3, 1)


class HeldoutSmileScorer(_SmileRegressor):
    """Independent smile regressor: half-resolution input, 5x5 convs with max-pooling, MLP head."""

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.AvgPool2d(2),  # 32x32
            nn.Conv2d(3, w, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),  # 16x16
            nn.Conv2d(w, w * 2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),  # 8x8
            nn.Conv2d(w * 2, w * 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 4x4
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Linear(w * 3 * 16, 64), nn.ReLU(), nn.Linear(64, 1))


class FeatureNetwork(nn.Module):
    """64-d task features of 64x64 images; trained through a linear head predicting the factors."""

    def __init__(self, n_targets: int, feature_dim: int = 64, width: int = 24) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 4, stride=2, padding=1), nn.ReLU(),  # 32x32
            nn.Conv2d(w, w * 2, 4, stride=2, padding=1), nn.ReLU(),  # 16x16
            nn.Conv2d(w * 2, w * 4, 4, stride=2, padding=1), nn.ReLU(),  # 8x8
            nn.Conv2d(w * 4, w * 4, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(),  # keep a coarse layout: where things are matters
            nn.Linear(w * 4 * 4, feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, n_targets)

    def regress(self, images: torch.Tensor) -> torch.Tensor:
        """(N, n_targets) standardised factor predictions."""
        return self.head(self.body(images - 0.5))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, feature_dim) features."""
        return self.body(images - 0.5)


def build_network(cls: type[nn.Module], seed: int, **kwargs: Any) -> nn.Module:
    """``cls(**kwargs)`` with weights drawn from a generator seeded with ``seed``.

    The module is built on the meta device first: constructing it normally would draw its
    initial weights from (and advance) the global torch RNG.
    """
    with torch.device("meta"):
        network = cls(**kwargs)
    network.to_empty(device="cpu")
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):  # PyTorch's default initialisation scheme
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=gen)
                bound = 1 / math.sqrt(module.weight[0].numel())
                nn.init.uniform_(module.bias, -bound, bound, generator=gen)
    return network


def _augment(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Blur three quarters of the batch (light, medium, or a 4x down/up-sampling) and add noise.

    The scorers must read the smile from coarse shapes, which is what survives a VQ-VAE round
    trip, not from pixel-exact edges: a scorer trained on sharp images only scored blurry
    reconstructions near 1 whatever their smile (survival corr 0.22).
    """
    n, c, h, w = images.shape
    kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=images.device)
    kernel = (kernel[:, None] * kernel[None, :]) / 256.0
    medium = F.conv2d(F.pad(images, (2, 2, 2, 2), mode="replicate"), kernel.expand(c, 1, 5, 5), groups=c)
    light = 0.5 * (images + medium)
    coarse = F.interpolate(F.avg_pool2d(images, 4), size=(h, w), mode="bilinear", align_corners=False)
    kind = torch.randint(0, 4, (n, 1, 1, 1), generator=gen).to(images.device)
    out = torch.where(kind == 1, light, images)
    out = torch.where(kind == 2, medium, out)
    out = torch.where(kind == 3, coarse, out)
    sigma = torch.rand(n, 1, 1, 1, generator=gen).to(images.device) * 0.04
    noise = torch.randn(images.shape, generator=gen).to(images.device)
    return (out + sigma * noise).clamp(0.0, 1.0)


def train_regressor(model: nn.Module, images: np.ndarray, targets: np.ndarray, *, epochs: float, seed: int,
                    device: torch.device, batch_size: int = 32, lr: float = 2e-3, augment: bool = True,
                    progress: bool = True, desc: str = "train") -> dict[str, Any]:
    """Fit ``model.regress`` to ``targets`` ((N,) or (N, k)) by MSE with Adam and a cosine schedule.

    Shuffling and augmentation draw from a ``torch.Generator`` seeded with ``seed``.
    Returns ``{"loss": final epoch MSE, "seconds": wall time, "samples": images seen}``.
    """
    gen = torch.Generator().manual_seed(int(seed))
    x_all = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    y_all = torch.from_numpy(np.asarray(targets, dtype=np.float32).reshape(len(images), -1))
    n = len(x_all)
    steps = max(1, math.ceil(epochs * n / batch_size))
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    started = time.perf_counter()
    order = torch.randperm(n, generator=gen)
    cursor, running, count = 0, 0.0, 0
    for _ in tqdm(range(steps), desc=desc, unit="step", disable=not progress, leave=False):
        if cursor + batch_size > n:
            order, cursor = torch.randperm(n, generator=gen), 0
        idx = order[cursor:cursor + batch_size]
        cursor += batch_size
        x, y = x_all[idx].to(device), y_all[idx].to(device)
        if augment:
            x = _augment(x, gen)
        loss = F.mse_loss(model.regress(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running, count = running * 0.98 + float(loss.detach()) * 0.02, count + 1
    model.eval()
    return {"loss": running / (1 - 0.98 ** count), "seconds": time.perf_counter() - started,
            "samples": steps * batch_size}


def predict(model: nn.Module, images: np.ndarray, device: torch.device, batch_size: int = 256) -> np.ndarray:
    """``model(images)`` as a float64 numpy array, batched under ``torch.inference_mode``."""
    images = np.asarray(images, dtype=np.float32)
    return batched_inference(model, lambda x: model(x).double(), images, device, batch_size)


def r2_score(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Coefficient of determination of ``predicted`` against ``truth``."""
    truth, predicted = np.asarray(truth, np.float64), np.asarray(predicted, np.float64)
    return float(1.0 - ((truth - predicted) ** 2).sum() / max(((truth - truth.mean()) ** 2).sum(), 1e-12))


def save_half(model: nn.Module, path: Path) -> None:
    """Save ``model``'s weights as float16 (halves the repo footprint; scores move by ~1e-3)."""
    state = {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()
             for k, v in model.state_dict().items()}
    tmp = Path(path).with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_half(cls: type[nn.Module], path: Path, device: torch.device, **kwargs: Any) -> nn.Module:
    """A ``cls(**kwargs)`` holding the weights saved by :func:`save_half` (as float32), in eval mode."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    with torch.device("meta"):
        model = cls(**kwargs)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, assign=True)
    return model.to(device).eval()
