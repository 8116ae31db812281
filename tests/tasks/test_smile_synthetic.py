"""The ``smile-synthetic`` task from its shipped artifacts: checks, scores, held-out scorer, splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.core.errors import UserError
from bench.core.registry import task_spec
from bench.tasks import faces
from bench.store.files import file_sha256
from bench.tasks.image_task import MANIFEST_FILE, pearson
from bench.tasks.smile_synthetic import HIGH_SMILE, SMILE_THRESHOLD, SmileSyntheticTask

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def task() -> SmileSyntheticTask:
    built = task_spec("smile-synthetic").build(overrides={"device": "cpu"})
    assert isinstance(built, SmileSyntheticTask)
    return built


def test_shipped_artifacts_load_and_passed_their_checks(task: SmileSyntheticTask) -> None:
    manifest = task.manifest
    assert manifest["passed"] and manifest["status"] == "complete" and not manifest["training"]["quick"]
    for check in ("psnr_db", "codebook_usage", "survival_corr"):
        assert manifest["checks"][check]["passed"], check
    assert manifest["checks"]["survival_corr"]["value"] >= 0.9
    # The files are the ones the checks were run on.
    for name, digest in manifest["files"].items():
        assert file_sha256(task.artifact_dir / name) == digest, name
    # Every data purpose had its own seed.
    seeds = {**manifest["data_seeds"], **manifest["scorers"]["data_seeds"]}
    assert len(set(seeds.values())) == len(seeds)
    size = sum(p.stat().st_size for p in task.artifact_dir.iterdir() if p.is_file())
    assert size < 6e6


def test_recorded_checks_still_hold_on_fresh_test_faces(task: SmileSyntheticTask) -> None:
    checks = task.validity_checks(quick=True)  # 64 test faces through the VQ-VAE and both scorers
    assert checks["checks"]["survival_corr"]["value"] >= 0.85
    assert checks["checks"]["psnr_db"]["value"] >= task.min_psnr_db - 1.0


def test_high_smiles_score_higher_than_low_smiles_after_reconstruction(task: SmileSyntheticTask) -> None:
    low, _ = faces.generate(48, seed=901, smile_range=(0.0, 1.0))
    high, _ = faces.generate(48, seed=902, smile_range=(4.0, 5.0))
    low_scores = task.score_images(task.decode(task.encode(low)))
    high_scores = task.score_images(task.decode(task.encode(high)))
    assert high_scores.mean() > low_scores.mean() + 1.5
    assert np.median(high_scores) > np.percentile(low_scores, 90)


def test_heldout_scorer_agrees_with_the_main_scorer(task: SmileSyntheticTask) -> None:
    images, factors = faces.generate(96, seed=903)
    main, held = task.score_images(images), task.heldout_scores(images)
    assert main.shape == held.shape == (96,)
    assert 0.0 <= main.min() and main.max() <= faces.SMILE_MAX
    assert pearson(main, held) > 0.9
    assert pearson(main, factors["smile"]) > 0.9
    assert task.manifest["scorers"]["heldout_vs_scorer_corr"] > 0.9


def test_splits_have_their_smile_ranges_and_never_share_faces(task: SmileSyntheticTask) -> None:
    _, vq = task.faces("vqvae", 64, 5)
    _, high = task.faces("reference-high", 64, 5)
    _, train_ref = task.faces("reference-train", 64, 5)
    _, test = task.faces("test", 64, 5)
    assert max(vq["smile"].max(), train_ref["smile"].max(), test["smile"].max()) < SMILE_THRESHOLD
    assert high["smile"].min() >= HIGH_SMILE
    assert not np.allclose(vq["smile"], train_ref["smile"])  # same seed, different split: other faces
    np.testing.assert_array_equal(task.training_images("test", 8, 5), task.training_images("test", 8, 5))
    with pytest.raises(ValueError, match="unknown split"):
        task.training_images("nope", 1, 0)


def test_initial_data_evaluate_and_features(task: SmileSyntheticTask) -> None:
    data = task.initial_data(seed=0, n=12)
    again = task.initial_data(seed=0, n=12)
    np.testing.assert_array_equal(data.latents, again.latents)
    assert data.latents.shape == (12, 8, 8) and data.images is not None
    np.testing.assert_allclose(task.evaluate(data.latents).scores, task.score_images(task.decode(data.latents)), rtol=1e-5)
    diag = task.evaluate(data.latents).extras
    assert diag["heldout_score"].shape == (12,)
    features = task.feature_network()(torch.from_numpy(data.images))
    assert features.shape == (12, 64) and torch.isfinite(features).all()


def test_missing_artifacts_refuse_to_run(tmp_path: Path) -> None:
    empty = task_spec("smile-synthetic").build(overrides={"device": "cpu", "artifacts": str(tmp_path)})
    with pytest.raises(UserError, match="bench prepare --task smile-synthetic"):
        empty.evaluate(np.zeros((1, 8, 8), dtype=np.int64))


@pytest.mark.slow
def test_quick_prepare_trains_every_network(tmp_path: Path) -> None:
    fresh = task_spec("smile-synthetic").build(overrides={"device": "cpu", "artifacts": str(tmp_path)})
    manifest = fresh.prepare(quick=True, progress=False)
    assert manifest["training"]["quick"]
    assert {p.name for p in tmp_path.iterdir()} >= {MANIFEST_FILE, "vqvae.pt", "scorer.pt", "scorer_heldout.pt",
                                                    "features.pt"}
    scorers = json.loads((tmp_path / MANIFEST_FILE).read_text())["scorers"]
    assert set(scorers["training"]) == {"scorer", "scorer-heldout", "features"}
    assert np.isfinite(scorers["scorer_r2"])
