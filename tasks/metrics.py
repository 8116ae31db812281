"""Set-level image metrics: Fréchet distance (FID) and kernel inception distance (KID).

Two feature extractors, which give two *different* metrics and are labelled as such in every
output row (:data:`bench.constants.METRIC_FEATURES`):

* :class:`InceptionFeatures` — pytorch-fid's InceptionV3 pool3 (2048-d) with weights from a
  local file; this is "FID" as in the literature (GPU cluster: ~4 img/s on 2 CPU cores).
* :class:`TaskFeatures` — the task's own feature network (``task.feature_network()``), trained on
  the task's data and separate from the scorers: "task-feature FID", for offline/CPU use.

Reference statistics (features, mean, covariance of a task's reference split) are computed once
per (task, reference set, extractor, n) and cached on disk with a JSON manifest per entry.

``bench perf fid`` (:mod:`bench.cli.perf_fid`) compares :func:`frechet_distance` with pytorch-fid's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

import numpy as np
import scipy.linalg

from bench.core import constants as C
from bench.core.devices import resolve_device
from bench.core.errors import UserError
from bench.store.files import atomic_write, file_sha256, now_iso, read_json, write_json
from bench.store.provenance import package_versions

#: where cached reference statistics go (a storage location only: it never changes a value; every
#: setting that does is a task parameter, so it enters the run id)
ENV_METRICS_CACHE = "BENCH_METRICS_CACHE"

#: pytorch-fid's weights file; torch-hub names embed the first 8 hex digits of its SHA-256
INCEPTION_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_SHA256_PREFIX = "6726825d"
INCEPTION_LABEL = "inception-v3-pool3"
TASK_FEATURES_PREFIX = "task-features"

DEFAULT_REFERENCES = ("reference-high", "reference-train")
DEFAULT_REFERENCE_N = 2000
REFERENCE_SEED = 20230613  # reference images are one fixed draw per (task, split, n)
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_SEED = 0
#: bump when the cached content or its computation changes
_CACHE_FORMAT = 1

# --- Fréchet distance and KID -----------------------------------------------------------------


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr sqrt(sigma1 sigma2) for symmetric PSD matrices, from real eigenvalues.

    The eigenvalues of sigma1 sigma2 equal those of the symmetric PSD matrix A^T sigma2 A for any
    A with A A^T = sigma1 (Cholesky factor, or the symmetric square root when sigma1 is
    singular), so no complex ``sqrtm`` is needed. Round-off negatives are clipped to zero.
    """
    try:
        factor = scipy.linalg.cholesky(sigma1, lower=True, check_finite=False)
    except np.linalg.LinAlgError:  # singular (e.g. fewer samples than dimensions)
        evals, evecs = scipy.linalg.eigh(sigma1, driver="evd", check_finite=False)
        factor = evecs * np.sqrt(np.clip(evals, 0.0, None))[None, :]
    middle = factor.T @ sigma2 @ factor
    middle = (middle + middle.T) / 2.0
    evals = scipy.linalg.eigvalsh(middle, driver="evd", check_finite=False)
    return float(np.sqrt(np.clip(evals, 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance ||mu1 - mu2||² + Tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2)), in float64.

    Agrees with ``pytorch_fid.fid_score.calculate_frechet_distance`` (see ``bench perf fid``)
    and never fails on nearly singular products.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"incompatible statistics: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    sigma1 = (sigma1 + sigma1.T) / 2.0  # covariances are symmetric up to round-off
    sigma2 = (sigma2 + sigma2.T) / 2.0
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * _trace_sqrt_product(sigma1, sigma2))


def frechet_distance_to_features(features: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """:func:`frechet_distance` between the statistics of (n, d) ``features`` and (mu2, sigma2).

    With fewer samples than dimensions (e.g. 100 images, 2048-d Inception features) the sample
    covariance is F^T F of rank < n, with F the centred features / sqrt(n - 1), and the
    eigenvalues of sigma1 sigma2 are those of the small n x n matrix F sigma2 F^T: exact, and no
    d x d eigendecomposition.
    """
    features = np.asarray(features, dtype=np.float64)
    mu1, sigma1 = feature_statistics(features)
    n, dim = features.shape
    if n > dim:
        return frechet_distance(mu1, sigma1, mu2, sigma2)
    mu2, sigma2 = np.asarray(mu2, np.float64), np.asarray(sigma2, np.float64)
    if mu2.shape != (dim,) or sigma2.shape != (dim, dim):
        raise ValueError(f"incompatible statistics: {dim}-d features vs mu {mu2.shape}, sigma {sigma2.shape}")
    factor = (features - mu1) / math.sqrt(n - 1)
    middle = factor @ ((sigma2 + sigma2.T) / 2.0) @ factor.T
    evals = scipy.linalg.eigvalsh((middle + middle.T) / 2.0, check_finite=False)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.sqrt(np.clip(evals, 0.0, None)).sum())


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, n-1) covariance of (n, d) features, in float64 as pytorch-fid computes them."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need (n >= 2, d) features, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def kid(features_a: np.ndarray, features_b: np.ndarray, n_subsets: int = KID_SUBSETS,
        subset_size: int = KID_SUBSET_SIZE, seed: int = KID_SEED) -> tuple[float, float]:
    """Kernel inception distance: mean and std over subsets of the unbiased MMD² estimate.

    Polynomial kernel k(x, y) = (x·y / d + 1)³ (Bińkowski et al. 2018, as in torch-fidelity).
    Each subset draws ``min(subset_size, n_a, n_b)`` rows of each set without replacement from a
    generator seeded with ``seed``. The estimator drops the kernel diagonals, so it is unbiased:
    its mean is ~0 for two samples of one distribution (and may be negative).
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need (n, d) features of equal d, got {a.shape} and {b.shape}")
    m = min(int(subset_size), len(a), len(b))
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(a)} and {len(b)}")
    dim = a.shape[1]
    rng = np.random.default_rng(seed)
    estimates = np.empty(int(n_subsets))
    for s in range(int(n_subsets)):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        k_xx = (x @ x.T / dim + 1.0) ** 3
        k_yy = (y @ y.T / dim + 1.0) ** 3
        k_xy = (x @ y.T / dim + 1.0) ** 3
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        estimates[s] = within - 2.0 * k_xy.mean()
    return float(estimates.mean()), float(estimates.std())


# --- feature extractors -----------------------------------------------------------------------


class FeatureExtractor(Protocol):
    """Images (float32 (N, C, H, W) in [0, 1]) -> features (float64 (N, d))."""

    #: the metric's feature label in every output row, e.g. "inception-v3-pool3"
    label: str
    #: False when the numbers must not be reported as that metric (e.g. unverified weights)
    reportable: bool

    def identity(self) -> str:
        """Everything the features depend on (weights hash, device type): part of cache keys."""

    def features(self, images: np.ndarray) -> np.ndarray:
        """Features of a batch of images."""


def _sha256_state(module: Any) -> str:
    """Hash of a torch module's architecture (its repr) and its parameters and buffers."""
    digest = hashlib.sha256(repr(module).encode())
    for name, tensor in sorted(module.state_dict().items()):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}:{array.dtype}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _features(module: Any, images: np.ndarray, device: Any, batch_size: int) -> np.ndarray:
    """Flattened float64 outputs (N, d) of ``module`` on ``images``, batched."""
    from bench.tasks.inference import batched_inference

    def forward(batch: Any) -> Any:
        out = module(batch)
        if isinstance(out, (list, tuple)):  # pytorch-fid's InceptionV3 returns a list of blocks
            out = out[0]
        return out.reshape(len(batch), -1).double()

    if len(images) == 0:
        raise ValueError("no images to compute features of")
    return batched_inference(module, forward, np.asarray(images, dtype=np.float32), device, batch_size)


def default_inception_weights() -> Path:
    """Where pytorch-fid (torch hub) caches its weights: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE


@contextlib.contextmanager
def _pytorch_fid_loads_from(path: Path) -> Iterator[None]:
    """Make pytorch-fid's ``InceptionV3`` load its state dict from ``path`` (no network, no copy).

    pytorch-fid calls ``load_state_dict_from_url(FID_WEIGHTS_URL)``, which would copy a
    ``file://`` URL into the hub cache; swapping that loader for a local ``torch.load`` for the
    duration of the construction has the same effect without writing anything.
    """
    import pytorch_fid.inception as fid_inception
    import torch

    def load_local(url: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return torch.load(path, map_location="cpu", weights_only=True)

    original = fid_inception.load_state_dict_from_url
    fid_inception.load_state_dict_from_url = load_local
    try:
        yield
    finally:
        fid_inception.load_state_dict_from_url = original


def resolve_inception_weights(weights_path: str | os.PathLike[str] | None = None, download: bool = False) -> Path:
    """The local InceptionV3 weights file: the argument (task parameter ``inception_weights``), else the hub cache.

    Without a local file, the weights are downloaded into the hub cache only when ``download``
    (task parameter ``inception_download``) allows it; otherwise, or when the download fails, a
    :class:`UserError` says how to provide them. There is never a fallback to another metric.
    """
    how = (f"download {INCEPTION_WEIGHTS_FILE} (96 MB, from pytorch-fid's GitHub release) on a machine with "
           f"network access, then pass it with --inception-weights PATH (task parameter inception_weights), "
           f"or copy it to {default_inception_weights()}, or set the task parameter inception_download=true "
           "where the network allows downloads; or use task-feature FID (--metric-features task), which is a "
           "different metric")
    given = weights_path or None
    if given is not None:
        path = Path(given).expanduser()
        if not path.is_file():
            raise UserError(f"Inception weights file {str(path)!r} does not exist; {how}")
        return path
    cached = default_inception_weights()
    if cached.is_file():
        return cached
    if not download:
        raise UserError(f"Inception FID needs the InceptionV3 weights and none are available offline; {how}")
    import pytorch_fid.inception as fid_inception
    import torch.hub

    try:
        torch.hub.load_state_dict_from_url(fid_inception.FID_WEIGHTS_URL, progress=False)
    except Exception as exc:  # noqa: BLE001 - URLError, HTTPError, timeouts: all mean "no weights"
        raise UserError(f"downloading the Inception weights failed ({type(exc).__name__}: {exc}); {how}") from None
    return cached


class InceptionFeatures:
    """pytorch-fid's InceptionV3 2048-d pool3 features, weights from a local file.

    Images are resized to 299 px and scaled to [-1, 1] inside pytorch-fid's module, as in
    ``pytorch_fid.fid_score``. Weights whose SHA-256 does not start with the official prefix
    (e.g. random test weights) get the label ``inception-v3-pool3:UNVERIFIED-<sha8>`` and
    ``reportable = False``: such numbers are not FID and must never be reported as FID.
    """

    def __init__(self, weights_path: str | os.PathLike[str] | None = None, device: Any = "cpu",
                 batch_size: int = 50, download: bool = False) -> None:
        from pytorch_fid.inception import InceptionV3

        self.weights_path = resolve_inception_weights(weights_path, download)
        self.weights_sha256 = file_sha256(self.weights_path)
        self.reportable = self.weights_sha256.startswith(INCEPTION_SHA256_PREFIX)
        self.label = INCEPTION_LABEL if self.reportable else f"{INCEPTION_LABEL}:UNVERIFIED-{self.weights_sha256[:8]}"
        if not self.reportable:
            warnings.warn(f"Inception weights {self.weights_path} are not pytorch-fid's official file "
                          f"(sha256 {self.weights_sha256[:8]}...); outputs are labelled {self.label!r} "
                          "and are not FID", stacklevel=2)
        self.device = resolve_device(device)
        self.batch_size = int(batch_size)
        try:
            with _pytorch_fid_loads_from(self.weights_path):
                model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
        except (RuntimeError, KeyError, OSError, EOFError) as exc:
            raise UserError(f"{str(self.weights_path)!r} is not a pytorch-fid InceptionV3 state dict "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
        self.model = model.eval().to(self.device)

    def identity(self) -> str:
        """Weights hash and device type (GPU and CPU features differ in the last digits)."""
        return f"{INCEPTION_LABEL}:{self.weights_sha256[:16]}:{self.device.type}"

    def features(self, images: np.ndarray) -> np.ndarray:
        """(N, 2048) pool3 features of images in [0, 1]; grayscale images are repeated to 3 channels."""
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4:
            raise ValueError(f"expected images of shape (N, C, H, W), got {images.shape}")
        if images.shape[1] == 1:
            images = np.repeat(images, 3, axis=1)
        return _features(self.model, images, self.device, self.batch_size)


class TaskFeatures:
    """Features from the task's own network (``task.feature_network()``): "task-feature FID".

    Labelled ``task-features:<task>`` everywhere: it is a different metric from Inception FID
    and its values are only comparable within one task and one feature network.
    """

    reportable = True

    def __init__(self, task: Any, batch_size: int = 256) -> None:
        network = task.feature_network()
        if network is None:
            raise UserError(f"task {task.name!r} has no feature network for task-feature FID; use Inception FID "
                            "(--metric-features inception --inception-weights PATH)")
        self.network = network.eval()
        self.label = f"{TASK_FEATURES_PREFIX}:{task.name}"
        self.batch_size = int(batch_size)
        parameters = list(self.network.parameters()) + list(self.network.buffers())
        self.device = parameters[0].device if parameters else resolve_device("cpu")
        self._identity = f"{self.label}:{_sha256_state(self.network)[:16]}:{self.device.type}"

    def identity(self) -> str:
        """Task name, hash of the network's weights and device type."""
        return self._identity

    def features(self, images: np.ndarray) -> np.ndarray:
        """(N, d) features of images in [0, 1]."""
        return _features(self.network, images, self.device, self.batch_size)


# --- cached reference statistics --------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceStats:
    """Features and statistics of one reference set under one extractor."""

    reference: str  # split name, e.g. "reference-high"
    features_label: str
    n: int
    features: np.ndarray  # float64 (n, d), for KID
    mu: np.ndarray
    sigma: np.ndarray
    manifest: dict[str, Any]


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "+" for ch in text)


def default_cache_dir() -> Path:
    """``$BENCH_METRICS_CACHE``, else ``$XDG_CACHE_HOME/latent-bench/reference-stats``."""
    if os.environ.get(ENV_METRICS_CACHE):
        return Path(os.environ[ENV_METRICS_CACHE]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "latent-bench" / "reference-stats"


def reference_stats(task: Any, reference: str, extractor: FeatureExtractor, n: int, *,
                    seed: int = REFERENCE_SEED, cache_dir: Path | None = None) -> ReferenceStats:
    """Statistics of ``n`` images of the task's ``reference`` split, from the cache when valid.

    An entry is ``<cache>/<task>/<reference>__<extractor>__n<n>__s<seed>__<key>.npz`` with a
    ``.json`` manifest beside it (written last, atomically: an entry without a manifest is
    ignored). The key hashes the extractor identity and the reference images themselves, so a
    change of feature network, device type or data generator invalidates the entry. Within one
    task object the result is also kept in memory (``_metric_references``): reference images
    depend on the task's data only, not on its (fine-tuned) generative model.
    """
    memo: dict[tuple[Any, ...], ReferenceStats] = task.__dict__.setdefault("_metric_references", {})
    memo_key = (reference, extractor.identity(), int(n), int(seed), str(cache_dir))
    if memo_key not in memo:
        memo[memo_key] = _cached_reference_stats(task, reference, extractor, int(n), int(seed), cache_dir)
    return memo[memo_key]


def _cached_reference_stats(task: Any, reference: str, extractor: FeatureExtractor, n: int, seed: int,
                            cache_dir: Path | None) -> ReferenceStats:
    images = np.asarray(task.training_images(reference, int(n), int(seed)), dtype=np.float32)
    if len(images) != n:
        raise ValueError(f"task {task.name!r} returned {len(images)} {reference!r} images, expected {n}")
    images_sha = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()
    key = hashlib.sha256(json.dumps([_CACHE_FORMAT, extractor.identity(), images_sha]).encode()).hexdigest()[:12]
    folder = (cache_dir or default_cache_dir()) / _slug(task.name)
    stem = f"{_slug(reference)}__{_slug(extractor.label)}__n{n}__s{seed}__{key}"
    data_path, manifest_path = folder / f"{stem}.npz", folder / f"{stem}.json"
    if manifest_path.is_file() and data_path.is_file():
        try:
            manifest = read_json(manifest_path)
            with np.load(data_path) as data:
                if manifest.get("key") == key and len(data["features"]) == n:
                    return ReferenceStats(reference, extractor.label, n, data["features"], data["mu"],
                                          data["sigma"], manifest)
        except (OSError, ValueError, KeyError) as exc:  # unreadable entry: recompute and overwrite it
            warnings.warn(f"ignoring unreadable reference-statistics cache entry {data_path}: {exc}", stacklevel=2)
    features = extractor.features(images)
    mu, sigma = feature_statistics(features)
    manifest = {"key": key, "format": _CACHE_FORMAT, "task": task.name, "reference": reference,
                "features": extractor.label, "extractor_identity": extractor.identity(),
                "reportable": bool(extractor.reportable), "n": int(n), "seed": int(seed),
                "images_sha256": images_sha, "feature_dim": int(features.shape[1]), "data_file": data_path.name,
                "created": now_iso(), "packages": package_versions()}

    def write_npz(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, features=features, mu=mu, sigma=sigma)

    try:
        atomic_write(data_path, write_npz)
        write_json(manifest_path, manifest)  # last: an entry without a manifest is never read
    except OSError as exc:  # a read-only cache costs time, not correctness
        warnings.warn(f"could not cache reference statistics in {folder} ({exc.strerror}); "
                      f"set {ENV_METRICS_CACHE} to a writable folder", stacklevel=2)
    return ReferenceStats(reference, extractor.label, n, features, mu, sigma, manifest)


# --- metrics of a set of images ---------------------------------------------------------------


def _setting(task: Any, attribute: str, default: Any) -> Any:
    """A metrics setting: the task's attribute (a task parameter) when set, else the default."""
    value = getattr(task, attribute, None)
    return default if value is None else value


def configured_extractors(task: Any) -> list[FeatureExtractor]:
    """The task's feature extractors, from its ``metric_features`` parameter ("task", "inception").

    Built once per task object and kept on it (``_metric_extractors``), since loading Inception
    is expensive. Default: task features only.
    """
    cached = getattr(task, "_metric_extractors", None)
    if cached is not None:
        return cached
    spec = _setting(task, "metric_features", "task")
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    extractors: list[FeatureExtractor] = []
    for name in names:
        if name == "task":
            extractors.append(TaskFeatures(task))
        elif name == "inception":
            device = getattr(task, "metric_device", None) or "auto"
            extractors.append(InceptionFeatures(getattr(task, "inception_weights", None), device=device,
                                                download=bool(getattr(task, "inception_download", False))))
        else:
            raise UserError(f"unknown metric features {name!r}; valid: task, inception")
    if not extractors:
        raise UserError(f"no metric features configured for task {task.name!r}; valid: task, inception")
    task._metric_extractors = extractors
    return extractors


def image_set_metrics(task: Any, images: np.ndarray, subset: str, *,
                      extractors: Sequence[FeatureExtractor] | None = None,
                      references: Sequence[str] | None = None, reference_n: int | None = None,
                      cache_dir: Path | None = None) -> list[dict[str, Any]]:
    """FID and KID rows of ``images`` against each reference set, for each feature extractor.

    Used by ``VQImageTask.set_metrics``. ``task`` needs ``name``, ``training_images(split, n,
    seed)`` and, for task features, ``feature_network()``. Defaults come from the task's
    ``metric_references`` / ``metric_reference_n`` attributes, else ("reference-high", "reference-train") and 2,000 images. Each row holds the metric, value,
    std (KID: across subsets), n (images in the set), reference name, reference_n, the feature
    label and whether it is reportable. ``subset`` (e.g. "top", "last") is only echoed.
    """
    images = np.asarray(images, dtype=np.float32)
    extractors = list(extractors) if extractors is not None else configured_extractors(task)
    references = list(references or getattr(task, "metric_references", None) or DEFAULT_REFERENCES)
    reference_n = int(reference_n or _setting(task, "metric_reference_n", DEFAULT_REFERENCE_N))
    rows: list[dict[str, Any]] = []
    for extractor in extractors:
        features = extractor.features(images)
        for reference in references:
            ref = reference_stats(task, reference, extractor, reference_n, cache_dir=cache_dir)
            kid_mean, kid_std = kid(features, ref.features)
            common = {C.METRIC_SUBSET: subset, C.METRIC_N: len(images), C.METRIC_REFERENCE: reference,
                      "reference_n": reference_n, C.METRIC_FEATURES: extractor.label,
                      "reportable": bool(extractor.reportable)}
            rows.append({C.METRIC_NAME: "fid", C.METRIC_VALUE: frechet_distance_to_features(features, ref.mu, ref.sigma),
                         C.METRIC_STD: math.nan, **common})
            rows.append({C.METRIC_NAME: "kid", C.METRIC_VALUE: kid_mean, C.METRIC_STD: kid_std, **common})
    return rows
