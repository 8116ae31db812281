"""``celeba-dialog/<attribute>`` and ``smile-celeba``: the paper's tasks on real CelebA faces from a local folder.

The folder holds CelebA in one of the layouts :mod:`tasks.celeba_data` recognises (torchvision's
flat layout, the official Google Drive layout with ``Img/``, ``Anno/`` and ``Eval/``, or either
with the images left in ``img_align_celeba.zip``), directly in ``root`` or in ``root/celeba``;
``docs/data.md`` describes them. Images listed in the annotations but missing on disk are
skipped and counted, up to ``max_missing_fraction`` (1 % by default).

The folder comes from the task parameter ``root`` (``--task-opt root=/data/celeba``) or the
environment variable ``CELEBA_ROOT``. Nothing is downloaded.

torchvision's ``CelebA(download=False)`` is not used to read it: it also requires
``identity_CelebA.txt``, ``list_bbox_celeba.txt`` and ``list_landmarks_align_celeba.txt`` and
verifies the MD5 of all five annotation files, so any subset of CelebA (and the mini folders
of the tests) fails with "Dataset not found or corrupted".

Labels: the CelebA-Dialog fine-grained degrees (0-5) of ``attribute`` (Bangs, Eyeglasses,
No_Beard, Smiling or Young), read from ``combined_annotation.txt`` by its header names
(:func:`tasks.celeba_data.read_dialog`; the CelebA-HQ variant goes through
``CelebA-HQ-to-CelebA-mapping.txt``). As in the paper, the VQ-VAE trains on degree <=
``max_degree`` (2), the scorer is a 6-class classifier whose score is the expected degree
sum_k k p_k in [0, 5], and the FID reference set is degrees 3-5 of the test partition. Without
the Dialog file the task stops with an error naming it; CelebA's binary attribute is used only
with ``labels=attribute`` (printed, and recorded in the manifest), and then the scorer is a
binary classifier whose score is its **logit** (unbounded, so the top of the range is not
flattened by a saturating probability).

Images are center-cropped (``crop`` px square, 148 by default) and resized to 64x64. Splits:
"vqvae" and "scorer" come from the train partition ("vqvae" only the low degrees, or the faces
whose scorer score is <= ``vqvae_score_threshold`` when set), "test" from the test partition
(all degrees: property survival needs the full score range), "reference-high" the high degrees
of the test partition, "reference-train" the low degrees of the valid partition.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor, nn

from bench.core.errors import UserError
from bench.core.registry import register_task
from bench.tasks.celeba_cache import ImageCache, cache_key, default_cache_dir
from bench.tasks.celeba_data import (DIALOG_ATTRIBUTES, DIALOG_FILE, HQ_MAPPING_FILE, DialogLabels, ImageSource,
                                     check_images, dialog_search_dirs, find_file, find_layout, read_attributes,
                                     read_dialog, read_partition, square_crop)
from bench.tasks.image_task import TrainingSettings, VQImageTask
from bench.tasks.vqvae import CHANNELS_LAST, save_torch

ROOT_ENV = "CELEBA_ROOT"
#: task name suffix of each Dialog attribute (``celeba-dialog/<suffix>``)
ATTRIBUTE_SLUGS = {"Bangs": "bangs", "Eyeglasses": "eyeglasses", "No_Beard": "beard", "Smiling": "smiling",
                   "Young": "age"}
#: the value of CelebA's binary attribute at the end that Dialog degree 5 describes: the Dialog
#: columns No_Beard and Young keep CelebA's names but grade beard length and age (degree 0 = no
#: beard, the youngest faces), so their "high" end is CelebA's -1 (has a beard, not young)
BINARY_HIGH_VALUE = {"Bangs": 1, "Eyeglasses": 1, "No_Beard": -1, "Smiling": 1, "Young": -1}
SMILE_ATTRIBUTE = "Smiling"
PARTITIONS = {"train": 0, "valid": 1, "test": 2}
IMAGE_SIZE = 64
N_DIALOG_DEGREES = 6

log = logging.getLogger(__name__)


class CelebAFolder:
    """Annotations of a local CelebA folder (any accepted layout) and a cache of its 64x64 images (uint8).

    Images listed in the annotations but absent from the image folder or zip are skipped and
    counted (:attr:`availability`), up to ``max_missing_fraction`` of them. Shared, not copied,
    by deep copies of the task: it is read-only data.
    """

    def __init__(self, root: str | Path, crop: int = 148, max_missing_fraction: float = 0.01,
                 dialog: str | Path | None = None, jpeg_draft: bool = False, cache_dir: Path | None = None) -> None:
        self.root = Path(root).expanduser()
        self.crop = int(crop)
        self.layout = find_layout(self.root, ROOT_ENV)
        self.base = self.layout.base
        self.names, self.attr_names, self.attrs = read_attributes(self.layout.attributes)
        self.partition = read_partition(self.layout.partition, self.names, self.layout.attributes)
        self.smiling = self.binary(SMILE_ATTRIBUTE) == 1
        self._dialog_path = None if dialog is None else Path(dialog).expanduser()
        self._dialog: DialogLabels | None = None
        self.source = ImageSource(self.layout.images)
        self.availability = check_images(self.names, self.source, self.layout.attributes, float(max_missing_fraction))
        if self.availability.missing:
            log.warning("CelebA: skipping %d listed images missing from %s (e.g. %s)", len(self.availability.missing),
                        self.source.path, ", ".join(self.availability.missing[:3]))
        self.jpeg_draft = bool(jpeg_draft)
        self.cache_dir = cache_dir
        self._cache: ImageCache | None = None

    @property
    def available(self) -> np.ndarray:
        """Mask of the annotated images whose file exists."""
        return self.availability.present

    def __deepcopy__(self, memo: dict) -> CelebAFolder:
        return self

    def dialog_search_dirs(self) -> list[Path]:
        """Folders searched for the CelebA-Dialog file (when no explicit path is given)."""
        return dialog_search_dirs(self.base, self.root)

    def dialog(self, needed_by: str) -> DialogLabels:
        """The CelebA-Dialog degrees (read on first use); a one-line error when the file is absent."""
        if self._dialog is None:
            dirs = self.dialog_search_dirs()
            path = self._dialog_path or find_file(DIALOG_FILE, dirs)
            if path is None or not path.is_file():
                where = str(path) if self._dialog_path else ", ".join(str(d) for d in dirs)
                raise UserError(f"{needed_by} needs the CelebA-Dialog labels {DIALOG_FILE}: not found (looked in "
                                f"{where}); download it (docs/data.md) into the CelebA folder, pass --task-opt "
                                f"dialog=FILE, or use CelebA's binary attribute with --task-opt labels=attribute")
            mapping = find_file(HQ_MAPPING_FILE, [path.parent, *dirs])
            self._dialog = read_dialog(path, self.names, mapping, self.layout.attributes)
            log.info("CelebA-Dialog: %s labels %d of %d CelebA images%s", path, self._dialog.n_matched,
                     len(self.names), f" (CelebA-HQ names mapped by {mapping})" if self._dialog.hq_mapping else "")
        return self._dialog

    def binary(self, attribute: str) -> np.ndarray:
        """CelebA's binary ``attribute`` as 0/1, 1 at the end that Dialog degree 5 describes."""
        if attribute not in self.attr_names:
            raise UserError(f"{self.layout.attributes}: line 2 lists no {attribute!r} attribute; expected the "
                            f"40 CelebA attribute names")
        return (self.attrs[:, self.attr_names.index(attribute)] == BINARY_HIGH_VALUE[attribute]).astype(np.int64)

    def images(self, indices: np.ndarray) -> np.ndarray:
        """float32 (n, 3, 64, 64) images in [0, 1] of the given annotation indices."""
        return self.images_uint8(indices).astype(np.float32) / 255.0

    def images_uint8(self, indices: np.ndarray) -> np.ndarray:
        """uint8 (n, 3, 64, 64) images of the given annotation indices (decoded once into the disk cache)."""
        return self.cache.read(indices)

    @property
    def cache(self) -> ImageCache:
        """The memory-mapped 64x64 cache of this folder's images (:mod:`tasks.celeba_cache`)."""
        if self._cache is None:
            settings = {"crop": self.crop, "size": IMAGE_SIZE, "jpeg_draft": self.jpeg_draft}
            key = cache_key(self.source.path, self.names, settings)
            self._cache = ImageCache(self.cache_dir or default_cache_dir(), key, len(self.names),
                                     (3, IMAGE_SIZE, IMAGE_SIZE), self._load)
        return self._cache

    def _load(self, index: int) -> np.ndarray:
        name = self.names[index]
        try:
            with Image.open(self.source.open(name)) as img:
                return square_crop(img, self.crop, IMAGE_SIZE, self.jpeg_draft)
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
            raise UserError(f"{self.source.describe(name)}: not a readable image ({exc}); expected an aligned "
                            f"CelebA JPEG") from None


class SmileCNN(nn.Module):
    """Small convolutional classifier: four stride-2 conv blocks, global average pool, linear head."""

    def __init__(self, width: int = 32, n_outputs: int = 1, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(int(seed))
        widths = [3, width, 2 * width, 4 * width, 4 * width]
        with torch.device("meta"):
            layers: list[nn.Module] = []
            for a, b in zip(widths[:-1], widths[1:]):
                layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.BatchNorm2d(b), nn.ReLU()]
            self.trunk = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.head = nn.Linear(widths[-1], n_outputs)
        self.to_empty(device="cpu")
        with torch.no_grad():  # default-like init from our own generator (the global RNG stays untouched)
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=gen)
                    bound = 1 / math.sqrt(module.weight[0].numel())
                    nn.init.uniform_(module.bias, -bound, bound, generator=gen)
                elif isinstance(module, nn.BatchNorm2d):
                    module.reset_parameters()
                    module.reset_running_stats()

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x * 2.0 - 1.0))


def _score_from_logits(logits: Tensor) -> Tensor:
    """Binary head: the logit. 6-class head: expected degree sum_k k p_k."""
    if logits.shape[1] == 1:
        return logits[:, 0]
    degrees = torch.arange(logits.shape[1], device=logits.device, dtype=logits.dtype)
    return (logits.softmax(1) * degrees).sum(1)


def train_classifier(model: SmileCNN, images: np.ndarray, labels: np.ndarray, *, epochs: float, seed: int,
                     device: torch.device, batch_size: int = 128, progress: bool = True, desc: str = "scorer") -> float:
    """Train with Adam (BCE for one output, cross-entropy otherwise), horizontal-flip augmentation;
    returns the mean loss of the last epoch. ``images`` are uint8 (n, 3, 64, 64), converted per batch
    (the full float32 set would take 4x the memory)."""
    from tqdm import tqdm

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xC1A5]))
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = len(images)
    batch_size = min(batch_size, n)
    steps = max(1, math.ceil(epochs * n / batch_size))
    order = np.concatenate([rng.permutation(n) for _ in range(math.ceil(steps * batch_size / n))])
    flips = rng.random(steps * batch_size) < 0.5
    losses = []
    for step in tqdm(range(steps), desc=desc, unit="step", disable=not progress, leave=False):
        idx = order[step * batch_size:(step + 1) * batch_size]
        x = (torch.from_numpy(images[idx]).to(device).float() / 255.0).contiguous(memory_format=CHANNELS_LAST)
        flip = torch.from_numpy(flips[step * batch_size:(step + 1) * batch_size]).to(device)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        y = torch.from_numpy(labels[idx]).to(device)
        logits = model(x)
        if logits.shape[1] == 1:
            loss = F.binary_cross_entropy_with_logits(logits[:, 0], y.float())
        else:
            loss = F.cross_entropy(logits, y.long())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    tail = max(1, math.ceil(n / batch_size))
    return float(np.mean(losses[-tail:]))


@register_task("celeba-dialog", presets={"smiling": {"attribute": "Smiling"}, "bangs": {"attribute": "Bangs"},
                                         "eyeglasses": {"attribute": "Eyeglasses"}, "beard": {"attribute": "No_Beard"},
                                         "age": {"attribute": "Young"}})
class CelebADialogTask(VQImageTask):
    """CelebA-Dialog attribute (local folder): maximise a CNN's expected degree over a VQ-VAE trained on low degrees."""

    training: ClassVar[TrainingSettings] = TrainingSettings(epochs=30.0, n_images=60000, n_test_images=2000)
    quick_training: ClassVar[TrainingSettings] = TrainingSettings(epochs=1.0, n_images=128, n_test_images=32)
    #: scorer training: images of the train partition (all degrees) and epochs
    n_scorer_images: ClassVar[int] = 100000
    scorer_epochs: ClassVar[float] = 4.0
    quick_n_scorer_images: ClassVar[int] = 128
    quick_scorer_epochs: ClassVar[float] = 1.0
    scorer_width: ClassVar[int] = 32
    heldout_width: ClassVar[int] = 48
    scorer_file: ClassVar[str] = "scorer.pt"
    heldout_file: ClassVar[str] = "heldout_scorer.pt"

    def __init__(self, root: str | None = None, attribute: str = SMILE_ATTRIBUTE, labels: str = "dialog",
                 dialog: str | None = None, crop: int = 148, max_degree: int = 2,
                 vqvae_score_threshold: float | None = None, max_missing_fraction: float = 0.01,
                 jpeg_draft: bool = False, artifacts: str | None = None, device: str = "auto",
                 n_initial: int | None = None,
                 **options: Any) -> None:
        super().__init__(artifacts=artifacts, device=device, n_initial=n_initial, **options)
        if attribute not in DIALOG_ATTRIBUTES:
            raise UserError(f"{self.name}: attribute must be one of {', '.join(DIALOG_ATTRIBUTES)} (the "
                            f"CelebA-Dialog columns), got {attribute!r}")
        if labels not in ("dialog", "attribute"):
            raise UserError(f"{self.name}: labels must be 'dialog' (CelebA-Dialog degrees 0-5) or 'attribute' "
                            f"(CelebA's binary {attribute}), got {labels!r}")
        self.root = root
        self.attribute = attribute
        self.labels = labels
        self.dialog = dialog
        self.crop = int(crop)
        self.max_degree = int(max_degree)
        self.max_missing_fraction = float(max_missing_fraction)
        self.jpeg_draft = bool(jpeg_draft)
        self.vqvae_score_threshold = None if vqvae_score_threshold is None else float(vqvae_score_threshold)
        self._folder: CelebAFolder | None = None
        self._scorer: SmileCNN | None = None
        self._heldout: SmileCNN | None = None
        self._vqvae_pool: np.ndarray | None = None

    @property
    def task_label(self) -> str:
        """The registered name that selects this attribute (for messages and hints)."""
        return f"{self.name}/{ATTRIBUTE_SLUGS[self.attribute]}"

    @property
    def base_name(self) -> str:
        """One artifacts folder (and initial-data stream) per attribute."""
        return self.artifact_name or self.task_label.replace("/", "-")

    @property
    def data_root(self) -> str | None:
        """The CelebA folder as given (task parameter, else ``$CELEBA_ROOT``), for suggested commands."""
        return self.root or os.environ.get(ROOT_ENV) or None

    def _prepare_hint(self, retrain: bool = False) -> str:
        return (f"run `bench prepare --task {self.task_label} --task-opt root={self.data_root or 'DIR'}"
                f"{' --retrain' if retrain else ''}`")

    def provenance(self) -> dict[str, Any]:
        """The artifacts' facts plus the labels the run's scorer was trained on (attribute, source, fallback)."""
        return {**super().provenance(), "attribute": self.attribute, "labels": self.labels}

    # --- data -----------------------------------------------------------------------------------
    @property
    def folder(self) -> CelebAFolder:
        """The CelebA folder (read on first use)."""
        if self._folder is None:
            root = self.root or os.environ.get(ROOT_ENV)
            if not root:
                raise UserError(f"{self.task_label} needs a local CelebA folder: pass --task-opt root=DIR or set "
                                f"{ROOT_ENV} (docs/data.md)")
            self._folder = CelebAFolder(root, self.crop, self.max_missing_fraction, self.dialog, self.jpeg_draft)
            if self.uses_dialog:
                self._folder.dialog(needed_by=self.task_label)  # fail now, with the file's name, when absent
            else:
                log.warning("%s: labels=attribute: using CelebA's binary %s attribute instead of the CelebA-Dialog "
                            "degrees (recorded in the manifest)", self.task_label, self.attribute)
        return self._folder

    @property
    def uses_dialog(self) -> bool:
        """Whether the labels are CelebA-Dialog degrees (0-5) rather than CelebA's binary attribute."""
        return self.labels == "dialog"

    def _labels(self) -> tuple[np.ndarray, np.ndarray]:
        """(labels, labelled mask): the Dialog degree 0-5, or the binary attribute as 0/1 (1 = degree-5 end)."""
        folder = self.folder
        if self.uses_dialog:
            degree = folder.dialog(self.task_label).degrees[self.attribute]
            return degree.astype(np.int64), degree >= 0
        return folder.binary(self.attribute), np.ones(len(folder.names), dtype=bool)

    def _low_high(self) -> tuple[np.ndarray, np.ndarray]:
        """Masks of the labelled images at the low end (VQ-VAE data) and the high end (FID reference)."""
        labels, labelled = self._labels()
        cut = self.max_degree if self.uses_dialog else 0
        return labelled & (labels <= cut), labelled & (labels > cut)

    def _label_source(self) -> str:
        if self.uses_dialog:
            return str(self.folder.dialog(self.task_label).path)
        return f"the {self.attribute} column of {self.folder.layout.attributes}"

    def _pool(self, split: str) -> np.ndarray:
        part = np.where(self.folder.available, self.folder.partition, -1)  # missing images belong to no split
        low, high = self._low_high()
        if split == "vqvae" and self.vqvae_score_threshold is not None:
            if self._vqvae_pool is None:  # needs the scorer: computed once over the train partition
                train = np.flatnonzero(part == PARTITIONS["train"])
                scores = np.concatenate([self.score_images(self.folder.images(train[i:i + 4096]))
                                         for i in range(0, len(train), 4096)])
                self._vqvae_pool = train[scores <= self.vqvae_score_threshold]
            pool = self._vqvae_pool
        else:
            masks = {"vqvae": (PARTITIONS["train"], low), "scorer": (PARTITIONS["train"], self._labels()[1]),
                     "test": (PARTITIONS["test"], np.ones_like(low)), "reference-high": (PARTITIONS["test"], high),
                     "reference-train": (PARTITIONS["valid"], low)}
            if split not in masks:
                raise ValueError(f"unknown split {split!r}")
            partition, mask = masks[split]
            pool = np.flatnonzero((part == partition) & mask)
        if len(pool) == 0:
            raise UserError(f"{self.task_label}: no images for split {split!r}: the labels of {self._label_source()} "
                            f"and the partitions of {self.folder.layout.partition} leave none ({int(low.sum())} "
                            f"low-degree and {int(high.sum())} high-degree labelled images in all)")
        return pool

    def _draw(self, split: str, n: int, seed: int) -> np.ndarray:
        pool = self._pool(split)
        rng = np.random.default_rng(seed)
        return rng.choice(pool, size=n, replace=n > len(pool))

    def training_images(self, split: str, n: int, seed: int) -> np.ndarray:
        """``n`` faces of ``split`` drawn from its pool (with replacement only when the pool is smaller)."""
        return self.folder.images(self._draw(split, n, seed))

    def artifact_config(self) -> dict[str, Any]:
        return {"crop": self.crop, "jpeg_draft": self.jpeg_draft, "attribute": self.attribute, "labels": self.labels,
                "max_degree": self.max_degree, "vqvae_score_threshold": self.vqvae_score_threshold,
                "scorer_width": self.scorer_width, "heldout_width": self.heldout_width}

    def data_summary(self) -> dict[str, Any]:
        """What the task read: layout, image counts, label source and coverage (for the manifest)."""
        labels, labelled = self._labels()
        summary: dict[str, Any] = {
            "attribute": self.attribute, "labels": self.labels, "root": str(self.folder.base),
            "layout": self.folder.layout.kind, "images": self.folder.availability.summary(),
            "labelled_images": int(labelled.sum()),
            "label_counts": {str(k): int(v) for k, v in enumerate(np.bincount(labels[labelled]))},
        }
        if self.uses_dialog:
            summary["score"] = f"expected {self.attribute} degree in [0, 5] (CelebA-Dialog)"
            summary["dialog"] = self.folder.dialog(self.task_label).summary()
        else:
            summary["score"] = f"logit of P(binary {self.attribute} at its degree-5 end)"
            summary["fallback"] = (f"labels=attribute: CelebA's binary {self.attribute} attribute, not the "
                                   f"CelebA-Dialog degrees")
        return summary

    # --- scorers --------------------------------------------------------------------------------
    def _n_outputs(self) -> int:
        return N_DIALOG_DEGREES if self.uses_dialog else 1

    def train_scorers(self, artifact_dir: Path, device: torch.device, progress: bool, quick: bool) -> dict[str, Any]:
        """Train the scorer and, with another seed, width and half of the data, the held-out scorer."""
        n = self.quick_n_scorer_images if quick else self.n_scorer_images
        epochs = self.quick_scorer_epochs if quick else self.scorer_epochs
        labels, _ = self._labels()
        # One pass over every image fills the 64x64 cache (progress bar; resumes if interrupted).
        self.folder.cache.fill(np.flatnonzero(self.folder.available), progress=progress)
        info: dict[str, Any] = {**self.data_summary(), "n_images": n, "epochs": epochs}
        valid_idx = self.validation_indices()
        valid_images = self.folder.images(valid_idx)
        for key, width, file, seed_name in (("scorer", self.scorer_width, self.scorer_file, "scorer"),
                                            ("heldout", self.heldout_width, self.heldout_file, "heldout")):
            t0 = time.perf_counter()
            idx = self._draw("scorer", n, self.split_seed(f"{seed_name}-data"))
            model = SmileCNN(width, self._n_outputs(), seed=self.split_seed(f"{seed_name}-init"))
            loss = train_classifier(model, self.folder.images_uint8(idx), labels[idx], epochs=epochs,
                                    seed=self.split_seed(f"{seed_name}-train"), device=device, progress=progress,
                                    desc=f"{self.task_label} {key}")
            save_torch({"width": width, "n_outputs": self._n_outputs(), "state_dict": model.cpu().state_dict()},
                       artifact_dir / file)
            entry: dict[str, Any] = {"width": width, "final_loss": loss, "seconds": time.perf_counter() - t0}
            if len(valid_idx):
                with torch.inference_mode():
                    logits = model.to(device)(torch.from_numpy(valid_images).to(device)).cpu()
                pred = (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(1)
                entry["valid_accuracy"] = float((pred.numpy() == labels[valid_idx]).mean())
            info[key] = entry
        self.load_scorers(artifact_dir, device)  # a score threshold on the "vqvae" split needs them now
        return info

    def validation_indices(self, n: int = 2000) -> np.ndarray:
        """Up to ``n`` labelled, present images of the valid partition: the scorers' validation accuracy
        counts only these (an unlabelled image has no truth to be right or wrong about)."""
        valid = np.flatnonzero((self.folder.partition == PARTITIONS["valid"]) & self.folder.available
                               & self._labels()[1])
        rng = np.random.default_rng(self.split_seed("scorer-valid"))
        return rng.choice(valid, size=min(len(valid), n), replace=False) if len(valid) else valid

    def load_scorers(self, artifact_dir: Path, device: torch.device) -> None:
        """Load both scorers (eval mode, on ``device``)."""
        loaded = []
        for file in (self.scorer_file, self.heldout_file):
            path = artifact_dir / file
            if not path.is_file():
                raise UserError(f"{self.task_label}: scorer {str(path)!r} missing; {self._prepare_hint()}")
            payload = torch.load(path, map_location="cpu", weights_only=True)
            model = SmileCNN(payload["width"], payload["n_outputs"])
            model.load_state_dict(payload["state_dict"])
            loaded.append(model.to(device).eval())
        self._scorer, self._heldout = loaded

    def _run(self, model: SmileCNN | None, images: np.ndarray) -> np.ndarray:
        assert model is not None
        out = np.empty(len(images), dtype=np.float64)
        with torch.inference_mode():
            for i in range(0, len(images), 512):
                x = torch.from_numpy(np.ascontiguousarray(images[i:i + 512], dtype=np.float32)).to(self.device)
                x = x.contiguous(memory_format=CHANNELS_LAST)
                out[i:i + 512] = _score_from_logits(model(x)).double().cpu().numpy()
        return out

    def score_images(self, images: np.ndarray) -> np.ndarray:
        """Attribute score: the expected degree (Dialog labels) or the scorer's logit (binary attribute)."""
        if self._scorer is None:
            self._ensure_loaded()
        return self._run(self._scorer, images)

    def heldout_scores(self, images: np.ndarray) -> np.ndarray:
        """The independently trained held-out scorer's score (same scale as the scorer's)."""
        if self._heldout is None:
            self._ensure_loaded()
        return self._run(self._heldout, images)

    def score_tensor(self, images: Tensor) -> Tensor:
        """Scores of an image tensor already on the device."""
        if self._scorer is None:
            self._ensure_loaded()
        assert self._scorer is not None
        return _score_from_logits(self._scorer(images))


@register_task("smile-celeba")
class CelebASmileTask(CelebADialogTask):
    """CelebA smile (local folder): the CelebA-Dialog smiling task under its original name."""

    def __init__(self, root: str | None = None, labels: str = "dialog", **options: Any) -> None:
        if "attribute" in options:
            raise UserError("smile-celeba is the Smiling task; for another attribute use celeba-dialog/<attribute>")
        super().__init__(root=root, attribute=SMILE_ATTRIBUTE, labels=labels, **options)

    @property
    def task_label(self) -> str:
        """The registered name (no attribute suffix: smiling is implied)."""
        return self.name
