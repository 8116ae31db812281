"""VQImageTask, the generic VQ-VAE image task: prepare, manifest checks, RetrainableTask API, harness runs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from bench.core import constants as C
from bench.core.config import RunConfig
from bench.core.errors import UserError
from bench.run.loop import run
from bench.core.registry import optimizer_spec
from bench.tasks.image_task import MANIFEST_FILE, SPLITS, TrainingSettings, VQImageTask, pearson
from bench.tasks.vqvae import VQVAEConfig

torch.set_num_threads(1)


class TinyTask(VQImageTask):
    """16x16 images of one bright square; score = mean brightness x 10, held-out = shaded fraction."""

    vqvae_config: ClassVar[VQVAEConfig] = VQVAEConfig(in_channels=1, image_size=16, grid=4, codebook_size=16,
                                                     code_dim=8, channels=(8, 16), res_channels=8, n_res_blocks=1)
    # full builds as small as quick ones: only full builds have their checks enforced
    training: ClassVar[TrainingSettings] = TrainingSettings(epochs=6.0, n_images=128, batch_size=32, n_test_images=64)
    quick_training: ClassVar[TrainingSettings] = training
    min_psnr_db: ClassVar[float] = 5.0
    min_survival_corr: ClassVar[float] = 0.3
    default_n_initial = 6
    scorer_loads = 0

    def training_images(self, split: str, n: int, seed: int) -> np.ndarray:
        assert split in SPLITS
        rng = np.random.default_rng(seed)
        side = rng.integers(2, 9, n)
        top = (rng.random(n) * (17 - side)).astype(int)
        left = (rng.random(n) * (17 - side)).astype(int)
        pos = np.arange(16)
        rows = (pos >= top[:, None]) & (pos < (top + side)[:, None])
        cols = (pos >= left[:, None]) & (pos < (left + side)[:, None])
        return (rows[:, :, None] & cols[:, None, :]).astype(np.float32)[:, None]

    def train_scorers(self, artifact_dir: Path, device: torch.device, progress: bool, quick: bool) -> dict[str, Any]:
        (artifact_dir / "scorer.json").write_text(json.dumps({"scale": 10.0}))
        return {"kind": "mean brightness"}

    def load_scorers(self, artifact_dir: Path, device: torch.device) -> None:
        self.scale = json.loads((artifact_dir / "scorer.json").read_text())["scale"]
        self.scorer_loads += 1

    def score_images(self, images: np.ndarray) -> np.ndarray:
        return images.reshape(len(images), -1).mean(axis=1).astype(np.float64) * self.scale

    def heldout_scores(self, images: np.ndarray) -> np.ndarray:
        return (images > 0.5).reshape(len(images), -1).mean(axis=1).astype(np.float64)


def make_task(folder: Path, **kwargs: Any) -> TinyTask:
    task = TinyTask(artifacts=str(folder), device="cpu", **kwargs)
    task.name = "tiny"
    return task


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-artifacts")
    manifest = make_task(folder).prepare(retrain=True, progress=False)
    assert manifest["passed"], manifest["checks"]
    return folder


def test_missing_artifacts_refuse_to_run(tmp_path: Path) -> None:
    task = make_task(tmp_path / "nothing")
    with pytest.raises(UserError, match="bench prepare --task tiny"):
        task.evaluate(np.zeros((1, 4, 4), dtype=np.int64))


def test_prepare_writes_manifest_with_figures(prepared: Path) -> None:
    manifest = json.loads((prepared / MANIFEST_FILE).read_text())
    assert manifest["status"] == "complete" and manifest["passed"] is True
    assert set(manifest["checks"]) == {"psnr_db", "codebook_usage", "survival_corr"}
    assert manifest["checks"]["survival_corr"]["threshold"] == 0.3
    assert set(manifest["data_seeds"]) == set(SPLITS) and len(set(manifest["data_seeds"].values())) == len(SPLITS)
    assert {"vqvae.pt", "scorer.json"} <= set(manifest["files"])
    assert "heldout_survival_corr" in manifest["figures"]
    assert manifest["training"]["stats"]["steps"] > 0 and manifest["training"]["quick"] is False
    # reloading without --retrain checks the stored models again and does not retrain
    again = make_task(prepared).prepare(retrain=False, quick=True, progress=False)
    assert again["reloaded"] and again["checks"]["psnr_db"]["value"] == pytest.approx(
        manifest["checks"]["psnr_db"]["value"])


def test_failed_checks_and_foreign_config_refuse_to_run(prepared: Path, tmp_path: Path) -> None:
    strict = make_task(prepared, min_survival_corr=0.999999)
    with pytest.raises(UserError, match="survival_corr"):
        strict.encode(np.zeros((1, 1, 16, 16), dtype=np.float32))

    class OtherConfig(TinyTask):
        data_seed = 5

    other = OtherConfig(artifacts=str(prepared), device="cpu")
    other.name = "tiny"
    with pytest.raises(UserError, match="another configuration"):
        other.initial_data(0, 2)

    failing = tmp_path / "failing"
    manifest = make_task(failing, min_psnr_db=200.0).prepare(retrain=True, progress=False)
    assert not manifest["passed"] and not manifest["checks"]["psnr_db"]["passed"]
    with pytest.raises(UserError, match=r"failed their validity checks: psnr_db = [0-9.]+ \(needs >= 200.0\)"):
        make_task(failing, min_psnr_db=200.0).decode(np.zeros((1, 4, 4), dtype=np.int64))
    # the same artifacts judged by permissive thresholds are usable on purpose
    assert make_task(failing).decode(np.zeros((1, 4, 4), dtype=np.int64)).shape == (1, 1, 16, 16)
    assert make_task(failing).provenance() == {"quick": False, "artifacts": manifest["config_hash"],
                                               "checks_passed": False}  # as judged when prepared


def test_quick_artifacts_run_unchecked_and_say_so(tmp_path: Path) -> None:
    manifest = make_task(tmp_path, min_psnr_db=200.0).prepare(retrain=True, quick=True, progress=False)
    assert not manifest["passed"]
    smoke = make_task(tmp_path, min_psnr_db=200.0)  # a smoke build is not gated: runs are marked instead
    assert smoke.decode(np.zeros((1, 4, 4), dtype=np.int64)).shape == (1, 1, 16, 16)
    assert smoke.provenance()["quick"] is True and smoke.provenance()["checks_passed"] is False


def test_initial_data_evaluate_and_diagnostics(prepared: Path) -> None:
    task = make_task(prepared)
    assert task.space.shape == (4, 4) and task.space.codebook_size == 16
    a, b, c = task.initial_data(0, 6), task.initial_data(0, 6), task.initial_data(1, 6)
    assert np.array_equal(a.latents, b.latents) and np.array_equal(a.scores, b.scores)
    assert not np.array_equal(a.images, c.images)
    assert a.images.shape == (6, 1, 16, 16) and a.latents.shape == (6, 4, 4)
    np.testing.assert_allclose(a.scores, task.score_images(a.images))
    latents = task.space.sample(5, np.random.default_rng(0))
    scores = task.evaluate(latents).scores
    assert scores.dtype == np.float64 and scores.shape == (5,)
    np.testing.assert_allclose(scores, task.score_images(task.decode(latents)))
    held = task.evaluate(latents).extras[C.HELDOUT_SCORE]
    np.testing.assert_allclose(held, task.heldout_scores(task.decode(latents)))
    assert task.scorer_loads == 1
    assert pearson(np.arange(4.0), np.ones(4)) != pearson(np.arange(4.0), np.ones(4))  # NaN when constant


def test_fine_tune_and_model_state_roundtrip(prepared: Path) -> None:
    task = make_task(prepared)
    latents = task.space.sample(8, np.random.default_rng(1))
    original = task.decode(latents)
    fingerprint = task.fingerprint()
    snapshot = task.model_state()
    twin = copy.deepcopy(task)
    images = task.training_images("vqvae", 64, 9)
    stats = task.fine_tune(images, np.linspace(0.0, 1.0, 64), epochs=0.5, seed=3)
    assert stats["steps"] == 1
    assert not np.allclose(task.decode(latents), original)
    np.testing.assert_array_equal(twin.decode(latents), original)  # a deep copy is independent
    after = task.model_state()
    task.load_model_state(snapshot)
    np.testing.assert_array_equal(task.decode(latents), original)
    task.load_model_state(after)
    assert after["optimizer"] is not None
    assert not np.allclose(task.decode(latents), original)
    assert task.fingerprint() == fingerprint  # files on disk are untouched by fine-tuning


def test_harness_run_with_weighted_retraining(prepared: Path) -> None:
    task = make_task(prepared)
    config = RunConfig(task="tiny", optimizer="random", seed=0, budget=4, batch_size=2,
                       retrain={"k": 1e-3, "every": 2, "epochs": 0.5})
    spec = optimizer_spec("random")
    optimizer = spec.build(task.space, 0)
    results = list(run(task, optimizer, config, preset_hash=spec.preset_hash()))
    rows = [row for result in results for row in result.records]
    assert len(rows) == 6 + 4
    assert all(np.isfinite(row[C.SCORE]) and np.isfinite(row[C.HELDOUT_SCORE]) for row in rows)
    assert results[-1].state.model_version == 1
    assert any(result.retrain_stats is not None for result in results)


def test_prepare_cli_enforces_checks_of_full_builds_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.cli.main import main
    from bench.core.registry import temporarily_registered

    with temporarily_registered("task", "tiny", TinyTask, min_psnr_db=200.0):
        assert main(["prepare", "--task", "tiny", "--artifacts", str(tmp_path / "full"), "-q", "--device", "cpu"]) == 1
        out = capsys.readouterr().out
        assert "validity checks failed (psnr_db)" in out and "docs/data.md" in out and "REFERENCE" not in out
        assert main(["prepare", "--task", "tiny", "--artifacts", str(tmp_path / "quick"), "-q", "--device", "cpu",
                     "--quick"]) == 0
        out = capsys.readouterr().out
        assert "smoke-test artifacts: their checks are recorded (not passed), not enforced" in out
        assert f"next: bench run --task tiny --task-opt artifacts={tmp_path / 'quick'}" in out


def test_prepare_trains_the_code_prior_and_runs_record_its_log_likelihood(prepared: Path) -> None:
    manifest = json.loads((prepared / MANIFEST_FILE).read_text())
    assert "prior.pt" in manifest["files"]
    figures = manifest["prior"]
    assert figures["steps"] > 0 and figures["test_nll_per_code"] < figures["uniform_nll_per_code"] == pytest.approx(
        np.log(16))
    task = make_task(prepared)
    config = RunConfig(task="tiny", optimizer="prior-sample", seed=0, budget=4, batch_size=2)
    spec = optimizer_spec("prior-sample")
    results = list(run(task, spec.build(task.space, 0), config, preset_hash=spec.preset_hash()))
    queried = [row for result in results for row in result.records if not row[C.IS_INIT]]
    assert len(queried) == 4 and all(np.isfinite(row[C.PRIOR_LOGLIK]) for row in queried)
    prior = task.code_prior()
    latents = task.space.sample(5, np.random.default_rng(0))
    np.testing.assert_allclose(task.evaluate(latents).extras[C.PRIOR_LOGLIK], prior.log_likelihood(latents))


def test_after_retraining_the_prior_judges_re_encoded_images(prepared: Path) -> None:
    task = make_task(prepared)
    prior = task.code_prior()
    snapshot = task.model_state()
    task.fine_tune(task.training_images("vqvae", 64, 9), np.ones(64), epochs=0.5, seed=3)
    assert task.code_prior() is None  # its codes are the shipped VQ-VAE's, no longer the task's
    latents = task.space.sample(5, np.random.default_rng(0))
    evaluation = task.evaluate(latents)
    shipped = make_task(prepared)
    np.testing.assert_allclose(evaluation.extras[C.PRIOR_LOGLIK], prior.log_likelihood(shipped.encode(evaluation.images)))
    task.load_model_state(snapshot)
    assert task.code_prior() is prior


def test_prepare_adds_a_prior_to_artifacts_made_without_one(prepared: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "old"
    shutil.copytree(prepared, folder)
    (folder / "prior.pt").unlink()
    old = json.loads((folder / MANIFEST_FILE).read_text())
    del old["prior"], old["files"]["prior.pt"]
    (folder / MANIFEST_FILE).write_text(json.dumps(old))
    assert make_task(folder).code_prior() is None  # older artifacts still run, without a prior
    make_task(folder).prepare(retrain=False, progress=False)
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert (folder / "prior.pt").is_file() and "prior.pt" in manifest["files"] and manifest["prior"]["steps"] > 0
    assert (folder / "vqvae.pt").read_bytes() == (prepared / "vqvae.pt").read_bytes()  # the VQ-VAE is kept
    assert make_task(folder).code_prior() is not None
