"""The shapes task: generator, closed-form scorer, shipped artifacts, and its CLI (prepare, grid, perf)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.core import constants as C
from bench.cli.main import main
from bench.core.config import RunConfig
from bench.core.registry import task_spec
from bench.run.runner import execute_run, run_folder
from bench.tasks.image_task import MANIFEST_FILE
from bench.tasks.shapes import HIGH_SIDES, ShapesTask, shaded_pixels, square_images
from tests import REPO_ROOT

torch.set_num_threads(1)
SHIPPED = REPO_ROOT / "tasks" / "artifacts" / "shapes"


def test_square_images_are_single_filled_squares() -> None:
    images = square_images(200, np.random.default_rng(0))
    assert images.shape == (200, 1, 64, 64) and images.dtype == np.float32
    assert set(np.unique(images)) <= {0.0, 1.0}
    counts = shaded_pixels(images)
    sides = np.sqrt(counts)
    assert np.all(sides == np.round(sides)) and sides.min() >= 1 and sides.max() <= 20
    rows = images[:, 0].any(axis=2).sum(axis=1)
    cols = images[:, 0].any(axis=1).sum(axis=1)
    np.testing.assert_array_equal(rows, sides)  # one solid square: height = width = sqrt(count)
    np.testing.assert_array_equal(cols, sides)
    high = ShapesTask(device="cpu").training_images("reference-high", 50, seed=1)
    assert np.sqrt(shaded_pixels(high)).min() >= HIGH_SIDES[0]
    np.testing.assert_array_equal(square_images(5, np.random.default_rng(3)), square_images(5, np.random.default_rng(3)))


def test_feature_network_separates_squares_from_blobs() -> None:
    net = ShapesTask(device="cpu").feature_network()
    squares = torch.from_numpy(square_images(64, np.random.default_rng(0)))
    noise = torch.rand(64, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        a, b = net(squares), net(noise)
    assert a.shape == (64, 97)
    torch.testing.assert_close(a[:, -1], squares.mean(dim=(1, 2, 3)))
    assert float((a.mean(0) - b.mean(0)).norm()) > 1.0


def test_scorer_thresholds_decoded_values() -> None:
    task = ShapesTask(device="cpu")
    images = np.array([[[[0.2, 0.6], [0.51, 0.5]]]], dtype=np.float32)
    assert task.score_images(images).tolist() == [2.0]
    assert task.score_tensor(torch.from_numpy(images)).tolist() == [2]


def test_shipped_artifacts_are_small_and_valid() -> None:
    manifest = json.loads((SHIPPED / MANIFEST_FILE).read_text())
    assert manifest["passed"] and manifest["checks"]["survival_corr"]["value"] >= 0.9
    assert manifest["training"]["quick"] is False
    assert sum(p.stat().st_size for p in SHIPPED.iterdir()) < 1.5e6
    task = task_spec("shapes").build(overrides={"device": "cpu"})
    assert task.manifest["config_hash"] == task.config_hash()
    latents = task.space.sample(32, np.random.default_rng(0))
    scores = task.evaluate(latents).scores
    assert scores.dtype == np.float64 and ((scores >= 0) & (scores <= 4096)).all()
    # evaluate's tensor path (decoder -> score_tensor) agrees with the numpy path
    np.testing.assert_array_equal(scores, task.score_images(task.decode(latents)))
    # the code of a fully shaded patch, repeated everywhere, decodes to an (almost) fully shaded image
    full_image = np.ones((1, 1, 64, 64), dtype=np.float32)
    full = task.encode(full_image)
    assert task.evaluate(full).scores[0] > 3500


def test_bench_run_prepare_grid_and_perf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = RunConfig(task="shapes", optimizer="random", seed=0, budget=5, n_initial=8,
                       task_params={"device": "cpu"})
    folder = run_folder(tmp_path / "sweep", config)
    assert execute_run(config, folder) == C.STATUS_COMPLETED, folder.read_info().get("error")
    records = folder.read_records()
    assert len(records) == 13 and records[C.SCORE].between(0, 4096).all()

    assert main(["prepare", "--task", "shapes", "--device", "cpu", "-q"]) == 0  # loads and re-checks
    out = capsys.readouterr().out
    assert "loaded and checked" in out and "survival_corr" in out and "[ok  ] psnr_db" in out

    png = tmp_path / "grid.png"
    assert main(["grid", "--task", "shapes", "--out", str(png), "--n", "8", "--device", "cpu"]) == 0
    with Image.open(png) as img:
        assert img.size[0] > 64 * 8 and img.size[1] > 64 * 2

    assert main(["perf", "evaluate", "--task", "shapes", "--n", "64", "--repeats", "1", "--device", "cpu"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(last)
    assert result["images_per_s"] > 0 and result["forward_only_images_per_s"] > 0


def test_prepare_refuses_non_image_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prepare", "--task", "closed-form"]) == 2
    assert "no models to prepare" in capsys.readouterr().err
