"""A learned autoregressive prior over code grids: a small causal transformer.

The grid is read in raster order; position t is predicted from positions < t (a start token
stands before the first). Trained by ``bench prepare`` on the codes of the VQ-VAE's own
training images, it rates how much a latent looks like the encoding of a training image, and
samples such latents: the realistic-image baseline ``prior-sample`` and the search distribution
of ``dbas``/``cbas``. About 0.1 M parameters for 8x8 positions x 256 codes (d_model 64, two
layers), stored as float16: ~0.25 MB per task.

Every random draw (initialisation, minibatches, sampling) comes from a generator seeded by the
caller; parameters are built on the meta device and initialised from that generator, so building
a prior never touches torch's global RNG. On the CPU the prior runs on one thread: its tensors
are too small to gain from more (on a busy 2-core machine two threads made a training step 25x
slower), and its figures then do not depend on the machine's thread count.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.core.prior import CodePrior
from bench.tasks.inference import batched_inference
from bench.tasks.vqvae import batch_order, load_model, save_model


@dataclass(frozen=True)
class PriorConfig:
    """Architecture of the prior: grid shape, codebook size and transformer width/depth."""

    height: int
    width: int
    codebook_size: int
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4

    @property
    def length(self) -> int:
        """Number of positions, height * width."""
        return self.height * self.width

    def to_dict(self) -> dict[str, int]:
        """Plain data for checkpoints and manifests."""
        return asdict(self)


@dataclass(frozen=True)
class PriorTraining:
    """How ``bench prepare`` trains a prior: epochs over the codes, batch size, AdamW settings."""

    epochs: float = 20.0
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.01


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    """Run the enclosed CPU work on one intra-op thread (restored afterwards)."""
    if device.type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _Block(nn.Module):
    """Pre-norm causal self-attention and a two-layer MLP, each with a residual connection."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attended.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.norm2(x))


class CodeTransformer(nn.Module):
    """Logits of every position's code given the codes before it in raster order."""

    def __init__(self, config: PriorConfig, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        with torch.device("meta"):  # initialised below from a seeded generator, not torch's global RNG
            self.embed = nn.Embedding(config.codebook_size + 1, d)  # the last row is the start token
            self.position = nn.Parameter(torch.empty(config.length, d))
            self.blocks = nn.ModuleList(_Block(d, config.n_heads) for _ in range(config.n_layers))
            self.norm = nn.LayerNorm(d)
            self.head = nn.Linear(d, config.codebook_size)
        self.to_empty(device="cpu")
        self.reset_parameters(seed)

    def reset_parameters(self, seed: int) -> None:
        """GPT-style initialisation (normal(0, 0.02) weights, zero biases, unit norms) from ``seed``."""
        gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for name, param in self.named_parameters():
                if name.endswith("bias"):
                    param.zero_()
                elif ".norm" in f".{name}" and name.endswith("weight"):
                    param.fill_(1.0)
                else:
                    param.normal_(0.0, 0.02, generator=gen)

    def forward(self, codes: Tensor) -> Tensor:
        """(batch, t) codes of the first t positions -> (batch, t, codebook_size) logits of positions 0..t-1."""
        start = torch.full((len(codes), 1), self.config.codebook_size, dtype=torch.long, device=codes.device)
        tokens = torch.cat([start, codes[:, :-1]], dim=1)
        x = self.embed(tokens) + self.position[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def _log_likelihood(model: CodeTransformer, flat: Tensor) -> Tensor:
    """Per-row log-likelihood (batch,) of flattened codes."""
    logits = model(flat).float()
    return torch.log_softmax(logits, dim=-1).gather(2, flat.unsqueeze(2)).squeeze(2).sum(dim=1)


def _train_steps(model: CodeTransformer, flat: np.ndarray, weights: np.ndarray | None, steps: int,
                 training: PriorTraining, seed: int, device: torch.device, progress: bool = False,
                 desc: str = "prior") -> float:
    """``steps`` AdamW steps of maximum likelihood on minibatches of ``flat`` (N, L); mean NLL per code
    of the last epoch's worth of steps. Minibatches: reshuffled epochs, or draws ∝ ``weights``."""
    from tqdm import tqdm

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x9A1]))
    batch = training.batch_size if weights is not None else min(training.batch_size, len(flat))
    order = batch_order(len(flat), steps, batch, weights, rng)
    optimizer = torch.optim.AdamW(model.parameters(), lr=training.lr, weight_decay=training.weight_decay)
    model.to(device).train()
    recent: collections.deque[float] = collections.deque(maxlen=max(1, math.ceil(len(flat) / batch)))
    with _one_cpu_thread(device):
        for step in tqdm(range(steps), desc=desc, unit="step", disable=not progress, leave=False):
            codes = torch.from_numpy(flat[order[step]]).to(device)
            loss = -_log_likelihood(model, codes).mean() / flat.shape[1]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            recent.append(float(loss.detach()))
    model.eval()
    return float(np.mean(recent)) if recent else float("nan")


class TransformerCodePrior(CodePrior):
    """:class:`~bench.core.prior.CodePrior` backed by a :class:`CodeTransformer` (immutable: refits copy it)."""

    def __init__(self, model: CodeTransformer, device: torch.device | None = None,
                 training: PriorTraining = PriorTraining()) -> None:
        self.device = device or torch.device("cpu")
        self.model = model.to(self.device).eval()
        self.training = training

    @property
    def config(self) -> PriorConfig:
        """The architecture."""
        return self.model.config

    def _flat(self, latents: np.ndarray) -> np.ndarray:
        c = self.config
        latents = np.asarray(latents, dtype=np.int64)
        if latents.ndim != 3 or latents.shape[1:] != (c.height, c.width):
            raise ValueError(f"prior: latents must have shape (n, {c.height}, {c.width}), got {latents.shape}")
        if len(latents) and (latents.min() < 0 or latents.max() >= c.codebook_size):
            raise ValueError(f"prior: codes must lie in [0, {c.codebook_size})")
        return latents.reshape(len(latents), -1)

    def log_likelihood(self, latents: np.ndarray) -> np.ndarray:
        flat = self._flat(latents)
        with _one_cpu_thread(self.device):
            return batched_inference(self.model, lambda x: _log_likelihood(self.model, x), flat,
                                     self.device).astype(np.float64)

    def sample(self, n: int, seed: int, allowed: np.ndarray | None = None) -> np.ndarray:
        c = self.config
        gen = torch.Generator().manual_seed(int(seed))  # CPU generator: the same draws on any device
        blocked = None if allowed is None else torch.from_numpy(~np.asarray(allowed, bool).reshape(c.length, -1))
        codes = torch.zeros((int(n), c.length), dtype=torch.long)
        with torch.inference_mode(), _one_cpu_thread(self.device):
            for t in range(c.length):
                # the model reads positions < t only (causal), so position t's logits need codes[:, :t+1]
                logits = self.model(codes[:, : t + 1].to(self.device))[:, t].float().cpu()
                if blocked is not None:
                    logits[:, blocked[t]] = -math.inf
                codes[:, t] = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=gen).squeeze(1)
        return codes.numpy().reshape(int(n), c.height, c.width)

    def fitted(self, latents: np.ndarray, weights: np.ndarray, seed: int, steps: int) -> TransformerCodePrior:
        model = copy.deepcopy(self.model)
        _train_steps(model, self._flat(latents), np.asarray(weights, dtype=np.float64), int(steps), self.training,
                     seed, self.device)
        return TransformerCodePrior(model, self.device, self.training)

    def parameters(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().copy() for k, v in self.model.state_dict().items()}

    def with_parameters(self, parameters: dict[str, np.ndarray]) -> TransformerCodePrior:
        model = copy.deepcopy(self.model)
        model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in parameters.items()})
        return TransformerCodePrior(model, self.device, self.training)


def train_prior(latents: np.ndarray, codebook_size: int, seed: int, *, training: PriorTraining = PriorTraining(),
                device: torch.device | None = None, progress: bool = False,
                desc: str = "prior") -> tuple[TransformerCodePrior, dict[str, Any]]:
    """A prior trained from scratch on ``latents`` (n, height, width); and its training figures."""
    latents = np.asarray(latents, dtype=np.int64)
    if latents.ndim != 3 or len(latents) == 0:
        raise ValueError(f"train_prior needs latents of shape (n >= 1, height, width), got {latents.shape}")
    config = PriorConfig(latents.shape[1], latents.shape[2], int(codebook_size))
    model = CodeTransformer(config, seed=int(seed))
    prior = TransformerCodePrior(model, device, training)
    flat = prior._flat(latents)
    steps = max(1, math.ceil(training.epochs * len(flat) / training.batch_size))
    start = time.perf_counter()
    nll = _train_steps(model, flat, None, steps, training, seed, prior.device, progress, desc)
    return prior, {"steps": steps, "n_latents": len(flat), "train_nll_per_code": nll,
                   "seconds": time.perf_counter() - start, "training": asdict(training), "config": config.to_dict()}


def nll_per_code(prior: CodePrior, latents: np.ndarray) -> float:
    """Mean negative log-likelihood per position (nats) of ``latents`` (log K for a uniform prior)."""
    latents = np.asarray(latents)
    return float(-prior.log_likelihood(latents).mean() / (latents.shape[1] * latents.shape[2]))


def save_prior(prior: TransformerCodePrior, path: Path) -> None:
    """Config and float16 weights (a prior's likelihoods barely move at half precision)."""
    save_model(prior.model, prior.config.to_dict(), path, half=True)


def load_prior(path: Path, device: torch.device | None = None) -> TransformerCodePrior:
    """A prior saved by :func:`save_prior` (weights back in float32)."""
    model = load_model(path, lambda config: CodeTransformer(PriorConfig(**config)), "code prior",
                       "rerun `bench prepare --retrain` for its task")
    return TransformerCodePrior(model, device)
