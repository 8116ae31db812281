"""Weighted retraining inside runs (bench.run.loop), with a fake retrainable task that trains nothing.

The fake "model" quantises grey 4x4 images to K levels and adds a code offset that every
fine-tune changes (by an amount that depends on the fine-tune seed), so a stale encoding,
a missed re-encoding or a seed that is not reproduced after a resume all show up in the records.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest
import torch

from bench.core import constants as C
from bench.core import registry
from bench.core.config import RunConfig
from bench.run.loop import _STREAM_RETRAIN, harness_rng, rank_weights, run
from bench.core.optimizer import Observations, Proposal, Optimizer
from bench.store.run_folder import RunFolder
from bench.run.runner import execute_run, run_folder
from bench.core.space import CodeGrid
from bench.core.task import Evaluation, InitialData, RetrainableTask
from bench.tasks.metrics import image_set_metrics

LEVELS = 8
FAKE_TASK = "versioned-fake"


class VersionedTask(RetrainableTask):
    """Grey 1x4x4 images; code = (grey level + offset) mod K, where fine-tuning moves the offset."""

    default_n_initial = 6
    metric_references = ("reference-high", "reference-train")
    metric_reference_n = 64
    metric_features = "task"

    def __init__(self) -> None:
        self.offset = 0
        self.model_version = 0
        self.fine_tune_log: list[dict[str, Any]] = []
        self._space = CodeGrid(4, 4, LEVELS)

    @property
    def space(self) -> CodeGrid:
        return self._space

    def initial_data(self, seed: int, n: int) -> InitialData:
        images = self.training_images("vqvae", n, seed)
        return InitialData(self.encode(images), self.score_images(images), images)

    def training_images(self, split: str, n: int, seed: int) -> np.ndarray:
        low = LEVELS // 2 if split == "reference-high" else 0
        levels = np.random.default_rng([seed, len(split)]).integers(low, LEVELS, size=(n, 1, 4, 4))
        return ((levels + 0.5) / LEVELS).astype(np.float32)

    def encode(self, images: np.ndarray) -> np.ndarray:
        levels = np.clip(np.floor(np.asarray(images)[:, 0] * LEVELS), 0, LEVELS - 1).astype(np.int64)
        return (levels + self.offset) % LEVELS

    def decode(self, latents: np.ndarray) -> np.ndarray:
        levels = (np.asarray(latents, dtype=np.int64) - self.offset) % LEVELS
        return ((levels + 0.5) / LEVELS)[:, None].astype(np.float32)

    def score_images(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(images, dtype=np.float64).mean(axis=(1, 2, 3))

    def evaluate(self, latents: np.ndarray) -> Evaluation:
        images = self.decode(latents)
        return Evaluation(self.score_images(images), images)

    def fine_tune(self, images: np.ndarray, weights: np.ndarray, epochs: float, seed: int) -> dict[str, Any]:
        self.fine_tune_log.append({"images": images.copy(), "weights": weights.copy(), "epochs": epochs,
                                   "seed": seed, "version": self.model_version})
        self.offset = (self.offset + 1 + seed % 3) % LEVELS
        self.model_version += 1
        return {"loss": float(seed % 7), "offset": self.offset}

    def model_state(self) -> dict[str, Any]:
        return {"offset": self.offset, "version": self.model_version}

    def load_model_state(self, state: dict[str, Any]) -> None:
        self.offset, self.model_version = int(state["offset"]), int(state["version"])

    def feature_network(self) -> torch.nn.Module:
        return torch.nn.Flatten()

    def set_metrics(self, images: np.ndarray, subset: str) -> list[dict[str, Any]]:
        return image_set_metrics(self, images, subset)


class Recorder(Optimizer):
    """Random proposals; remembers what it was shown (a copy per call)."""

    def __init__(self, space: CodeGrid, seed: int) -> None:
        super().__init__(space, seed)
        self.seen: list[dict[str, Any]] = []

    def propose(self, n: int, data: Observations) -> Proposal:
        self.seen.append({"latents": data.latents.copy(), "scores": data.scores.copy(), "version": data.version,
                          "weights": None if data.weights is None else data.weights.copy()})
        return Proposal(data.space.sample(n, self.rng))


@pytest.fixture(scope="module")
def fake_task_registered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Register the fake task for execute_run, only for this module; reference stats go to a temp folder."""
    with pytest.MonkeyPatch.context() as mp, registry.temporarily_registered("task", FAKE_TASK, VersionedTask):
        mp.setenv("BENCH_METRICS_CACHE", str(tmp_path_factory.mktemp("reference-stats")))
        yield


def config(**kwargs: Any) -> RunConfig:
    base: dict[str, Any] = {"task": FAKE_TASK, "optimizer": "random", "seed": 1, "budget": 12, "n_initial": 6,
                            "retrain": {"k": 1e-3, "every": 5, "epochs": 0.25}}
    return RunConfig(**{**base, **kwargs})


def run_in_memory(cfg: RunConfig) -> tuple[VersionedTask, Recorder, pd.DataFrame]:
    task = VersionedTask()
    task.name = FAKE_TASK
    optimizer = Recorder(task.space, cfg.seed)
    rows = [row for result in run(task, optimizer, cfg, preset_hash="test") for row in result.records]
    return task, optimizer, pd.DataFrame(rows)


def algorithmic(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[c for c in C.TIMING_COLUMNS if c in frame.columns]).reset_index(drop=True)


# --- weights -------------------------------------------------------------------------------------


def test_rank_weights_match_tripp_formula() -> None:
    scores = np.array([0.3, 0.9, 0.1, 0.9, 0.5])  # a tie: the first of equals ranks higher
    k, n = 1e-3, 5
    ranks = np.array([3, 0, 4, 1, 2])
    expected = 1.0 / (k * n + ranks)
    np.testing.assert_allclose(rank_weights(scores, k), expected / expected.sum(), rtol=1e-12)
    np.testing.assert_allclose(rank_weights(scores, math.inf), np.full(n, 0.2))
    np.testing.assert_allclose(rank_weights(scores, 1e6), np.full(n, 0.2), rtol=1e-5)  # large k -> uniform


def test_rank_weights_with_k_zero_put_all_weight_on_the_best() -> None:
    # k = 0 is a valid config (retrain.k >= 0); 1 / (0 + rank 0) must not turn every weight into NaN
    weights = rank_weights(np.array([0.3, 0.9, 0.1]), 0.0)
    np.testing.assert_array_equal(weights, [0.0, 1.0, 0.0])


def test_fine_tune_gets_all_data_with_rank_weights_and_harness_seeds() -> None:
    cfg = config()
    task, _, frame = run_in_memory(cfg)
    assert [call["version"] for call in task.fine_tune_log] == [0, 1]
    for call, after in zip(task.fine_tune_log, (5, 10)):
        n = cfg.n_initial + after  # initial data + every query so far
        scores = frame[C.SCORE].to_numpy()[:n]
        assert len(call["images"]) == n and call["epochs"] == 0.25
        ranks = np.empty(n)
        ranks[np.argsort(-scores, kind="stable")] = np.arange(n)
        expected = 1.0 / (cfg.retrain.k * n + ranks)
        np.testing.assert_allclose(call["weights"], expected / expected.sum(), rtol=1e-12)
        # the data fine-tuned on are the initial images and the decoded queries (kept as uint8), in order
        np.testing.assert_allclose(task.score_images(call["images"]), scores, atol=0.5 / 255)
    batch_of = {5: 5, 10: 10}  # batch size 1: retraining after query q happens in batch q
    assert [c["seed"] for c in task.fine_tune_log] == [
        int(harness_rng(cfg.seed, _STREAM_RETRAIN, batch_of[q]).integers(2**31)) for q in (5, 10)]


# --- versions and re-encoding ------------------------------------------------------------------


@pytest.mark.parametrize(("batch_size", "budget", "versions"), [
    (1, 12, [0] * 5 + [1] * 5 + [2] * 2),  # retrain after queries 5 and 10; never after the last one
    (2, 14, [0] * 6 + [1] * 6 + [2] * 2),  # batches of 2: the retraining waits for the batch that reaches r
])
def test_model_version_increments_every_r_queries(batch_size: int, budget: int, versions: list[int]) -> None:
    _, _, frame = run_in_memory(config(batch_size=batch_size, budget=budget))
    assert (frame.loc[frame[C.IS_INIT], C.MODEL_VERSION] == 0).all()
    assert frame.loc[~frame[C.IS_INIT], C.MODEL_VERSION].tolist() == versions


def test_initial_fine_tune_happens_before_the_first_query() -> None:
    task, optimizer, frame = run_in_memory(config(retrain={"k": 1e-3, "every": math.inf, "initial_epochs": 1.0},
                                                  budget=3))
    assert len(task.fine_tune_log) == 1 and task.fine_tune_log[0]["epochs"] == 1.0
    assert (frame.loc[frame[C.IS_INIT], C.MODEL_VERSION] == 0).all()
    assert (frame.loc[~frame[C.IS_INIT], C.MODEL_VERSION] == 1).all()
    assert optimizer.seen[0]["version"] == 1


def test_optimizer_sees_the_data_re_encoded_after_each_retraining() -> None:
    cfg = config()
    task, optimizer, frame = run_in_memory(cfg)
    offsets = [0, 0, 0, 0, 0]  # propose calls 1..5 happen before the first retraining
    replay = VersionedTask()
    for call in task.fine_tune_log:  # the offset after each fine-tune, from the logged seeds
        replay.fine_tune(call["images"], call["weights"], call["epochs"], call["seed"])
        offsets += [replay.offset] * 5
    images = task.fine_tune_log[-1]["images"]  # every image of the run up to query 10
    for index, seen in enumerate(optimizer.seen[:11]):
        n = cfg.n_initial + index
        coder = VersionedTask()
        coder.offset = offsets[index]
        np.testing.assert_array_equal(seen["latents"], coder.encode(images[:n]))
        assert seen["version"] == (index >= 5) + (index >= 10)
        np.testing.assert_array_equal(seen["scores"], frame[C.SCORE].to_numpy()[:n])  # scores are not re-scored
        np.testing.assert_allclose(seen["weights"], rank_weights(seen["scores"], cfg.retrain.k))
    assert offsets[5] != 0 and optimizer.seen[5]["latents"][0].tolist() != optimizer.seen[4]["latents"][0].tolist()


def test_retraining_needs_a_retrainable_task() -> None:
    task = registry.task_spec("closed-form").build()
    cfg = RunConfig(task="closed-form", optimizer="random", budget=2, retrain={"every": 1})
    with pytest.raises(TypeError, match="no generative model"):
        next(run(task, Recorder(task.space, 0), cfg, preset_hash="x"))


# --- runs on disk: metrics checkpoints, reproducibility, resume -----------------------------------


def read_run(folder: RunFolder) -> tuple[pd.DataFrame, pd.DataFrame]:
    metrics = folder.read_table(C.METRICS_FILE)
    assert metrics is not None
    return algorithmic(folder.read_records()), metrics.reset_index(drop=True)


@pytest.mark.usefixtures("fake_task_registered")
def test_metrics_rows_at_checkpoints_carry_n_reference_and_features(tmp_path: Path) -> None:
    cfg = config(budget=10, metrics={"every": 4, "n_images": 3})
    folder = run_folder(tmp_path / "runs", cfg)
    assert execute_run(cfg, folder) == C.STATUS_COMPLETED
    records, metrics = read_run(folder)
    # checkpoints every 4 queries and at the end of the run
    assert sorted(set(metrics[C.METRIC_AT_QUERY])) == [4, 8, 10]
    per_checkpoint = {(s, m, r) for s in ("top", "last") for m in ("fid", "kid")
                      for r in ("reference-high", "reference-train")}
    for at_query, group in metrics.groupby(C.METRIC_AT_QUERY):
        assert set(zip(group[C.METRIC_SUBSET], group[C.METRIC_NAME], group[C.METRIC_REFERENCE])) == per_checkpoint
    assert (metrics[C.METRIC_N] == 3).all() and (metrics["reference_n"] == 64).all()
    assert (metrics[C.METRIC_FEATURES] == f"task-features:{FAKE_TASK}").all()
    assert metrics[C.METRIC_VALUE].notna().all()
    assert metrics.loc[metrics[C.METRIC_NAME] == "kid", C.METRIC_STD].notna().all()
    info = folder.read_info()
    assert [entry["after_query"] for entry in info["retrain_log"]] == [5]
    assert [entry["model_version"] for entry in info["retrain_log"]] == [1]
    assert records[C.MODEL_VERSION].max() == 1


RESUME_CONFIG = config(budget=12, retrain={"k": 1e-3, "every": 5, "epochs": 0.25, "initial_epochs": 0.5},
                       metrics={"every": 4, "n_images": 3})


@pytest.fixture(scope="module")
def uninterrupted_run(fake_task_registered: None, tmp_path_factory: pytest.TempPathFactory) -> RunFolder:
    folder = run_folder(tmp_path_factory.mktemp("whole"), RESUME_CONFIG)
    assert execute_run(RESUME_CONFIG, folder) == C.STATUS_COMPLETED
    return folder


def assert_same_run(folder: RunFolder, reference: RunFolder) -> None:
    records, metrics = read_run(folder)
    reference_records, reference_metrics = read_run(reference)
    pd.testing.assert_frame_equal(records, reference_records)
    pd.testing.assert_frame_equal(metrics, reference_metrics)
    assert folder.read_info()["retrain_log"] == reference.read_info()["retrain_log"]


def test_run_is_reproducible(uninterrupted_run: RunFolder, tmp_path: Path) -> None:
    again = run_folder(tmp_path, RESUME_CONFIG)
    assert execute_run(RESUME_CONFIG, again) == C.STATUS_COMPLETED
    assert read_run(again)[0][C.MODEL_VERSION].max() == 3  # initial fine-tune + after queries 5 and 10
    assert_same_run(again, uninterrupted_run)


@pytest.mark.parametrize("stop_after", [1, 6, 9])  # after the initial fine-tune, right after a retraining, later
def test_resumed_run_gives_identical_records(uninterrupted_run: RunFolder, tmp_path: Path, stop_after: int) -> None:
    resumed = run_folder(tmp_path, RESUME_CONFIG)
    assert execute_run(RESUME_CONFIG, resumed, stop_after_batches=stop_after) == C.STATUS_RUNNING
    assert read_run(resumed)[0][C.QUERY].max() == stop_after - 1
    assert execute_run(RESUME_CONFIG, resumed) == C.STATUS_COMPLETED  # a fresh task and optimizer, from the checkpoint
    assert_same_run(resumed, uninterrupted_run)


# --- one real task --------------------------------------------------------------------------------


@pytest.mark.slow
def test_weighted_retraining_on_shapes_is_real_reproducible_and_resumable(tmp_path: Path) -> None:
    """A briefly trained `shapes` VQ-VAE (~15 s), fine-tuned for real every 2 queries; validity thresholds off."""
    from bench.tasks.image_task import TrainingSettings
    from bench.tasks.shapes import ShapesTask

    class BrieflyTrainedShapes(ShapesTask):
        # `prepare --quick` (1 epoch of 512 images) decodes blank images here: survival corr is NaN
        quick_training = TrainingSettings(epochs=4.0, n_images=1024, n_test_images=64)

    torch.set_num_threads(1)
    params = {"artifacts": str(tmp_path / "shapes"), "device": "cpu", "min_psnr_db": 0.0,
              "min_codebook_usage": 0.0, "min_survival_corr": -1.0}
    BrieflyTrainedShapes(**params).prepare(quick=True, progress=False)
    cfg = RunConfig(task="shapes", optimizer="random", seed=0, budget=5, n_initial=8,
                    retrain={"k": 1e-3, "every": 2, "epochs": 1.0})

    def fresh() -> tuple[Any, Recorder]:
        task = BrieflyTrainedShapes(**params)
        return task, Recorder(task.space, cfg.seed)

    task, optimizer = fresh()
    results = list(run(task, optimizer, cfg, preset_hash="test"))
    frame = algorithmic(pd.DataFrame([row for r in results for row in r.records]))
    assert frame.loc[~frame[C.IS_INIT], C.MODEL_VERSION].tolist() == [0, 0, 1, 1, 2]
    assert [r.retrain_stats is not None for r in results] == [False, False, True, False, True, False]
    # after each retraining the optimizer saw every image re-encoded by the fine-tuned VQ-VAE
    init = task.initial_data(cfg.seed, cfg.n_initial)
    images = np.concatenate([init.images, results[-1].state.query_images.astype(np.float32) / 255.0])
    np.testing.assert_array_equal(optimizer.seen[-1]["latents"], task.encode(images[:cfg.n_initial + 4]))
    assert optimizer.seen[-1]["version"] == 2

    # rerun from scratch, and resume from the checkpoint state after batch 3 with a fresh task
    task2, optimizer2 = fresh()
    again = algorithmic(pd.DataFrame([row for r in run(task2, optimizer2, cfg, preset_hash="test")
                                      for row in r.records]))
    pd.testing.assert_frame_equal(again, frame)
    task3, optimizer3 = fresh()
    head = [row for r in results[:4] for row in r.records]
    tail = [row for r in run(task3, optimizer3, cfg, preset_hash="test", resume=results[3].state)
            for row in r.records]
    pd.testing.assert_frame_equal(algorithmic(pd.DataFrame(head + tail)), frame)
