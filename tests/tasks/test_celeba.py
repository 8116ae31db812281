"""smile-celeba on a generated mini-folder in the exact official CelebA layout."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.core import constants as C
from bench.cli.main import main
from bench.core.config import RunConfig
from bench.core.errors import UserError
from bench.core.registry import task_spec
from bench.run.runner import execute_run, run_folder
from bench.tasks.celeba import ATTR_FILE, IMAGE_DIR, PARTITION_FILE, CelebAFolder, CelebASmileTask

torch.set_num_threads(1)

ATTRIBUTES = ("5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
              "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair "
              "Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face "
              "Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair "
              "Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young").split()
N_IMAGES = 36
PERMISSIVE = {"min_psnr_db": 0.0, "min_codebook_usage": 0.0, "min_survival_corr": -1.0}


def make_celeba(base: Path, n: int = N_IMAGES) -> Path:
    """Write ``n`` 178x218 JPEG 'faces' and the two annotation files, formatted like the originals
    (count line, attribute-name line with a trailing space, right-aligned ±1 columns)."""
    rng = np.random.default_rng(0)
    (base / IMAGE_DIR).mkdir(parents=True)
    attr_lines = [str(n), " ".join(ATTRIBUTES) + " "]
    partition_lines = []
    smile_col = ATTRIBUTES.index("Smiling")
    for i in range(n):
        name = f"{i + 1:06d}.jpg"
        smiling = i % 2 == 0
        pixels = np.full((218, 178, 3), rng.integers(60, 200, 3), dtype=np.uint8)
        pixels[60:170, 40:140] = rng.integers(150, 255, 3)  # face
        mouth_h = 18 if smiling else 4  # an open smile is a bigger dark mouth
        pixels[135:135 + mouth_h, 65:115] = 30
        Image.fromarray(pixels).save(base / IMAGE_DIR / name, quality=90)
        values = rng.choice([-1, 1], size=len(ATTRIBUTES))
        values[smile_col] = 1 if smiling else -1
        attr_lines.append(name + " " + " ".join(f"{v:2d}" for v in values))
        partition_lines.append(f"{name} {0 if i < 24 else (1 if i < 30 else 2)}")
    (base / ATTR_FILE).write_text("\n".join(attr_lines) + "\n")
    (base / PARTITION_FILE).write_text("\n".join(partition_lines) + "\n")
    return base


@pytest.fixture(scope="module")
def celeba_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_celeba(root / "celeba")  # torchvision's layout: root/celeba/...
    return root


def test_reads_official_layout_from_root_or_celeba_subfolder(celeba_root: Path) -> None:
    a = CelebAFolder(celeba_root)
    b = CelebAFolder(celeba_root / "celeba")
    assert a.base == b.base == celeba_root / "celeba"
    assert len(a.names) == N_IMAGES and a.attrs.shape == (N_IMAGES, 40)
    assert a.smiling.sum() == N_IMAGES // 2 and list(np.bincount(a.partition)) == [24, 6, 6]
    images = a.images(np.array([0, 1, 0]))
    assert images.shape == (3, 3, 64, 64) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    np.testing.assert_array_equal(images[0], images[2])


def test_splits_follow_partition_and_smile(celeba_root: Path) -> None:
    task = CelebASmileTask(root=str(celeba_root), device="cpu")
    folder = task.folder
    vq = task._pool("vqvae")
    assert (folder.partition[vq] == 0).all() and not folder.smiling[vq].any()
    assert (folder.partition[task._pool("test")] == 2).all()
    high = task._pool("reference-high")
    assert folder.smiling[high].all() and (folder.partition[high] == 2).all()
    images = task.training_images("scorer", 5, seed=1)
    np.testing.assert_array_equal(images, task.training_images("scorer", 5, seed=1))


def test_dialog_degrees_switch_labels(tmp_path: Path) -> None:
    base = make_celeba(tmp_path / "c", n=12)
    (base / "smile_degree.txt").write_text("".join(f"{i + 1:06d}.jpg {i % 6}\n" for i in range(12)))
    task = CelebASmileTask(root=str(base), device="cpu")
    assert task.uses_dialog and task._n_outputs() == 6
    assert set(task.folder.degree[task._pool("vqvae")]) <= {0, 1, 2}
    assert not CelebASmileTask(root=str(base), device="cpu", smile_source="attribute").uses_dialog
    (base / "smile_degree.txt").write_text("000001.jpg 9\n")
    with pytest.raises(UserError, match=r"smile_degree.txt: line 1 .*degree 0-5"):
        CelebASmileTask(root=str(base), device="cpu").folder


def test_clear_errors_for_bad_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CELEBA_ROOT", raising=False)
    with pytest.raises(UserError, match="CELEBA_ROOT"):
        CelebASmileTask(device="cpu").folder
    with pytest.raises(UserError, match="does not exist"):
        CelebAFolder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="is not a CelebA folder.*img_align_celeba"):
        CelebAFolder(tmp_path / "empty")
    base = make_celeba(tmp_path / "broken", n=6)
    (base / PARTITION_FILE).unlink()
    with pytest.raises(UserError, match="lacks list_eval_partition.txt"):
        CelebAFolder(base)
    base = make_celeba(tmp_path / "badattr", n=6)
    lines = (base / ATTR_FILE).read_text().splitlines()
    lines[4] = lines[4].replace("-1", "0", 1).replace(" 1", " 0", 1)
    (base / ATTR_FILE).write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"list_attr_celeba.txt: line 5 .*values of 1 or -1"):
        CelebAFolder(base)
    base = make_celeba(tmp_path / "missingimg", n=6)
    (base / IMAGE_DIR / "000004.jpg").unlink()
    with pytest.raises(UserError, match=r"000004.jpg: image listed in list_attr_celeba.txt is missing"):
        CelebAFolder(base)
    base = make_celeba(tmp_path / "corrupt", n=6)
    (base / IMAGE_DIR / "000002.jpg").write_bytes(b"\xff\xd8 truncated")
    folder = CelebAFolder(base)
    with pytest.raises(UserError, match=r"000002.jpg: not a readable image"):
        folder.images(np.array([1]))


@pytest.mark.slow
def test_prepare_and_run_end_to_end(celeba_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = {"root": str(celeba_root), "artifacts": str(tmp_path / "artifacts"), "device": "cpu", "n_initial": 4,
              **PERMISSIVE}
    options = [f"--task-opt={key}={value}" for key, value in {"root": str(celeba_root), **PERMISSIVE}.items()]
    assert main(["prepare", "--task", "smile-celeba", "--quick", "-q", "--device", "cpu",
                 "--artifacts", params["artifacts"], *options]) == 0
    assert "survival_corr" in capsys.readouterr().out
    task = task_spec("smile-celeba").build(overrides=params)
    manifest = task.manifest
    assert manifest["passed"] and manifest["status"] == "complete" and manifest["training"]["quick"]
    assert {"scorer.pt", "heldout_scorer.pt", "vqvae.pt"} <= set(manifest["files"])
    assert manifest["scorers"]["score"] == "logit of P(Smiling)"
    assert math.isfinite(manifest["checks"]["psnr_db"]["value"])

    strict = task_spec("smile-celeba").build(overrides={k: v for k, v in params.items() if k not in PERMISSIVE})
    if not manifest["checks"]["survival_corr"]["value"] >= 0.9:  # the default threshold stays strict
        with pytest.raises(UserError, match="failed their validity checks"):
            strict.initial_data(0, 2)

    # the VQ-VAE subset can instead be "scorer's score <= threshold" over the train partition
    train = np.flatnonzero(task.folder.partition == 0)
    train_scores = task.score_images(task.folder.images(train))
    task.vqvae_score_threshold = float(np.median(train_scores))
    np.testing.assert_array_equal(task._pool("vqvae"), train[train_scores <= np.median(train_scores)])

    config = RunConfig(task="smile-celeba", optimizer="random", seed=0, budget=3, task_params=params)
    folder = run_folder(tmp_path / "sweep", config)
    assert execute_run(config, folder) == C.STATUS_COMPLETED, folder.read_info().get("error")
    records = folder.read_records()
    assert len(records) == 4 + 3
    assert np.isfinite(records[C.SCORE]).all() and np.isfinite(records[C.HELDOUT_SCORE]).all()
