"""FID / KID: agreement with pytorch-fid, basic properties, the Inception plumbing, the reference cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from bench.core import constants as C
from bench.core.errors import UserError
from bench.tasks import metrics as M


def gaussian_features(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """Correlated Gaussian features: a fixed mixing (seed 0) of independent normals."""
    mixing = np.random.default_rng(0).standard_normal((d, d)) / np.sqrt(d) + np.eye(d)
    return scale * np.random.default_rng(seed).standard_normal((n, d)) @ mixing + shift


@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated:DeprecationWarning")  # inside pytorch-fid
@pytest.mark.parametrize(("d", "n"), [(16, 200), (128, 600), (128, 60)])  # the last one is singular
def test_frechet_distance_agrees_with_pytorch_fid(d: int, n: int) -> None:
    from pytorch_fid.fid_score import calculate_frechet_distance

    mu1, sigma1 = M.feature_statistics(gaussian_features(n, d, seed=1))
    mu2, sigma2 = M.feature_statistics(gaussian_features(n, d, seed=2, shift=0.3, scale=1.3))
    ours = M.frechet_distance(mu1, sigma1, mu2, sigma2)
    theirs = float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))
    assert ours == pytest.approx(theirs, rel=1e-4)


@pytest.mark.parametrize(("n", "d"), [(10, 64), (64, 64), (300, 64)])
def test_frechet_distance_to_features_low_rank_route_is_exact(n: int, d: int) -> None:
    features = gaussian_features(n, d, seed=3, shift=0.2)
    mu2, sigma2 = M.feature_statistics(gaussian_features(400, d, seed=4))
    expected = M.frechet_distance(*M.feature_statistics(features), mu2, sigma2)
    # the d x d route clips round-off eigenvalues of the singular sigma1: agreement to ~1e-8 there
    assert M.frechet_distance_to_features(features, mu2, sigma2) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_zero_for_identical_and_grows_with_shift() -> None:
    features = gaussian_features(500, 32, seed=1)
    mu, sigma = M.feature_statistics(features)
    assert abs(M.frechet_distance(mu, sigma, mu, sigma)) < 1e-8
    same = M.frechet_distance(mu, sigma, *M.feature_statistics(gaussian_features(500, 32, seed=2)))
    shifted = M.frechet_distance(mu, sigma, *M.feature_statistics(gaussian_features(500, 32, seed=2, shift=1.0)))
    # same distribution: only the finite-sample bias (~d²/n scale); a shift of 1 per dim adds ~d = 32
    assert 0 < same < 5
    assert shifted > same + 25


def test_frechet_distance_rejects_mismatched_statistics() -> None:
    with pytest.raises(ValueError, match="incompatible"):
        M.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_kid_is_unbiased_on_same_distribution_and_detects_a_shift() -> None:
    a = gaussian_features(1000, 16, seed=1)
    b = gaussian_features(1000, 16, seed=2)
    mean, std = M.kid(a, b, n_subsets=50, subset_size=200, seed=0)
    # unbiased: centred on 0 (a biased estimator would sit at ~ 2 E k(x,x) / m > 0)
    assert abs(mean) < 3 * std / np.sqrt(50) + 1e-3
    shifted_mean, _ = M.kid(a, gaussian_features(1000, 16, seed=2, shift=0.5), n_subsets=50, subset_size=200)
    assert shifted_mean > 20 * max(abs(mean), std / np.sqrt(50))
    assert M.kid(a, b, n_subsets=5, subset_size=100, seed=3) == M.kid(a, b, n_subsets=5, subset_size=100, seed=3)


def test_kid_matches_the_unbiased_formula_on_one_full_subset() -> None:
    a, b = gaussian_features(30, 4, seed=1), gaussian_features(30, 4, seed=2, shift=0.2)
    kernel = lambda x, y: (x @ y.T / 4 + 1) ** 3  # noqa: E731
    m = 30
    expected = ((kernel(a, a).sum() - np.trace(kernel(a, a))) / (m * (m - 1))
                + (kernel(b, b).sum() - np.trace(kernel(b, b))) / (m * (m - 1)) - 2 * kernel(a, b).mean())
    mean, std = M.kid(a, b, n_subsets=3, subset_size=1000)  # subset = whole sets, in any order
    assert mean == pytest.approx(expected, rel=1e-10) and std == pytest.approx(0, abs=1e-12)


# --- Inception path -----------------------------------------------------------------------------


def random_inception_weights(path: Path, seed: int = 0) -> Path:
    """A real pytorch-fid InceptionV3 state dict with fixed random (He) init: plumbing only, NOT FID."""
    import pytorch_fid.inception as fid_inception

    built: dict[str, torch.nn.Module] = {}
    original_builder = fid_inception._inception_v3

    def capture(*args: Any, **kwargs: Any) -> torch.nn.Module:
        built["model"] = original_builder(*args, **kwargs)
        return built["model"]

    def own_state(url: str, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        return built["model"].state_dict()  # the patched FID architecture, keys exactly as the real file

    generator = torch.Generator().manual_seed(seed)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fid_inception, "_inception_v3", capture)
        mp.setattr(fid_inception, "load_state_dict_from_url", own_state)
        fid_inception.fid_inception_v3()
    state = {}
    for name, tensor in built["model"].state_dict().items():
        if name.endswith("weight") and tensor.ndim > 1:  # conv / linear: He init keeps activations O(1)
            fan_in = tensor[0].numel()
            tensor = torch.randn(tensor.shape, generator=generator) * np.sqrt(2.0 / fan_in)
        state[name] = tensor.clone()
    torch.save(state, path)
    return path


def test_inception_path_end_to_end_with_test_weights(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    weights = random_inception_weights(tmp_path / M.INCEPTION_WEIGHTS_FILE)
    with pytest.warns(UserWarning, match="not FID"):
        extractor = M.InceptionFeatures(weights, device="cpu", batch_size=4)
    # random weights must never pass as FID: flagged in the label and as not reportable
    assert not extractor.reportable and extractor.label.startswith("inception-v3-pool3:UNVERIFIED-")
    rng = np.random.default_rng(0)
    images = rng.uniform(0.2, 0.4, size=(3, 3, 32, 32)).astype(np.float32)
    other = rng.uniform(0.6, 1.0, size=(3, 1, 32, 32)).astype(np.float32)  # grayscale is repeated to RGB
    features = extractor.features(np.concatenate([images, np.repeat(other, 3, axis=1)]))
    assert features.shape == (6, 2048) and np.isfinite(features).all()
    assert np.abs(features).mean() > 1e-4  # not the vanishing activations of torchvision's default init
    np.testing.assert_allclose(extractor.features(np.repeat(other, 3, axis=1)), features[3:], rtol=1e-5, atol=1e-6)
    assert np.allclose(extractor.features(other), features[3:], rtol=1e-5, atol=1e-6)
    a, b = features[:3], features[3:]
    assert M.kid(a, b, n_subsets=2)[0] > M.kid(a, a, n_subsets=2)[0]
    # through the run-time entry point: every row says these are not FID
    task = TinyImageTask()
    rows = M.image_set_metrics(task, images, "top", extractors=[extractor], references=["reference-high"],
                               reference_n=3, cache_dir=tmp_path / "cache")
    assert [r[C.METRIC_NAME] for r in rows] == ["fid", "kid"]
    assert all(r[C.METRIC_FEATURES] == extractor.label and r["reportable"] is False for r in rows)
    manifest = M.read_json(next((tmp_path / "cache" / task.name).glob("*.json")))
    assert manifest["reportable"] is False and manifest["features"] == extractor.label


def test_offline_without_weights_raises_a_user_error_saying_how(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # an empty hub cache
    with pytest.raises(UserError) as err:
        M.InceptionFeatures()
    message = str(err.value)
    assert M.INCEPTION_WEIGHTS_FILE in message and "--inception-weights" in message
    assert str(tmp_path / "torch-home" / "hub" / "checkpoints") in message and "\n" not in message
    with pytest.raises(UserError, match="does not exist"):
        M.InceptionFeatures(tmp_path / "missing.pth")
    # asking for Inception never silently falls back to task features
    task = TinyImageTask()
    task.metric_features = "inception"
    with pytest.raises(UserError, match="--inception-weights"):
        M.image_set_metrics(task, task.training_images("reference-train", 8, 0), "top", cache_dir=tmp_path)


def test_failed_download_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pytorch_fid.inception as fid_inception

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(fid_inception, "FID_WEIGHTS_URL", (tmp_path / "nowhere" / M.INCEPTION_WEIGHTS_FILE).as_uri())
    with pytest.raises(UserError, match="downloading the Inception weights failed"):
        M.resolve_inception_weights(download=True)


def test_not_an_inception_state_dict_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.warns(UserWarning), pytest.raises(UserError, match="not a pytorch-fid InceptionV3 state dict"):
        M.InceptionFeatures(path)


# --- task features and the reference cache --------------------------------------------------------


class TinyImageTask:
    """Just what image_set_metrics needs: a name, reference splits and a feature network."""

    name = "tiny-images"

    def __init__(self) -> None:
        self.feature_calls = 0
        self.net = torch.nn.Sequential(torch.nn.AvgPool2d(4), torch.nn.Flatten())  # 3x8x8 -> 12 features

    def training_images(self, split: str, n: int, seed: int) -> np.ndarray:
        brightness = {"reference-high": 0.7, "reference-train": 0.4}[split]
        rng = np.random.default_rng([seed, len(split)])
        return np.clip(brightness + 0.1 * rng.standard_normal((n, 3, 8, 8)), 0, 1).astype(np.float32)

    def feature_network(self) -> torch.nn.Module:
        self.feature_calls += 1
        return self.net


def test_image_set_metrics_rows_and_reference_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    task = TinyImageTask()
    extractor = M.TaskFeatures(task)
    assert extractor.label == "task-features:tiny-images"
    images = task.training_images("reference-high", 40, seed=5)
    rows = M.image_set_metrics(task, images, "top", extractors=[extractor], reference_n=200, cache_dir=tmp_path)
    assert [(r[C.METRIC_NAME], r[C.METRIC_REFERENCE]) for r in rows] == [
        ("fid", "reference-high"), ("kid", "reference-high"), ("fid", "reference-train"), ("kid", "reference-train")]
    for row in rows:
        assert row[C.METRIC_N] == 40 and row["reference_n"] == 200 and row[C.METRIC_SUBSET] == "top"
        assert row[C.METRIC_FEATURES] == "task-features:tiny-images" and row["reportable"]
    fid = {r[C.METRIC_REFERENCE]: r[C.METRIC_VALUE] for r in rows if r[C.METRIC_NAME] == "fid"}
    assert fid["reference-high"] < 0.1 * fid["reference-train"]  # the images are drawn like reference-high
    manifests = sorted((tmp_path / "tiny-images").glob("*.json"))
    assert len(manifests) == 2
    manifest = M.read_json(manifests[0])
    assert manifest["n"] == 200 and manifest["features"] == "task-features:tiny-images"
    assert manifest["reference"] in ("reference-high", "reference-train")

    # later calls: statistics come from memory (same task object) or disk (a new one), not from the network
    def no_features(images: np.ndarray) -> np.ndarray:
        raise AssertionError("reference features recomputed despite a valid cache entry")

    cached = M.reference_stats(task, "reference-high", extractor, 200, cache_dir=tmp_path)
    monkeypatch.setattr(extractor, "features", no_features)
    assert M.reference_stats(task, "reference-high", extractor, 200, cache_dir=tmp_path) is cached
    from_disk = M.reference_stats(TinyImageTask(), "reference-high", extractor, 200, cache_dir=tmp_path)
    assert from_disk is not cached and from_disk.manifest == cached.manifest
    np.testing.assert_array_equal(from_disk.sigma, cached.sigma)
    np.testing.assert_array_equal(from_disk.features, cached.features)
    # a different network is a different cache entry, never a stale hit
    with torch.no_grad():
        task.net = torch.nn.Sequential(torch.nn.AvgPool2d(2), torch.nn.Flatten())
    other = M.reference_stats(TinyImageTask(), "reference-high", M.TaskFeatures(task), 200, cache_dir=tmp_path)
    assert other.features.shape == (200, 48) and len(list((tmp_path / "tiny-images").glob("*.json"))) == 3


def test_configured_extractors_default_to_task_features(monkeypatch: pytest.MonkeyPatch) -> None:
    task = TinyImageTask()
    extractors = M.configured_extractors(task)
    assert [e.label for e in extractors] == ["task-features:tiny-images"]
    assert M.configured_extractors(task) is extractors and task.feature_calls == 1  # built once per task
    task = TinyImageTask()
    task.metric_features = "pixels"
    with pytest.raises(UserError, match="valid: task, inception"):
        M.configured_extractors(task)
