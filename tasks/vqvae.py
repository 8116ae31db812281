"""A VQ-VAE (van den Oord et al. 2017) as in the "Happy People" paper, with an EMA codebook.

Encoder: ``len(channels)`` stride-2 4x4 convolutions (64/128/256 by default: 64 px -> 8x8), a
3x3 convolution, residual blocks and a 1x1 convolution to ``code_dim``; the decoder mirrors it.
The codebook is updated by exponential moving averages (no codebook gradient) and codes whose
usage falls below ``dead_code_threshold`` are restarted on random encoder outputs of the
current batch, which keeps codebook usage high (without restarts the codebook collapses to a
few codes).

Every random draw (weight init, batch order, restarts) comes from generators seeded explicitly;
the global torch / numpy RNGs are never used.
"""

from __future__ import annotations

import io
import logging
import math
import pickle
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.core.errors import UserError
from bench.tasks.inference import batched_inference

M = TypeVar("M", bound=nn.Module)

log = logging.getLogger(__name__)

#: memory format of image batches fed to convolutions: oneDNN (CPU) and cuDNN run NHWC up to 2x
#: faster than NCHW here, and the decoder already produces NHWC-strided images
CHANNELS_LAST = torch.channels_last


@dataclass(frozen=True)
class VQVAEConfig:
    """Architecture and optimisation settings of a :class:`VQVAE`.

    ``grid`` must equal ``image_size / 2**len(channels)`` (one stride-2 conv per entry of
    ``channels``). ``dead_code_threshold`` is the EMA usage (expected assignments per batch)
    under which a code is restarted.
    """

    in_channels: int = 3
    image_size: int = 64
    grid: int = 8
    codebook_size: int = 256
    code_dim: int = 64
    channels: tuple[int, ...] = (64, 128, 256)
    n_res_blocks: int = 2
    res_channels: int = 64
    beta: float = 0.25
    ema_decay: float = 0.99
    lr: float = 1e-3
    dead_code_threshold: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if self.image_size != self.grid * 2 ** len(self.channels):
            raise ValueError(f"VQVAEConfig: image_size {self.image_size} != grid {self.grid} * 2**{len(self.channels)} "
                             f"(one stride-2 conv per entry of channels={self.channels})")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable mapping."""
        out = asdict(self)
        out["channels"] = list(self.channels)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VQVAEConfig:
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        valid = {f.name for f in fields(cls)}
        unknown = set(data) - valid
        if unknown:
            raise ValueError(f"unknown VQVAEConfig keys: {sorted(unknown)}")
        return cls(**{k: tuple(v) if k == "channels" else v for k, v in data.items()})


class ResBlock(nn.Module):
    """x + conv1x1(relu(conv3x3(relu(x)))), as in the original VQ-VAE."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.conv3 = nn.Conv2d(channels, hidden, 3, padding=1)
        self.conv1 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv1(F.relu(self.conv3(F.relu(x))))


class EMAQuantizer(nn.Module):
    """Nearest-neighbour codebook with EMA updates and dead-code restarts."""

    def __init__(self, codebook_size: int, code_dim: int, decay: float, dead_code_threshold: float,
                 eps: float = 1e-5) -> None:
        super().__init__()
        self.decay = decay
        self.eps = eps
        self.dead_code_threshold = dead_code_threshold
        self.register_buffer("embed", torch.zeros(codebook_size, code_dim))
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("embed_avg", torch.zeros(codebook_size, code_dim))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def nearest(self, flat: Tensor) -> Tensor:
        """Index of the nearest code for each row of ``flat`` (M, D)."""
        dist = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embed.t() + self.embed.pow(2).sum(1)[None, :])
        return dist.argmin(1)

    def _random_rows(self, flat: Tensor, n: int, generator: torch.Generator) -> Tensor:
        # distinct rows when the batch has enough of them
        if n <= flat.shape[0]:
            idx = torch.randperm(flat.shape[0], generator=generator)[:n]
        else:
            idx = torch.randint(0, flat.shape[0], (n,), generator=generator)
        return flat[idx.to(flat.device)]

    def _weighted_rows(self, flat: Tensor, weight: Tensor, n: int, generator: torch.Generator) -> Tensor:
        weight = weight.detach().double().cpu().clamp_min(0)
        if int((weight > 0).sum()) < n:  # too few badly represented vectors: uniform draws
            return self._random_rows(flat, n, generator)
        idx = torch.multinomial(weight, n, replacement=False, generator=generator)
        return flat[idx.to(flat.device)]

    @torch.no_grad()
    def update(self, flat: Tensor, codes: Tensor, generator: torch.Generator) -> int:
        """EMA update of the codebook from one batch; returns the number of restarted codes."""
        k = self.embed.shape[0]
        old_embed = self.embed.clone()
        onehot = F.one_hot(codes, k).type(flat.dtype)
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(onehot.t() @ flat, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + k * self.eps) * n  # Laplace smoothing
        self.embed.copy_(self.embed_avg / smoothed[:, None])
        dead = self.cluster_size < self.dead_code_threshold
        n_dead = int(dead.sum())
        if n_dead:
            # Restart on batch vectors drawn with probability ∝ their quantisation error (as in
            # k-means++): well-represented vectors (e.g. a plain background that fills most of
            # the grid) are not picked again, the badly represented ones get their own code.
            error = (flat - old_embed[codes]).pow(2).sum(1)
            fresh = self._weighted_rows(flat, error, n_dead, generator)
            start = 2.0 * self.dead_code_threshold  # survives ~70 unused steps at decay 0.99
            self.embed[dead] = fresh
            self.embed_avg[dead] = fresh * start
            self.cluster_size[dead] = start
        return n_dead

    @torch.no_grad()
    def initialise(self, flat: Tensor, generator: torch.Generator) -> None:
        """Codebook = random encoder outputs of the first batch (a far better start than noise)."""
        # Usage starts at the restart threshold: codes that win nothing in the first step are
        # restarted on badly represented vectors right away.
        rows = self._random_rows(flat, self.embed.shape[0], generator)
        self.embed.copy_(rows)
        self.embed_avg.copy_(rows * self.dead_code_threshold)
        self.cluster_size.fill_(self.dead_code_threshold)
        self.initialized.fill_(True)


class VQVAE(nn.Module):
    """The VQ-VAE: ``encode`` images in [0, 1] to a code grid, ``decode`` a code grid to images."""

    def __init__(self, config: VQVAEConfig = VQVAEConfig(), seed: int = 0) -> None:
        super().__init__()
        self.config = config
        c = config
        top = c.channels[-1]
        # Build on the meta device, then initialise from our own generator: nn.Module
        # constructors would otherwise draw from (and advance) the global RNG.
        with torch.device("meta"):
            enc: list[nn.Module] = []
            in_ch = c.in_channels
            for out_ch in c.channels:
                enc += [nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1), nn.ReLU()]
                in_ch = out_ch
            enc += [nn.Conv2d(top, top, 3, padding=1)]
            enc += [ResBlock(top, c.res_channels) for _ in range(c.n_res_blocks)]
            enc += [nn.ReLU(), nn.Conv2d(top, c.code_dim, 1)]
            self.encoder = nn.Sequential(*enc)
            dec: list[nn.Module] = [nn.Conv2d(c.code_dim, top, 1), nn.Conv2d(top, top, 3, padding=1)]
            dec += [ResBlock(top, c.res_channels) for _ in range(c.n_res_blocks)]
            dec += [nn.ReLU()]
            outs = list(reversed(c.channels[:-1])) + [c.in_channels]
            in_ch = top
            for i, out_ch in enumerate(outs):
                dec += [nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1)]
                if i < len(outs) - 1:
                    dec += [nn.ReLU()]
                in_ch = out_ch
            self.decoder = nn.Sequential(*dec)
            self.quantizer = EMAQuantizer(c.codebook_size, c.code_dim, c.ema_decay, c.dead_code_threshold)
        self.to_empty(device="cpu")
        self.reset_parameters(seed)

    def reset_parameters(self, seed: int) -> None:
        """PyTorch's default conv initialisation, drawn from a generator seeded with ``seed``."""
        gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                    nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=gen)
                    fan_in = module.weight[0].numel() if isinstance(module, nn.Conv2d) else \
                        module.weight.shape[0] * module.weight[0, 0].numel()
                    bound = 1 / math.sqrt(fan_in)
                    nn.init.uniform_(module.bias, -bound, bound, generator=gen)
            for name in ("embed", "cluster_size", "embed_avg", "initialized"):
                getattr(self.quantizer, name).zero_()

    @property
    def grid(self) -> int:
        """Side of the code grid."""
        return self.config.grid

    def _encode_continuous(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def _flat(self, z: Tensor) -> Tensor:
        return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])

    def encode(self, x: Tensor) -> Tensor:
        """Images (N, C, S, S) in [0, 1] -> codes (N, grid, grid), int64."""
        z = self._encode_continuous(x)
        codes = self.quantizer.nearest(self._flat(z))
        return codes.view(z.shape[0], z.shape[2], z.shape[3])

    def decode(self, codes: Tensor) -> Tensor:
        """Codes (N, grid, grid) -> images (N, C, S, S) in [0, 1]."""
        zq = self.quantizer.embed[codes].permute(0, 3, 1, 2)
        return torch.sigmoid(self.decoder(zq))

    @torch.no_grad()
    def _initialise_output_bias(self, x: Tensor) -> None:
        # Start the decoder at the data's mean colour (logit), not at 0.5 grey: sparse images
        # (shapes) otherwise spend their first hundreds of steps learning the background.
        last = self.decoder[-1]
        mean = x.mean(dim=(0, 2, 3)).clamp(0.01, 0.99)
        last.bias.copy_(torch.log(mean / (1 - mean)))

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Reconstruction and losses; in training mode also updates the codebook (needs ``generator``).

        Returns ``recon``, ``codes``, ``loss`` (reconstruction MSE + beta * commitment),
        ``recon_mse``, ``commitment`` and ``restarts`` (codes restarted in this step).
        """
        z = self._encode_continuous(x)
        flat = self._flat(z)
        restarts = 0
        if self.training:
            if generator is None:
                raise ValueError("VQVAE.forward in training mode needs a torch.Generator for codebook restarts")
            if not bool(self.quantizer.initialized):
                self.quantizer.initialise(flat.detach(), generator)
                self._initialise_output_bias(x)
        codes = self.quantizer.nearest(flat.detach())
        if self.training:
            restarts = self.quantizer.update(flat.detach(), codes, generator)
        quant = self.quantizer.embed[codes].view(z.shape[0], z.shape[2], z.shape[3], -1).permute(0, 3, 1, 2)
        commitment = F.mse_loss(z, quant.detach())
        z_st = z + (quant - z).detach()  # straight-through estimator
        recon = torch.sigmoid(self.decoder(z_st))
        recon_mse = F.mse_loss(recon, x)
        return {"recon": recon, "codes": codes.view(z.shape[0], z.shape[2], z.shape[3]),
                "loss": recon_mse + self.config.beta * commitment, "recon_mse": recon_mse,
                "commitment": commitment, "restarts": torch.tensor(restarts)}


# --- training -------------------------------------------------------------------------------


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of images in [0, 1]."""
    return float(10.0 * math.log10(1.0 / max(mse, 1e-12)))


def code_statistics(codes: np.ndarray, codebook_size: int) -> dict[str, float]:
    """Codebook usage (distinct codes / K) and perplexity (exp entropy of the code histogram)."""
    counts = np.bincount(np.asarray(codes).ravel(), minlength=codebook_size).astype(np.float64)
    p = counts / max(counts.sum(), 1.0)
    nz = p[p > 0]
    return {"codebook_usage": float((counts > 0).sum() / codebook_size),
            "codes_used": int((counts > 0).sum()),
            "perplexity": float(np.exp(-(nz * np.log(nz)).sum()))}


def batch_order(n: int, steps: int, batch_size: int, weights: np.ndarray | None,
                 rng: np.random.Generator) -> np.ndarray:
    """Indices of every training step, (steps, batch_size): reshuffled epochs, or weighted draws."""
    total = steps * batch_size
    if weights is not None:
        p = np.asarray(weights, dtype=np.float64)
        if p.shape != (n,) or not np.all(np.isfinite(p)) or (p < 0).any() or p.sum() <= 0:
            raise ValueError(f"weights must be {n} finite non-negative numbers with a positive sum")
        return rng.choice(n, size=total, replace=True, p=p / p.sum()).reshape(steps, batch_size)
    order = np.concatenate([rng.permutation(n) for _ in range(math.ceil(total / n))])
    return order[:total].reshape(steps, batch_size)


class _TrainingLog:
    """What :func:`train_vqvae` reports: sums over the last epoch (the trained model's figures),
    codes of the running epoch for the per-epoch log line, and restarts."""

    def __init__(self, steps: int, steps_per_epoch: int, codebook_size: int) -> None:
        self.last_epoch_from = max(0, steps - steps_per_epoch)
        self.codebook_size = codebook_size
        self.sums = {"loss": 0.0, "recon_mse": 0.0, "commitment": 0.0}
        self.last_epoch_codes: list[np.ndarray] = []
        self.epoch_codes: list[np.ndarray] = []
        self.restarts = 0

    def record(self, step: int, out: dict[str, Tensor]) -> None:
        """Add one step's outputs."""
        self.restarts += int(out["restarts"])
        codes = out["codes"].detach().cpu().numpy()
        if step >= self.last_epoch_from:
            for key in self.sums:
                self.sums[key] += float(out[key].detach())
            self.last_epoch_codes.append(codes)
        self.epoch_codes.append(codes)

    def end_epoch(self, desc: str, epoch: int, loss: float) -> None:
        """Log the finished epoch's loss and codebook usage."""
        usage = code_statistics(np.concatenate(self.epoch_codes), self.codebook_size)
        self.epoch_codes = []
        log.info("%s epoch %d: loss %.4f, codebook usage %d/%d, perplexity %.1f", desc, epoch, loss,
                 usage["codes_used"], self.codebook_size, usage["perplexity"])

    def summary(self, steps: int) -> dict[str, Any]:
        """Mean loss terms, PSNR and codebook statistics of the last epoch (empty without steps)."""
        if not steps:
            return {}
        stats: dict[str, Any] = {key: value / (steps - self.last_epoch_from) for key, value in self.sums.items()}
        stats["psnr"] = psnr_from_mse(stats["recon_mse"])
        stats.update(code_statistics(np.concatenate(self.last_epoch_codes), self.codebook_size))
        return stats


def train_vqvae(model: VQVAE, images: np.ndarray, *, epochs: float, seed: int, weights: np.ndarray | None = None,
                batch_size: int = 64, device: torch.device, opt_state: dict | None = None, progress: bool = True,
                checkpoint_path: Path | None = None, desc: str = "vq-vae") -> tuple[dict[str, Any], dict]:
    """Train (or fine-tune) ``model`` on ``images`` (float32 (N, C, S, S) in [0, 1]) with Adam.

    ``epochs`` may be fractional: the number of steps is ceil(epochs * N / batch_size). With
    ``weights``, batches are drawn with replacement with probability ∝ weights (weighted
    retraining); otherwise each epoch is a fresh permutation. ``opt_state`` continues an earlier
    Adam state. With ``checkpoint_path``, the model is saved there after every full epoch and at
    the end. Returns (statistics of the last epoch: loss, recon_mse, commitment, psnr,
    codebook_usage, codes_used, perplexity; plus steps, restarts, seconds) and the new optimizer state.
    """
    from tqdm import tqdm

    images = np.asarray(images, dtype=np.float32)
    n = len(images)
    if n == 0:
        raise ValueError("train_vqvae needs at least one image")
    steps = max(1, math.ceil(epochs * n / batch_size)) if epochs > 0 else 0
    seq = np.random.SeedSequence([int(seed), 0x5EED])
    rng = np.random.default_rng(seq)
    restart_gen = torch.Generator().manual_seed(int(seq.generate_state(1)[0]))
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=model.config.lr)
    if opt_state:
        optimizer.load_state_dict(opt_state)
    order = batch_order(n, steps, min(batch_size, n) if weights is None else batch_size, weights, rng)
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    training = _TrainingLog(steps, steps_per_epoch, model.config.codebook_size)
    model.train()
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=desc, unit="step", disable=not progress, leave=False)
    for step in bar:
        x = torch.from_numpy(images[order[step]]).to(device, non_blocking=True).contiguous(memory_format=CHANNELS_LAST)
        out = model(x, generator=restart_gen)
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        optimizer.step()
        training.record(step, out)
        if progress and (step % 20 == 0 or step == steps - 1):
            used = int((model.quantizer.cluster_size > model.config.dead_code_threshold).sum())
            bar.set_postfix(loss=f"{float(out['loss'].detach()):.4f}",
                            psnr=f"{psnr_from_mse(float(out['recon_mse'].detach())):.1f}", codes=used)
        if checkpoint_path is not None and (step + 1) % steps_per_epoch == 0:
            save_checkpoint(model, checkpoint_path)
            training.end_epoch(desc, (step + 1) // steps_per_epoch, float(out["loss"].detach()))
    bar.close()
    model.eval()
    if checkpoint_path is not None:
        save_checkpoint(model, checkpoint_path)
    stats: dict[str, Any] = {"steps": steps, "images_seen": steps * batch_size, "epochs": epochs,
                             "seconds": time.perf_counter() - start, "restarts": training.restarts,
                             **training.summary(steps)}
    if steps:
        log.info("%s: %d steps in %.1fs, loss %.4f, PSNR %.2f dB, codebook usage %d/%d (perplexity %.1f), "
                 "%d restarts", desc, steps, stats["seconds"], stats["loss"], stats["psnr"], stats["codes_used"],
                 model.config.codebook_size, stats["perplexity"], training.restarts)
    return stats, optimizer.state_dict()


# --- batched numpy helpers ------------------------------------------------------------------


def encode_np(model: VQVAE, images: np.ndarray, device: torch.device, batch_size: int = 256) -> np.ndarray:
    """Codes (int64, (N, grid, grid)) of float32 images (N, C, S, S) in [0, 1]."""
    return batched_inference(
        model, lambda x: model.encode(x.contiguous(memory_format=CHANNELS_LAST)).long(),
        np.asarray(images, dtype=np.float32), device, batch_size)


def decode_np(model: VQVAE, codes: np.ndarray, device: torch.device, batch_size: int = 256) -> np.ndarray:
    """Images (float32, (N, C, S, S) in [0, 1]) of int codes (N, grid, grid)."""
    return batched_inference(model, lambda z: model.decode(z).float(), np.asarray(codes, dtype=np.int64),
                             device, batch_size)


# --- checkpoints ----------------------------------------------------------------------------

#: quantizer EMA statistics stay float32 in half-precision checkpoints (sums of many vectors)
_FULL_PRECISION_BUFFERS = ("quantizer.cluster_size", "quantizer.embed_avg")


def save_torch(payload: Any, path: Path) -> None:
    """``torch.save`` atomically and byte-reproducibly: the same payload always gives the same file
    (saving to a path would name the archive's inner folder after the random temporary file)."""
    from bench.store.files import atomic_write

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write(Path(path), lambda tmp: tmp.write_bytes(buffer.getvalue()))


def save_model(module: nn.Module, config: dict[str, Any], path: Path, half: bool = False,
               full_precision: tuple[str, ...] = ()) -> None:
    """Atomically save ``{"config", "state_dict"}`` (what :func:`load_model` reads); ``half`` stores
    float weights as float16 (half the size), except the entries named in ``full_precision``."""
    state = {}
    for key, value in module.state_dict().items():
        value = value.detach().cpu()
        if half and value.is_floating_point() and key not in full_precision:
            value = value.half()
        state[key] = value.clone()
    save_torch({"config": config, "state_dict": state}, path)


def save_checkpoint(model: VQVAE, path: Path, half: bool = False) -> None:
    """Atomically save config + weights; ``half`` stores float weights as float16 (half the size)."""
    save_model(model, model.config.to_dict(), path, half, _FULL_PRECISION_BUFFERS)


def load_model(path: Path, build: Callable[[dict[str, Any]], M], what: str, hint: str) -> M:
    """The module ``build(config)`` with the weights of a ``{"config", "state_dict"}`` checkpoint
    (float16 weights back in float32), read without pickle (``weights_only``), on the CPU.

    A missing or unreadable file is a :class:`UserError` naming ``what`` and the ``hint`` to fix it.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {str(path)!r} not found; {hint}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        model = build(payload["config"])
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()})
    except (RuntimeError, KeyError, TypeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise UserError(f"{what} {str(path)!r} is unreadable or does not match the model ({exc}); {hint}") from None
    return model


def load_checkpoint(path: Path, device: torch.device | None = None) -> VQVAE:
    """A :class:`VQVAE` from :func:`save_checkpoint` (weights back in float32), in eval mode."""
    model = load_model(path, lambda config: VQVAE(VQVAEConfig.from_dict(config)), "VQ-VAE checkpoint",
                       "rerun `bench prepare --retrain`")
    model.eval()
    return model.to(device or torch.device("cpu"))
