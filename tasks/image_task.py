"""The generic VQ-VAE image task: decode a code grid, score the image.

A concrete task supplies its data (:meth:`VQImageTask.training_images`) and its scorers; this
base class trains the VQ-VAE, runs the validity checks, writes and reads the artifacts folder
(``manifest.json`` + checkpoints), and implements the whole :class:`bench.task.RetrainableTask`
interface (batched encode/decode under ``torch.inference_mode``, weighted fine-tuning, model
snapshots, fingerprint).

Artifacts live in ``tasks/artifacts/<name>/`` of the repository, or ``$BENCH_ARTIFACTS/<name>``
when that variable is set, or wherever the ``artifacts`` task parameter says. A task refuses to
run (``UserError``) when they are missing, were made for another configuration, or failed a
validity check.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
import hashlib
import logging
import os
import time
import zlib
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from bench.core import constants as C
from bench.core.devices import resolve_device
from bench.core.errors import UserError
from bench.core.hashing import stable_hash
from bench.core.space import CodeGrid
from bench.core.task import Evaluation, InitialData, RetrainableTask
from bench.store.files import file_sha256, now_iso, read_json, write_json
from bench.tasks.code_prior import PriorTraining, TransformerCodePrior, load_prior, nll_per_code, save_prior, train_prior
from bench.tasks.vqvae import (VQVAE, VQVAEConfig, code_statistics, decode_np, encode_np, load_checkpoint, psnr_from_mse,
                         save_checkpoint, train_vqvae)

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
VQVAE_FILE = "vqvae.pt"
PRIOR_FILE = "prior.pt"
ARTIFACTS_ENV = "BENCH_ARTIFACTS"
#: the splits :meth:`VQImageTask.training_images` must serve
SPLITS = ("vqvae", "scorer", "test", "reference-high", "reference-train")
_STREAM_INITIAL = 101  # seed-sequence purpose of the initial design


def artifact_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every model file of an artifacts folder (not the manifest, not hidden files), by name."""
    return {p.name: file_sha256(p) for p in sorted(folder.iterdir())
            if p.is_file() and p.name != MANIFEST_FILE and not p.name.startswith(".")}


def default_artifacts_root() -> Path:
    """``$BENCH_ARTIFACTS`` when set, else ``tasks/artifacts`` next to this file."""
    env = os.environ.get(ARTIFACTS_ENV)
    return Path(env) if env else Path(__file__).resolve().parent / "artifacts"


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant or not finite."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if len(a) < 2 or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))) or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


@dataclass(frozen=True)
class TrainingSettings:
    """How ``bench prepare`` trains a task's VQ-VAE, and how many test images its checks use.

    ``epochs`` over ``n_images`` images of the "vqvae" split in batches of ``batch_size`` (also
    the batch size of weighted retraining's fine-tuning); ``n_test_images`` of the "test" split
    for the validity checks. Not part of the artifacts' configuration hash: the checks judge the
    result, whatever training produced it.
    """

    epochs: float = 30.0
    n_images: int = 20000
    batch_size: int = 64
    n_test_images: int = 500


class VQImageTask(RetrainableTask):
    """Base of every VQ-VAE image task: maximise a scorer over decoded code grids."""

    # --- defaults a subclass overrides --------------------------------------------------------
    #: VQ-VAE architecture (the paper's: 8x8 grid, 256 codes x 64 dims, 64/128/256 channels)
    vqvae_config: ClassVar[VQVAEConfig] = VQVAEConfig()
    #: how ``bench prepare`` trains the VQ-VAE and how many images the validity checks use
    training: ClassVar[TrainingSettings] = TrainingSettings()
    #: the same for ``bench prepare --quick`` (smoke tests: checks are run and recorded, not enforced)
    quick_training: ClassVar[TrainingSettings] = TrainingSettings(epochs=1.0, n_images=256, n_test_images=64)
    #: how ``bench prepare`` trains the code prior on the VQ-VAE's training encodings (full, ``--quick``)
    prior_training: ClassVar[PriorTraining] = PriorTraining(epochs=10.0)
    quick_prior_training: ClassVar[PriorTraining] = PriorTraining(epochs=1.0)
    #: store the VQ-VAE weights as float16 (halves the size of shipped artifacts)
    half_precision_checkpoint: ClassVar[bool] = False
    #: base of every data seed; each split gets its own seed derived from it (see :meth:`split_seed`)
    data_seed: ClassVar[int] = 0
    #: validity thresholds (the constructor can override them, e.g. for tiny test data)
    min_psnr_db: ClassVar[float] = 18.0
    min_codebook_usage: ClassVar[float] = 0.05
    min_survival_corr: ClassVar[float] = 0.9
    #: artifact folder name; default: the registered task name without preset
    artifact_name: ClassVar[str | None] = None
    default_n_initial = 100

    def __init__(self, artifacts: str | None = None, device: str = "auto", n_initial: int | None = None, *,
                 min_psnr_db: float | None = None, min_codebook_usage: float | None = None,
                 min_survival_corr: float | None = None, metric_features: str | None = None,
                 inception_weights: str | None = None, inception_download: bool = False,
                 metric_reference_n: int | None = None) -> None:
        self._artifacts = Path(artifacts).expanduser() if artifacts else None
        # Metric settings are task parameters so they enter the run id (tasks.metrics reads them
        # from the task; nothing is read from the environment).
        self.inception_download = bool(inception_download)
        for key, value in (("metric_features", metric_features), ("inception_weights", inception_weights),
                           ("metric_reference_n", metric_reference_n)):
            if value is not None:
                setattr(self, key, value)
        self.device = resolve_device(device)
        if n_initial is not None:
            self.default_n_initial = int(n_initial)
        # Instance attributes shadow the class defaults only when given.
        for key, value in (("min_psnr_db", min_psnr_db), ("min_codebook_usage", min_codebook_usage),
                           ("min_survival_corr", min_survival_corr)):
            if value is not None:
                setattr(self, key, float(value))
        self._model: VQVAE | None = None
        self._opt_state: dict | None = None
        self._manifest: dict[str, Any] | None = None
        self._space: CodeGrid | None = None
        self._prior: TransformerCodePrior | None = None
        self._pretrained: VQVAE | None = None  # the shipped VQ-VAE, the prior's code space, once fine-tuned
        self._fine_tuned = False

    # --- hooks ----------------------------------------------------------------------------------
    @abstractmethod
    def training_images(self, split: str, n: int, seed: int) -> np.ndarray:
        """``n`` images (float32, (n, C, S, S) in [0, 1]) of ``split`` (one of :data:`SPLITS`).

        "vqvae": the VQ-VAE's training distribution (e.g. the less-smiling faces); "scorer": the
        full range the scorer learns; "test": held-out data for the validity checks (the task
        decides whether it spans the VQ-VAE's range or the scorer's full range); "reference-high" / "reference-train": FID reference sets. Deterministic
        in (split, n, seed).
        """

    @abstractmethod
    def train_scorers(self, artifact_dir: Path, device: torch.device, progress: bool, quick: bool) -> dict[str, Any]:
        """Train the scorer(s), save them into ``artifact_dir``; return figures for the manifest."""

    @abstractmethod
    def load_scorers(self, artifact_dir: Path, device: torch.device) -> None:
        """Load the scorer(s) saved by :meth:`train_scorers` (called before any scoring)."""

    @abstractmethod
    def score_images(self, images: np.ndarray) -> np.ndarray:
        """Black-box scores (float64, (n,)) of images (float32, (n, C, S, S) in [0, 1])."""

    def heldout_scores(self, images: np.ndarray) -> np.ndarray | None:
        """Scores of an independently trained second scorer, or None when the task has none."""
        return None

    def score_tensor(self, images: Tensor) -> Tensor | None:
        """Scores of an image tensor already on :attr:`device` (the forward-only path that
        ``bench perf evaluate`` uses as its ceiling); None when the task has no tensor path."""
        return None

    def feature_network(self) -> nn.Module | None:
        """Task-specific feature extractor (images -> (N, d)) for "task-feature FID", or None."""
        return None

    def artifact_config(self) -> dict[str, Any]:
        """Settings of the task's data and scorers that the artifacts depend on (hashed into the
        manifest: artifacts made with other settings are refused)."""
        return {}

    def training_settings(self, quick: bool = False) -> TrainingSettings:
        """The settings of a full build, or of a ``--quick`` smoke build."""
        return self.quick_training if quick else self.training

    def space_mask(self) -> np.ndarray | None:
        """Optional (grid, grid, K) mask of allowed codes under the current model; default none."""
        return None

    # --- artifacts ------------------------------------------------------------------------------
    @property
    def artifact_dir(self) -> Path:
        """Folder of this task's manifest and checkpoints."""
        if self._artifacts is not None:
            return self._artifacts
        return default_artifacts_root() / self.base_name

    @property
    def base_name(self) -> str:
        """The task's name without preset (or :attr:`artifact_name`): default artifacts folder and data stream."""
        return self.artifact_name or (self.name.split("/")[0] if self.name else type(self).__name__.lower())

    def split_seed(self, split: str) -> int:
        """Data seed of ``split``: distinct per split, derived from :attr:`data_seed` (no leakage)."""
        seq = np.random.SeedSequence([int(self.data_seed), zlib.crc32(split.encode())])
        return int(seq.generate_state(1)[0] & 0x7FFFFFFF)

    def config_hash(self) -> str:
        """Hash of everything the artifacts depend on (VQ-VAE config, data seed, task settings)."""
        return stable_hash(self._hashed_config())

    def _hashed_config(self) -> dict[str, Any]:
        return {"class": type(self).__qualname__, "vqvae": self.vqvae_config.to_dict(),
                "data_seed": int(self.data_seed), "task": self.artifact_config()}

    def _prepare_hint(self, retrain: bool = False) -> str:
        return f"run `bench prepare --task {self.name or 'NAME'}{' --retrain' if retrain else ''}`"

    def _thresholds(self) -> dict[str, tuple[float, str]]:
        return {"psnr_db": (float(self.min_psnr_db), ">="),
                "codebook_usage": (float(self.min_codebook_usage), ">="),
                "survival_corr": (float(self.min_survival_corr), ">=")}

    def _read_manifest(self) -> dict[str, Any]:
        folder = self.artifact_dir
        path = folder / MANIFEST_FILE
        if not path.is_file():
            raise UserError(f"task {self.name!r}: no artifacts in {str(folder)!r} (missing {MANIFEST_FILE}); "
                            f"{self._prepare_hint()}")
        try:
            manifest = read_json(path)
        except ValueError as exc:
            raise UserError(f"task {self.name!r}: {str(path)!r} is not valid JSON ({exc}); "
                            f"{self._prepare_hint(retrain=True)}") from None
        if manifest.get("config_hash") != self.config_hash():
            raise UserError(f"task {self.name!r}: artifacts in {str(folder)!r} were prepared for another configuration "
                            f"(hash {manifest.get('config_hash')} != {self.config_hash()}); "
                            f"{self._prepare_hint(retrain=True)}")
        if manifest.get("status") != "complete":
            raise UserError(f"task {self.name!r}: artifacts in {str(folder)!r} are incomplete (preparation was "
                            f"interrupted); {self._prepare_hint(retrain=True)}")
        if manifest.get("training", {}).get("quick"):
            # Smoke-test artifacts (``prepare --quick``): their checks are recorded, not enforced;
            # runs on them say so in run.json (:meth:`provenance`) and reports keep them apart.
            log.warning("task %r: artifacts in %s are a --quick smoke build; validity checks not enforced",
                        self.name, folder)
            return manifest
        # The stored figures are judged by this instance's thresholds (the defaults, or what the
        # task parameters say), so a permissive configuration can use artifacts on purpose.
        failed = []
        for key, (threshold, op) in self._thresholds().items():
            value = manifest.get("checks", {}).get(key, {}).get("value")
            try:
                ok = value is not None and float(value) >= threshold
            except (TypeError, ValueError):
                ok = False
            if not ok:
                failed.append(f"{key} = {value} (needs {op} {threshold})")
        if failed:
            raise UserError(f"task {self.name!r}: artifacts in {str(folder)!r} failed their validity checks: "
                            f"{'; '.join(failed)}; {self._prepare_hint(retrain=True)}")
        return manifest

    def _ensure_loaded(self) -> VQVAE:
        if self._model is None:
            manifest = self._read_manifest()
            self._model = load_checkpoint(self.artifact_dir / VQVAE_FILE, self.device)
            if self._model.config != self.vqvae_config:
                raise UserError(f"task {self.name!r}: {VQVAE_FILE} does not match the task's VQ-VAE config; "
                                f"{self._prepare_hint(retrain=True)}")
            self.load_scorers(self.artifact_dir, self.device)
            self._manifest = manifest
        return self._model

    @property
    def model(self) -> VQVAE:
        """The current VQ-VAE (loaded from the artifacts on first use)."""
        return self._ensure_loaded()

    @property
    def manifest(self) -> dict[str, Any]:
        """The artifacts' manifest (figures of the validity checks, configuration, seeds)."""
        self._ensure_loaded()
        assert self._manifest is not None
        return self._manifest

    def provenance(self) -> dict[str, Any]:
        """``quick`` (smoke-test artifacts), the artifacts' configuration hash and whether they passed
        their checks when prepared (a full build used with other thresholds may run anyway)."""
        manifest = self.manifest
        return {"quick": bool(manifest.get("training", {}).get("quick")), "artifacts": manifest.get("config_hash"),
                "checks_passed": bool(manifest.get("passed"))}

    # --- prepare --------------------------------------------------------------------------------
    def prepare(self, retrain: bool = False, device: torch.device | str | None = None, quick: bool = False,
                progress: bool = True) -> dict[str, Any]:
        """Train (or load) every model, run the validity checks, and return the manifest.

        With ``retrain`` or without complete artifacts of this configuration, the scorers and the
        VQ-VAE are trained from scratch (``quick``: tiny data and epochs) and ``manifest.json`` is
        (re)written with the check figures; otherwise the stored models are loaded and checked
        again on the same test set (the manifest is not rewritten).
        """
        if device is not None:
            self.device = resolve_device(device)
        folder = self.artifact_dir
        existing = None
        if not retrain and (folder / MANIFEST_FILE).is_file():
            try:
                existing = read_json(folder / MANIFEST_FILE)
            except ValueError:
                existing = None
        # Complete artifacts of this configuration are reused whatever ``quick`` says: a quick
        # prepare must never overwrite full (e.g. shipped) artifacts unless asked to retrain.
        reusable = (existing is not None and existing.get("config_hash") == self.config_hash()
                    and existing.get("status") == "complete" and (folder / VQVAE_FILE).is_file())
        if reusable:
            assert existing is not None
            self._model = load_checkpoint(folder / VQVAE_FILE, self.device)
            self.load_scorers(folder, self.device)
            was_quick = bool(existing.get("training", {}).get("quick", quick))
            if not (folder / PRIOR_FILE).is_file():  # artifacts made before priors existed: add one
                settings = self.training_settings(was_quick)
                images = self.training_images("vqvae", settings.n_images, self.split_seed("vqvae"))
                existing = self._with_prior(existing, images, was_quick, progress)
            checks = self.validity_checks(quick=was_quick)
            manifest = {**existing, **checks, "reloaded": True}
            self._manifest = manifest
            return manifest
        return self._train_all(quick=quick, progress=progress)

    def _train_all(self, quick: bool, progress: bool) -> dict[str, Any]:
        folder = self.artifact_dir
        config = self._hashed_config()  # first: it reads the task's data source, which may be missing
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create artifacts folder {str(folder)!r}: {exc.strerror}; "
                            f"pass --artifacts DIR") from None
        manifest: dict[str, Any] = {
            "task": self.name, "config_hash": stable_hash(config), "config": config,
            "data_seeds": {split: self.split_seed(split) for split in SPLITS}, "status": "preparing",
            "passed": False, "created": now_iso(), "torch": torch.__version__, "device": str(self.device),
        }
        write_json(folder / MANIFEST_FILE, manifest)  # a half-prepared folder must never look usable
        (folder / VQVAE_FILE).unlink(missing_ok=True)
        self._model = None
        self._opt_state = None
        self._prior = None

        t0 = time.perf_counter()
        scorer_info = self.train_scorers(folder, self.device, progress, quick)
        scorer_s = time.perf_counter() - t0

        settings = self.training_settings(quick)
        t1 = time.perf_counter()
        images = self.training_images("vqvae", settings.n_images, self.split_seed("vqvae"))
        data_s = time.perf_counter() - t1
        model = VQVAE(self.vqvae_config, seed=self.split_seed("vqvae-init"))
        t2 = time.perf_counter()
        stats, _ = train_vqvae(model, images, epochs=settings.epochs, seed=self.split_seed("vqvae-train"),
                               batch_size=settings.batch_size, device=self.device, progress=progress,
                               checkpoint_path=folder / VQVAE_FILE, desc=f"{self.name} vq-vae")
        vqvae_s = time.perf_counter() - t2
        save_checkpoint(model, folder / VQVAE_FILE, half=self.half_precision_checkpoint)
        # Check exactly what is stored (float16 weights included), not the in-memory model.
        self._model = load_checkpoint(folder / VQVAE_FILE, self.device)
        self.load_scorers(folder, self.device)
        (folder / PRIOR_FILE).unlink(missing_ok=True)
        manifest = self._with_prior(manifest, images, quick, progress, write=False)
        del images
        checks = self.validity_checks(quick=quick)
        manifest.update({
            "status": "complete", "scorers": scorer_info,
            "training": {"quick": quick, "epochs": settings.epochs, "n_images": settings.n_images,
                         "batch_size": settings.batch_size,
                         "stats": stats, "seconds": {"scorers": scorer_s, "vqvae_data": data_s, "vqvae": vqvae_s,
                                                     "total": time.perf_counter() - t0}},
            "files": artifact_hashes(folder),
            **checks,
        })
        write_json(folder / MANIFEST_FILE, manifest)
        self._manifest = manifest
        return manifest

    def _with_prior(self, manifest: dict[str, Any], images: np.ndarray, quick: bool, progress: bool,
                    write: bool = True) -> dict[str, Any]:
        """Train the code prior on the stored VQ-VAE's codes of ``images`` (the "vqvae" split), save
        it, and return ``manifest`` with its figures (NLL per code on train and test codes, against
        log K for uniform codes) and the artifacts' file hashes; ``write``: also rewrite the manifest."""
        folder = self.artifact_dir
        model = self._model if self._model is not None else self.model
        prior, info = train_prior(encode_np(model, images, self.device), model.config.codebook_size,
                                  self.split_seed("prior-train"), device=self.device, progress=progress,
                                  training=self.quick_prior_training if quick else self.prior_training,
                                  desc=f"{self.name} prior")
        save_prior(prior, folder / PRIOR_FILE)
        self._prior = load_prior(folder / PRIOR_FILE, self.device)  # judge what is stored (float16)
        n_test = self.training_settings(quick).n_test_images
        test_codes = encode_np(model, self.training_images("test", n_test, self.split_seed("test")), self.device)
        info.update({"file": PRIOR_FILE, "test_nll_per_code": nll_per_code(self._prior, test_codes),
                     "uniform_nll_per_code": float(np.log(model.config.codebook_size))})
        manifest = {**manifest, "prior": info,
                    "files": artifact_hashes(folder)}
        if write:
            write_json(folder / MANIFEST_FILE, manifest)
        return manifest

    def validity_checks(self, quick: bool = False) -> dict[str, Any]:
        """PSNR, codebook usage and property survival on the "test" split, against the thresholds.

        Property survival is corr(score(originals), score(VQ reconstructions)); the held-out
        scorer's survival is reported too when the task has one (not a pass/fail check).
        """
        model = self.model if self._model is None else self._model
        n = self.training_settings(quick).n_test_images
        images = self.training_images("test", n, self.split_seed("test"))
        codes = encode_np(model, images, self.device)
        recon = decode_np(model, codes, self.device)
        mse = float(np.mean((recon - images) ** 2))
        usage = code_statistics(codes, model.config.codebook_size)
        original_scores = np.asarray(self.score_images(images), dtype=np.float64)
        recon_scores = np.asarray(self.score_images(recon), dtype=np.float64)
        values = {"psnr_db": psnr_from_mse(mse), "codebook_usage": usage["codebook_usage"],
                  "survival_corr": pearson(original_scores, recon_scores)}
        checks = {}
        for key, (threshold, op) in self._thresholds().items():
            value = values[key]
            checks[key] = {"value": value, "threshold": threshold, "op": op,
                           "passed": bool(np.isfinite(value) and value >= threshold)}
        figures: dict[str, Any] = {
            "n_test": n, "codes_used": usage["codes_used"], "perplexity": usage["perplexity"],
            "score_original_mean": float(original_scores.mean()), "score_original_std": float(original_scores.std()),
            "score_recon_mean": float(recon_scores.mean()), "score_recon_std": float(recon_scores.std()),
            "score_mae": float(np.mean(np.abs(original_scores - recon_scores))),
        }
        held_orig = self.heldout_scores(images)
        if held_orig is not None:
            held_recon = self.heldout_scores(recon)
            assert held_recon is not None
            figures["heldout_survival_corr"] = pearson(held_orig, held_recon)
            figures["heldout_vs_scorer_corr"] = pearson(held_orig, original_scores)
        return {"checks": checks, "figures": figures, "passed": all(c["passed"] for c in checks.values())}

    # --- RetrainableTask ------------------------------------------------------------------------
    @property
    def space(self) -> CodeGrid:
        if self._space is None:
            cfg = self.vqvae_config
            self._space = CodeGrid(cfg.grid, cfg.grid, cfg.codebook_size, self.space_mask())
        return self._space

    def initial_data(self, seed: int, n: int) -> InitialData:
        """``n`` images of the "vqvae" split drawn from a stream of (task, seed) only, encoded and scored."""
        stream = np.random.SeedSequence([int(seed), _STREAM_INITIAL, zlib.crc32(self.base_name.encode())])
        images = self.training_images("vqvae", n, int(stream.generate_state(1)[0] & 0x7FFFFFFF))
        latents = self.encode(images)
        scores = np.asarray(self.score_images(images), dtype=np.float64)
        return InitialData(latents, scores, images)

    def encode(self, images: np.ndarray) -> np.ndarray:
        return encode_np(self.model, images, self.device)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        return decode_np(self.model, self.space.validate(latents), self.device)

    def evaluate(self, latents: np.ndarray, batch_size: int = 256) -> Evaluation:
        """Scores, decoded images and held-out scores of a batch of latents.

        With a :meth:`score_tensor` path each batch goes from the decoder to the scorer without a
        numpy round trip (the decoder's NHWC output is what convolutions run fastest on); the
        images are converted once, for the evaluation's ``images``."""
        latents = self.space.validate(latents)
        model = self.model
        images = np.empty((len(latents), model.config.in_channels, model.config.image_size,
                           model.config.image_size), dtype=np.float32)
        scores = np.empty(len(latents), dtype=np.float64)
        model.eval()
        with torch.inference_mode():
            for i in range(0, len(latents), batch_size):
                decoded = model.decode(torch.from_numpy(latents[i:i + batch_size]).to(self.device))
                images[i:i + batch_size] = decoded.float().cpu().numpy()
                batch_scores = self.score_tensor(decoded)
                scores[i:i + batch_size] = (self.score_images(images[i:i + batch_size]) if batch_scores is None
                                            else batch_scores.double().cpu().numpy())
        held = self.heldout_scores(images)
        extras = {} if held is None else {C.HELDOUT_SCORE: np.asarray(held, dtype=np.float64)}
        loglik = self.prior_log_likelihood(latents, images)
        if loglik is not None:
            extras[C.PRIOR_LOGLIK] = loglik
        return Evaluation(scores, images, extras)

    def _stored_prior(self) -> TransformerCodePrior | None:
        """The artifacts' code prior (None for artifacts prepared before priors existed)."""
        self._ensure_loaded()
        if self._prior is None and (self.artifact_dir / PRIOR_FILE).is_file():
            self._prior = load_prior(self.artifact_dir / PRIOR_FILE, self.device)
        return self._prior

    def code_prior(self) -> TransformerCodePrior | None:
        """The prior learned on the shipped VQ-VAE's codes; None once weighted retraining changed the codes."""
        return None if self._fine_tuned else self._stored_prior()

    def prior_log_likelihood(self, latents: np.ndarray, images: np.ndarray) -> np.ndarray | None:
        """Realism diagnostic: the prior's log-likelihood of each latent, in the shipped VQ-VAE's code space.

        Before any retraining that is the latent itself; after it, the shipped VQ-VAE's encoding
        of the decoded image, so the yardstick stays the same across model versions and methods.
        """
        prior = self._stored_prior()
        if prior is None:
            return None
        if self._fine_tuned:
            if self._pretrained is None:
                self._pretrained = load_checkpoint(self.artifact_dir / VQVAE_FILE, self.device)
            latents = encode_np(self._pretrained, images, self.device)
        return prior.log_likelihood(latents)

    def codebook(self) -> np.ndarray:
        """The current VQ-VAE's code vectors, float32 (codebook_size, code_dim)."""
        return self.model.quantizer.embed.detach().float().cpu().numpy().copy()

    def fine_tune(self, images: np.ndarray, weights: np.ndarray, epochs: float, seed: int) -> dict[str, Any]:
        stats, self._opt_state = train_vqvae(self.model, images, epochs=epochs, seed=seed, weights=weights,
                                             batch_size=self.training.batch_size, device=self.device,
                                             opt_state=self._opt_state, progress=False)
        self._space = None
        self._fine_tuned = True
        return stats

    def model_state(self) -> dict[str, Any]:
        return {"vqvae": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
                "optimizer": _to_cpu(copy.deepcopy(self._opt_state)) if self._opt_state else None,
                "fine_tuned": self._fine_tuned}

    def load_model_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["vqvae"])
        self._opt_state = copy.deepcopy(state.get("optimizer"))
        self._fine_tuned = bool(state.get("fine_tuned", True))
        self._space = None

    def fingerprint(self) -> bytes:
        """SHA-256 of the checkpoint files and the configuration hash."""
        self._ensure_loaded()
        h = hashlib.sha256(f"{self.name}:{self.config_hash()}".encode())
        for name, digest in artifact_hashes(self.artifact_dir).items():
            h.update(name.encode())
            h.update(digest.encode())
        return h.digest()

    def set_metrics(self, images: np.ndarray, subset: str) -> list[dict[str, Any]]:
        """FID/KID rows for a set of queried images: delegated to ``tasks.metrics`` when present."""
        try:
            from bench.tasks import metrics
        except ModuleNotFoundError as exc:
            if exc.name != "bench.tasks.metrics":
                raise
            return []
        compute = getattr(metrics, "image_set_metrics", None)
        return [] if compute is None else list(compute(self, images, subset))


def _to_cpu(obj: Any) -> Any:
    """A nested structure of tensors with every tensor moved to the CPU (picklable snapshots)."""
    if isinstance(obj, Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj
