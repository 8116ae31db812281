"""``smile-synthetic``: make procedural faces smile, in the latent grid of a VQ-VAE (embedded default).

The offline stand-in for the "Happy People" CelebA-Dialog smile task (``celeba-dialog/smiling``,
``docs/data.md``). Faces come from
:mod:`tasks.faces` with a known smile degree in [0, 5]. As in the paper:

* the VQ-VAE trains only on faces with smile below :data:`SMILE_THRESHOLD` (split "vqvae");
* the black-box score is a CNN regressor (:class:`tasks.scorers.SmileScorer`) trained on the
  full smile range (split "scorer");
* a second regressor with another architecture, seed and data split
  (:class:`tasks.scorers.HeldoutSmileScorer`, split "scorer-heldout") is the held-out check
  (``heldout_score`` column);
* a third network predicting every generator factor (:class:`tasks.scorers.FeatureNetwork`,
  split "features") supplies the features of the task-feature FID/KID.

The validity checks (PSNR, codebook usage, property survival >= 0.9) run on the "test" split,
faces of the VQ-VAE's own distribution; the manifest also reports survival over the full smile
range ("test-full"), where smiles above the threshold come back weaker.

Every split has its own generator seed (``split_seed(split)`` mixed with the split name, so even
an equal seed never yields the same faces in two splits); the manifest records them all. The
VQ-VAE is narrower than the paper's (32/64/128 channels, float16 checkpoint) so that ``bench
prepare`` fits in the CPU budget and the artifacts in the repo, with the paper's 8x8 grid and
256 codes of 64 dims.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from bench.core.errors import UserError
from bench.core.registry import register_task
from bench.tasks import faces
from bench.tasks.image_task import TrainingSettings, VQImageTask, pearson
from bench.tasks.scorers import (FeatureNetwork, HeldoutSmileScorer, SmileScorer, build_network, load_half, predict,
                           r2_score, save_half, train_regressor)
from bench.tasks.vqvae import VQVAEConfig, decode_np, encode_np

#: the VQ-VAE and the initial design see only faces below this smile degree (the paper: <= 2 of 5)
SMILE_THRESHOLD = 2.5
#: the "reference-high" FID set: the paper's smile-3-to-5 images
HIGH_SMILE = 3.0
#: smile range of every split (the scorers' splits cover the full range)
SPLIT_SMILE_RANGES: dict[str, tuple[float, float]] = {
    "vqvae": (0.0, SMILE_THRESHOLD),
    "reference-train": (0.0, SMILE_THRESHOLD),
    "reference-high": (HIGH_SMILE, faces.SMILE_MAX),
    "test": (0.0, SMILE_THRESHOLD),
    "test-full": (0.0, faces.SMILE_MAX),
    "scorer": (0.0, faces.SMILE_MAX),
    "scorer-heldout": (0.0, faces.SMILE_MAX),
    "scorer-test": (0.0, faces.SMILE_MAX),
    "features": (0.0, faces.SMILE_MAX),
}
SCORER_FILE = "scorer.pt"
HELDOUT_FILE = "scorer_heldout.pt"
FEATURES_FILE = "features.pt"
#: (training images, epochs) of each network, by its data split; quick mode uses QUICK_* instead
SCORER_TRAINING: dict[str, tuple[int, float]] = {"scorer": (8000, 6.0), "scorer-heldout": (6000, 5.0),
                                                 "features": (5000, 4.0)}
QUICK_SCORER_TRAINING: dict[str, tuple[int, float]] = {"scorer": (256, 0.5), "scorer-heldout": (256, 0.5),
                                                       "features": (256, 0.5)}
N_SCORER_TEST = 1000
QUICK_N_SCORER_TEST = 128


@register_task("smile-synthetic")
class SmileSyntheticTask(VQImageTask):
    """Maximise the smile (CNN regressor, 0-5) of procedural faces decoded from an 8x8x256 VQ-VAE grid."""

    vqvae_config: ClassVar[VQVAEConfig] = VQVAEConfig(channels=(32, 64, 128), res_channels=64, code_dim=64,
                                                     codebook_size=256, lr=1.5e-3)
    training: ClassVar[TrainingSettings] = TrainingSettings(epochs=25.0, n_images=8000, batch_size=32,
                                                            n_test_images=1000)
    quick_training: ClassVar[TrainingSettings] = TrainingSettings(epochs=1.0, n_images=256, batch_size=32,
                                                                  n_test_images=64)
    half_precision_checkpoint: ClassVar[bool] = True
    min_psnr_db: ClassVar[float] = 20.0
    default_n_initial = 100
    #: (training images, epochs) of each scorer network, by its data split
    scorer_training: ClassVar[dict[str, tuple[int, float]]] = SCORER_TRAINING
    #: the generator factor the scorers regress and the splits select on
    target_factor: str = "smile"

    def __init__(self, artifacts: str | None = None, device: str = "auto", n_initial: int | None = None,
                 **options: Any) -> None:
        super().__init__(artifacts, device, n_initial, **options)
        self._scorer: SmileScorer | None = None
        self._heldout: HeldoutSmileScorer | None = None
        self._features: FeatureNetwork | None = None

    # --- data ---------------------------------------------------------------------------------
    def faces(self, split: str, n: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``n`` faces of ``split`` and their factors; the generator seed mixes ``seed`` and the split."""
        if split not in SPLIT_SMILE_RANGES:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLIT_SMILE_RANGES)}")
        generator_seed = int(np.random.SeedSequence([int(seed), zlib.crc32(split.encode())]).generate_state(1)[0])
        return self.generate(int(n), generator_seed, SPLIT_SMILE_RANGES[split])

    def generate(self, n: int, seed: int, target_range: tuple[float, float]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``n`` faces whose target factor lies in ``target_range`` (smile-synthetic: the smile-only generator)."""
        return faces.generate(n, seed, target_range)

    def feature_targets(self, factors: dict[str, np.ndarray]) -> np.ndarray:
        """The feature network's regression targets (every generator factor, as continuous columns)."""
        return faces.factor_targets(factors)

    @property
    def n_feature_targets(self) -> int:
        """Number of columns of :meth:`feature_targets`."""
        return len(faces.FACTOR_TARGETS)

    def training_images(self, split: str, n: int, seed: int) -> np.ndarray:
        """Faces of ``split``: smile < 2.5 for "vqvae", "test" and "reference-train", >= 3 for
        "reference-high", the full range [0, 5] for the scorers' splits and "test-full"."""
        return self.faces(split, n, seed)[0]

    def artifact_config(self) -> dict[str, Any]:
        return {"generator": faces.GENERATOR_VERSION, "smile_threshold": SMILE_THRESHOLD, "high_smile": HIGH_SMILE,
                "splits": {k: list(v) for k, v in SPLIT_SMILE_RANGES.items()},
                "scorer_training": {k: list(v) for k, v in self.scorer_training.items()}}

    def validity_checks(self, quick: bool = False) -> dict[str, Any]:
        """The generic checks on the "test" split, which is the VQ-VAE's own distribution (smile
        below the threshold), plus figures on the full smile range ("test-full").

        Survival is checked where the VQ-VAE was trained: faces smiling more than any training
        face come back smiling less (the decoder never saw them), which is the gap the
        optimizers and weighted retraining are benchmarked on, so the full-range figures are
        reported, not required.
        """
        result = super().validity_checks(quick)
        n = self.training_settings(quick).n_test_images
        images, factors = self.faces("test-full", n, self.split_seed("test-full"))
        recon = decode_np(self.model, encode_np(self.model, images, self.device), self.device)
        original, reconstructed = self.score_images(images), self.score_images(recon)
        high = factors[self.target_factor] >= HIGH_SMILE
        result["figures"].update({
            "survival_corr_full_range": pearson(original, reconstructed),
            "recon_score_vs_true_smile_corr_full_range": pearson(reconstructed, factors[self.target_factor]),
            "psnr_db_full_range": float(10 * np.log10(1 / max(float(np.mean((recon - images) ** 2)), 1e-12))),
            "score_high_smiles_original_mean": float(original[high].mean()) if high.any() else float("nan"),
            "score_high_smiles_recon_mean": float(reconstructed[high].mean()) if high.any() else float("nan"),
        })
        return result

    # --- scorers ------------------------------------------------------------------------------
    def train_scorers(self, artifact_dir: Path, device: torch.device, progress: bool, quick: bool) -> dict[str, Any]:
        """Train the smile scorer, the held-out scorer and the feature network; save them as float16.

        Figures (from the saved float16 weights) on an independent "scorer-test" split: R^2 of
        each scorer against the true smile, their correlation, and the feature network's R^2.
        """
        plan = QUICK_SCORER_TRAINING if quick else self.scorer_training
        # "test-full" is used by the validity checks; its seed is recorded here with the others.
        seeds = {split: self.split_seed(split) for split in (*plan, "scorer-test", "test-full")}
        info: dict[str, Any] = {"data_seeds": seeds, "training": {}}
        networks: dict[str, tuple[type[nn.Module], dict[str, Any], str]] = {
            "scorer": (SmileScorer, {}, SCORER_FILE),
            "scorer-heldout": (HeldoutSmileScorer, {}, HELDOUT_FILE),
            "features": (FeatureNetwork, {"n_targets": self.n_feature_targets}, FEATURES_FILE),
        }
        for split, (n, epochs) in plan.items():
            cls, kwargs, filename = networks[split]
            network = build_network(cls, seeds[split] + 1, **kwargs)
            images, factors = self.faces(split, n, seeds[split])
            if split == "features":
                targets = _standardise(self.feature_targets(factors))
            else:
                targets = factors[self.target_factor]
            stats = train_regressor(network, images, targets, epochs=epochs, seed=seeds[split] + 2, device=device,
                                    progress=progress, desc=f"{self.name} {split}")
            save_half(network, artifact_dir / filename)
            info["training"][split] = {"n_images": n, "epochs": epochs, **stats}
            del images
        self.load_scorers(artifact_dir, device)
        n_test = QUICK_N_SCORER_TEST if quick else N_SCORER_TEST
        images, factors = self.faces("scorer-test", n_test, seeds["scorer-test"])
        main, held = self.score_images(images), self.heldout_scores(images)
        assert held is not None
        targets = _standardise(self.feature_targets(factors))
        assert self._features is not None
        predicted = predict(_Regress(self._features), images, device)
        info.update({
            "n_test": n_test,
            "scorer_r2": r2_score(factors[self.target_factor], main),
            "heldout_r2": r2_score(factors[self.target_factor], held),
            "heldout_vs_scorer_corr": pearson(main, held),
            # Mean R^2 over the standardised factors (the feature network's training objective).
            "features_r2_mean": float(np.mean([r2_score(targets[:, k], predicted[:, k])
                                               for k in range(targets.shape[1])])),
        })
        return info

    def load_scorers(self, artifact_dir: Path, device: torch.device) -> None:
        """Load the three float16 networks of ``artifact_dir`` (float32 in memory, eval mode)."""
        missing = [f for f in (SCORER_FILE, HELDOUT_FILE, FEATURES_FILE) if not (artifact_dir / f).is_file()]
        if missing:
            raise UserError(f"task {self.name!r}: {', '.join(missing)} missing in {str(artifact_dir)!r}; "
                            f"{self._prepare_hint()} --retrain")
        self._scorer = load_half(SmileScorer, artifact_dir / SCORER_FILE, device)
        self._heldout = load_half(HeldoutSmileScorer, artifact_dir / HELDOUT_FILE, device)
        self._features = load_half(FeatureNetwork, artifact_dir / FEATURES_FILE, device,
                                   n_targets=self.n_feature_targets)

    def _networks(self) -> tuple[SmileScorer, HeldoutSmileScorer, FeatureNetwork]:
        if self._scorer is None or self._heldout is None or self._features is None:
            self._ensure_loaded()
        assert self._scorer is not None and self._heldout is not None and self._features is not None
        return self._scorer, self._heldout, self._features

    def score_images(self, images: np.ndarray) -> np.ndarray:
        """Smile degree in [0, 5] predicted by the main CNN scorer (batched, inference mode)."""
        return predict(self._networks()[0], images, self.device)

    def score_tensor(self, images: Tensor) -> Tensor:
        """Main-scorer smile of an image tensor already on :attr:`device`."""
        with torch.inference_mode():
            return self._networks()[0](images)

    def heldout_scores(self, images: np.ndarray) -> np.ndarray:
        """Smile degree predicted by the independently trained held-out scorer."""
        return predict(self._networks()[1], images, self.device)

    def feature_network(self) -> nn.Module:
        """The factor-regression network's 64-d penultimate features (images -> (N, 64))."""
        return self._networks()[2]


class _Regress(nn.Module):
    """``network.regress`` as a forward pass (to batch it through :func:`tasks.scorers.predict`)."""

    def __init__(self, network: FeatureNetwork) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: Tensor) -> Tensor:
        return self.network.regress(images)


def _standardise(targets: np.ndarray) -> np.ndarray:
    """Columns scaled to zero mean and unit variance (the feature network's regression targets)."""
    return (targets - targets.mean(0)) / np.maximum(targets.std(0), 1e-6)
