"""The VQ-VAE: shapes, seeding, EMA codebook restarts, (weighted) training, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.core.errors import UserError
from bench.core.devices import resolve_device
from bench.tasks.vqvae import (VQVAE, EMAQuantizer, VQVAEConfig, batch_order, code_statistics, decode_np, encode_np,
                         load_checkpoint, save_checkpoint, train_vqvae)

torch.set_num_threads(1)
CPU = torch.device("cpu")
TINY = VQVAEConfig(in_channels=1, image_size=16, grid=4, codebook_size=16, code_dim=8, channels=(8, 16),
                   res_channels=8, n_res_blocks=1)


def blobs(n: int, seed: int, channels: int = 1, size: int = 16) -> np.ndarray:
    """Images with one bright rectangle each (a learnable toy distribution)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, channels, size, size), dtype=np.float32)
    for i in range(n):
        r, c = rng.integers(0, size - 4, 2)
        h, w = rng.integers(2, 5, 2)
        out[i, :, r:r + h, c:c + w] = rng.uniform(0.5, 1.0, channels)[:, None, None]
    return out


def test_config_checks_grid_against_downsampling() -> None:
    with pytest.raises(ValueError, match="grid"):
        VQVAEConfig(image_size=64, grid=16, channels=(64, 128, 256))
    cfg = VQVAEConfig(in_channels=1, channels=(16, 32, 64))
    assert VQVAEConfig.from_dict(cfg.to_dict()) == cfg


def test_paper_architecture_shapes_and_ranges() -> None:
    model = VQVAE(VQVAEConfig(), seed=0)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    codes = model.encode(x)
    assert codes.shape == (2, 8, 8) and codes.dtype == torch.int64
    assert int(codes.max()) < 256
    with torch.inference_mode():
        out = model.decode(codes)
    assert out.shape == (2, 3, 64, 64) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_construction_is_seeded_and_leaves_global_rng_alone() -> None:
    before = torch.get_rng_state()
    a, b, c = VQVAE(TINY, seed=1), VQVAE(TINY, seed=1), VQVAE(TINY, seed=2)
    assert torch.equal(torch.get_rng_state(), before)
    wa, wb, wc = (m.encoder[0].weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_quantizer_restarts_dead_codes_on_batch_vectors() -> None:
    quant = EMAQuantizer(codebook_size=8, code_dim=2, decay=0.5, dead_code_threshold=1.0)
    gen = torch.Generator().manual_seed(0)
    data = torch.tensor([[5.0, 5.0], [6.0, 6.0], [7.0, 7.0], [8.0, 8.0]]).repeat(4, 1)
    quant.initialise(torch.zeros(16, 2), gen)  # every code starts at the origin, far from the data
    restarted = 0
    for _ in range(10):
        codes = quant.nearest(data)
        restarted += quant.update(data, codes, gen)
    assert restarted > 0
    # every data vector now has a code sitting on it
    assert torch.allclose(quant.embed[quant.nearest(data)], data, atol=1e-3)


def test_batch_order_fractional_and_weighted() -> None:
    rng = np.random.default_rng(0)
    order = batch_order(10, steps=3, batch_size=4, weights=None, rng=rng)
    assert order.shape == (3, 4)
    assert sorted(order.ravel()[:10]) == list(range(10))  # a full permutation first
    weights = np.zeros(10)
    weights[[2, 7]] = [1.0, 3.0]
    drawn = batch_order(10, steps=50, batch_size=8, weights=weights, rng=rng).ravel()
    assert set(drawn) == {2, 7}
    assert 0.65 < np.mean(drawn == 7) < 0.85
    with pytest.raises(ValueError, match="weights"):
        batch_order(10, steps=1, batch_size=4, weights=-np.ones(10), rng=rng)


def test_training_improves_reconstruction_and_is_deterministic() -> None:
    images = blobs(128, seed=0)
    runs = []
    for _ in range(2):
        model = VQVAE(TINY, seed=0)
        untrained = VQVAE(TINY, seed=0).eval()
        with torch.inference_mode():
            before = float(torch.nn.functional.mse_loss(untrained(torch.from_numpy(images))["recon"],
                                                        torch.from_numpy(images)))
        stats, opt_state = train_vqvae(model, images, epochs=8, seed=3, batch_size=32, device=CPU, progress=False)
        runs.append((model, stats))
    (m1, s1), (m2, s2) = runs
    assert s1["steps"] == 32 and s1["loss"] == s2["loss"]
    assert all(torch.equal(p, q) for p, q in zip(m1.state_dict().values(), m2.state_dict().values()))
    recon = decode_np(m1, encode_np(m1, images, CPU), CPU)
    mse = float(np.mean((recon - images) ** 2))
    assert mse < 0.5 * before
    assert s1["psnr"] > 10 and 0 < s1["codebook_usage"] <= 1 and s1["perplexity"] >= 1
    # fractional epochs and a continued optimizer state
    stats, _ = train_vqvae(m1, images, epochs=0.1, seed=4, batch_size=32, device=CPU, opt_state=opt_state,
                           progress=False, weights=np.linspace(0, 1, len(images)))
    assert stats["steps"] == 1


def test_numpy_helpers_are_batch_size_independent_and_rgb() -> None:
    cfg = VQVAEConfig(in_channels=3, image_size=16, grid=4, codebook_size=16, code_dim=8, channels=(8, 16),
                      res_channels=8, n_res_blocks=1)
    model = VQVAE(cfg, seed=0)
    train_vqvae(model, blobs(64, 1, channels=3), epochs=1, seed=0, batch_size=32, device=CPU, progress=False)
    images = blobs(10, 2, channels=3)
    codes = encode_np(model, images, CPU, batch_size=3)
    assert codes.dtype == np.int64 and codes.shape == (10, 4, 4)
    assert np.array_equal(codes, encode_np(model, images, CPU, batch_size=256))
    out = decode_np(model, codes, CPU, batch_size=4)
    assert out.dtype == np.float32 and out.shape == (10, 3, 16, 16)
    np.testing.assert_allclose(out, decode_np(model, codes, CPU), atol=1e-6)
    stats = code_statistics(codes, 16)
    assert stats["codes_used"] == len(np.unique(codes))


def test_checkpoint_roundtrip_full_and_half(tmp_path: Path) -> None:
    model = VQVAE(TINY, seed=0)
    train_vqvae(model, blobs(64, 0), epochs=1, seed=0, batch_size=32, device=CPU, progress=False)
    codes = encode_np(model, blobs(8, 5), CPU)
    save_checkpoint(model, tmp_path / "full.pt")
    save_checkpoint(model, tmp_path / "again.pt")
    assert (tmp_path / "full.pt").read_bytes() == (tmp_path / "again.pt").read_bytes()  # reproducible bytes
    save_checkpoint(model, tmp_path / "half.pt", half=True)
    assert (tmp_path / "half.pt").stat().st_size < (tmp_path / "full.pt").stat().st_size
    full, half = load_checkpoint(tmp_path / "full.pt"), load_checkpoint(tmp_path / "half.pt")
    assert full.config == TINY
    np.testing.assert_array_equal(decode_np(full, codes, CPU), decode_np(model, codes, CPU))
    np.testing.assert_allclose(decode_np(half, codes, CPU), decode_np(model, codes, CPU), atol=0.02)
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="unreadable"):
        load_checkpoint(tmp_path / "bad.pt")


def test_resolve_device() -> None:
    assert resolve_device("cpu") == CPU
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA"):
            resolve_device("cuda")
    with pytest.raises(UserError, match="invalid device"):
        resolve_device("nonsense")
