"""smile-celeba on a generated mini-folder in the exact official CelebA layout."""

from __future__ import annotations

import io
import json
import math
import zipfile
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
from bench.tasks.celeba import CelebAFolder, CelebASmileTask, SmileCNN
from bench.tasks.celeba_cache import ENV_DATA_CACHE, ImageCache
from bench.tasks.celeba_data import ATTR_FILE, IMAGE_DIR, PARTITION_FILE

torch.set_num_threads(1)

ATTRIBUTES = ("5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
              "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair "
              "Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face "
              "Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair "
              "Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young").split()
N_IMAGES = 36


#: where each layout keeps the images and the two annotation files (``None``: the images are zipped)
LAYOUTS = {"torchvision": (IMAGE_DIR, ATTR_FILE, PARTITION_FILE),
           "drive": (f"Img/{IMAGE_DIR}", f"Anno/{ATTR_FILE}", f"Eval/{PARTITION_FILE}"),
           "zip": (None, ATTR_FILE, PARTITION_FILE)}


def _face(i: int, rng: np.random.Generator, smile: float) -> Image.Image:
    """A 178x218 'face' whose dark mouth grows with ``smile``; every 7th is grayscale, every 5th odd-sized."""
    pixels = np.full((218, 178, 3), rng.integers(60, 200, 3), dtype=np.uint8)
    pixels[60:170, 40:140] = rng.integers(150, 255, 3)  # face
    pixels[135:135 + 4 + int(3 * smile), 65:115] = 30  # an open smile is a bigger dark mouth
    img = Image.fromarray(pixels)
    if i % 5 == 4:
        img = img.resize((177, 219))
    return img.convert("L") if i % 7 == 6 else img


def write_lines(path: Path, lines: list[str]) -> None:
    """Text as the official files are: CRLF line endings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())


def make_celeba(base: Path, n: int = N_IMAGES, layout: str = "torchvision", dialog: str | None = "standard") -> Path:
    """Write ``n`` JPEG 'faces' (smile degree ``i % 6``) and the two annotation files in ``layout``,
    formatted like the originals (count line, attribute-name line with a trailing space,
    right-aligned ±1 columns, CRLF), and the CelebA-Dialog file (``dialog``: standard, hq or None)."""
    rng = np.random.default_rng(0)
    smile = np.arange(n) % 6
    image_dir, attr_file, partition_file = LAYOUTS[layout]
    images = {}
    attr_lines = [str(n), " ".join(ATTRIBUTES) + " "]
    partition_lines = []
    smile_col = ATTRIBUTES.index("Smiling")
    for i in range(n):
        name = f"{i + 1:06d}.jpg"
        buffer = io.BytesIO()
        _face(i, rng, float(smile[i])).save(buffer, format="JPEG", quality=90)
        images[name] = buffer.getvalue()
        values = rng.choice([-1, 1], size=len(ATTRIBUTES))
        values[smile_col] = 1 if smile[i] >= 3 else -1
        attr_lines.append(name + " " + " ".join(f"{v:2d}" for v in values) + " ")
        partition_lines.append(f"{name} {0 if 3 * i < 2 * n else (1 if 6 * i < 5 * n else 2)}")
    if image_dir is None:
        base.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(base / "img_align_celeba.zip", "w") as archive:
            for name, data in images.items():
                archive.writestr(f"{IMAGE_DIR}/{name}", data)
    else:
        (base / image_dir).mkdir(parents=True)
        for name, data in images.items():
            (base / image_dir / name).write_bytes(data)
    write_lines(base / attr_file, attr_lines)
    write_lines(base / partition_file, partition_lines)
    if dialog is not None:
        write_dialog(base, [f"{i + 1:06d}.jpg" for i in range(n)], smile, hq=dialog == "hq")
    return base


def write_dialog(base: Path, names: list[str], smile: np.ndarray, hq: bool = False) -> None:
    """``combined_annotation.txt`` as CelebA-Dialog ships it (header line, space-separated degrees);
    Bangs = smile // 2 so that two attributes differ. ``hq``: keyed by CelebA-HQ names, in reverse
    order, with ``CelebA-HQ-to-CelebA-mapping.txt`` beside it."""
    lines = ["img_name Bangs Eyeglasses No_Beard Smiling Young "]
    keys = [f"{k}.jpg" for k in range(len(names))] if hq else names
    for key, degree in zip(keys, smile):
        lines.append(f"{key} {degree // 2} 0 {len(key) % 3} {degree} 1 ")
    write_lines(base / "combined_annotation.txt", lines)
    if hq:  # CelebA-HQ index k is CelebA image n - k
        mapping = ["idx         orig_idx    orig_file"]
        mapping += [f"{k:<12d}{len(names) - 1 - k:<12d}{names[len(names) - 1 - k]}" for k in range(len(names))]
        write_lines(base / "CelebA-HQ-to-CelebA-mapping.txt", mapping)


@pytest.fixture(autouse=True)
def image_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own 64x64 image cache."""
    monkeypatch.setenv(ENV_DATA_CACHE, str(tmp_path / "image-cache"))
    return tmp_path / "image-cache"


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


@pytest.mark.parametrize("layout", ["drive", "zip"])
def test_reads_drive_and_zip_layouts(tmp_path: Path, layout: str) -> None:
    base = make_celeba(tmp_path / "celeba", n=12, layout=layout)
    reference = CelebAFolder(make_celeba(tmp_path / "flat", n=12))
    folder = CelebAFolder(tmp_path)  # found in the celeba/ sub-folder
    assert folder.layout.kind == layout and folder.base == base and folder.names == reference.names
    np.testing.assert_array_equal(folder.partition, reference.partition)
    # grayscale (index 6) and odd-sized (index 4) JPEGs decode to the same 64x64 RGB as the flat layout
    np.testing.assert_array_equal(folder.images_uint8(np.arange(12)), reference.images_uint8(np.arange(12)))
    if layout == "zip":
        assert not (base / IMAGE_DIR).exists()  # read in place, nothing extracted


def test_image_cache_is_filled_once_and_resumes(tmp_path: Path, image_cache: Path) -> None:
    base = make_celeba(tmp_path / "c", n=12)
    folder = CelebAFolder(base)
    first = folder.images_uint8(np.array([0, 5, 5, 7]))
    assert folder.cache.done.sum() == 3 and len(list(image_cache.glob("*.u8"))) == 1
    calls: list[int] = []
    reopened = ImageCache(image_cache, folder.cache.path.stem, 12, (3, 64, 64), lambda i: calls.append(i) or
                          folder._load(i))
    np.testing.assert_array_equal(reopened.read(np.array([0, 5, 5, 7])), first)
    assert calls == []  # read from disk, not decoded again
    assert reopened.fill(np.arange(12)) == 9 and sorted(calls) == [1, 2, 3, 4, 6, 8, 9, 10, 11]
    drafted = CelebAFolder(base, jpeg_draft=True)  # another setting, another cache file
    approx = drafted.images_uint8(np.arange(12)).astype(float)
    assert len(list(image_cache.glob("*.u8"))) == 2
    assert np.abs(approx - reopened.read(np.arange(12))).mean() < 4.0  # on 0-255


def test_one_missing_image_is_skipped_and_counted(tmp_path: Path) -> None:
    base = make_celeba(tmp_path / "c", n=120)
    (base / IMAGE_DIR / "000003.jpg").unlink()
    task = CelebASmileTask(root=str(base), device="cpu")
    assert task.folder.availability.summary() == {"listed": 120, "missing": 1, "first_missing": ["000003.jpg"]}
    for split in ("vqvae", "scorer"):
        assert 2 not in task._pool(split)
    assert len(task.training_images("vqvae", 50, seed=0)) == 50


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


def test_dialog_labels_read_by_header_names(tmp_path: Path) -> None:
    base = make_celeba(tmp_path / "c", n=12)
    task = CelebASmileTask(root=str(base), device="cpu")
    assert task.uses_dialog and task._n_outputs() == 6
    np.testing.assert_array_equal(task._labels()[0], np.arange(12) % 6)
    assert set(task._labels()[0][task._pool("vqvae")]) <= {0, 1, 2}
    assert set(task._labels()[0][task._pool("reference-high")]) <= {3, 4, 5}
    bangs = task_spec("celeba-dialog/bangs").build(overrides={"root": str(base), "device": "cpu"})
    np.testing.assert_array_equal(bangs._labels()[0], (np.arange(12) % 6) // 2)
    assert bangs.artifact_dir.name == "celeba-dialog-bangs"
    # columns are found by name, not position
    lines = (base / "combined_annotation.txt").read_text().splitlines()
    swapped = ["img_name Smiling Eyeglasses No_Beard Bangs Young"]
    for line in lines[1:]:
        f = line.split()
        swapped.append(" ".join([f[0], f[4], f[2], f[3], f[1], f[5]]))
    write_lines(base / "combined_annotation.txt", swapped)
    np.testing.assert_array_equal(CelebASmileTask(root=str(base), device="cpu")._labels()[0], np.arange(12) % 6)
    write_lines(base / "combined_annotation.txt", [swapped[0], "000001.jpg 9 0 0 0 0"])
    with pytest.raises(UserError, match=r"combined_annotation.txt: line 2 should be an image name and 5 degrees 0-5"):
        CelebASmileTask(root=str(base), device="cpu").folder


def test_dialog_hq_variant_through_the_mapping_file(tmp_path: Path) -> None:
    base = make_celeba(tmp_path / "c", n=12, dialog="hq")
    task = CelebASmileTask(root=str(base), device="cpu")
    np.testing.assert_array_equal(task._labels()[0], np.arange(12)[::-1] % 6)  # HQ k -> CelebA 12 - k
    assert task.data_summary()["dialog"]["hq_mapping"].endswith("CelebA-HQ-to-CelebA-mapping.txt")
    (base / "CelebA-HQ-to-CelebA-mapping.txt").unlink()
    with pytest.raises(UserError, match=r"keyed by CelebA-HQ names .* needs CelebA-HQ-to-CelebA-mapping.txt"):
        CelebASmileTask(root=str(base), device="cpu").folder


def test_missing_dialog_file_and_the_named_fallback(tmp_path: Path) -> None:
    base = make_celeba(tmp_path / "c", n=12, dialog=None)
    with pytest.raises(UserError) as error:
        task_spec("celeba-dialog/age").build(overrides={"root": str(base), "device": "cpu"}).folder
    message = str(error.value)
    assert "\n" not in message and "celeba-dialog/age needs the CelebA-Dialog labels combined_annotation.txt" in message
    assert f"looked in {base}, {base / 'CelebA-Dialog'}" in message and "labels=attribute" in message
    task = CelebASmileTask(root=str(base), device="cpu", labels="attribute")
    assert not task.uses_dialog and task._n_outputs() == 1
    assert "fallback" in task.data_summary() and task.artifact_config()["labels"] == "attribute"
    beard = task_spec("celeba-dialog/beard").build(overrides={"root": str(base), "device": "cpu", "labels": "attribute"})
    no_beard = beard.folder.attrs[:, beard.folder.attr_names.index("No_Beard")]
    np.testing.assert_array_equal(beard._labels()[0], no_beard == -1)  # 1 = has a beard (the degree-5 end)
    write_dialog(base, [f"{i + 1:06d}.jpg" for i in range(12)], np.arange(12) % 6)
    lines = (base / "combined_annotation.txt").read_text().splitlines()
    write_lines(base / "combined_annotation.txt", [lines[0]] + [line.replace(".jpg", ".png") for line in lines[1:]])
    with pytest.raises(UserError, match=r"names of .*combined_annotation.txt \(e.g. 000001.png.*match none of "
                                        r".*list_attr_celeba.txt \(e.g. 000001.jpg"):
        CelebASmileTask(root=str(base), device="cpu").folder
    write_lines(base / "combined_annotation.txt", lines[:9] + lines[10:])  # partial coverage: counted, not refused
    partial = CelebASmileTask(root=str(base), device="cpu")
    summary = partial.data_summary()
    assert summary["dialog"]["matched_images"] == 11 and summary["labelled_images"] == 11
    valid = np.flatnonzero(partial.folder.partition == 1)  # images 9 and 10; only 10 is labelled
    assert list(valid) == [8, 9] and list(partial.validation_indices()) == [9]


def test_clear_errors_for_bad_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CELEBA_ROOT", raising=False)
    with pytest.raises(UserError, match="CELEBA_ROOT"):
        CelebASmileTask(device="cpu").folder
    with pytest.raises(UserError, match="does not exist"):
        CelebAFolder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "photos").mkdir()
    with pytest.raises(UserError, match=r"is not a CelebA folder: it holds photos\. Accepted layouts: \(1\) "
                                        r"torchvision: .*\(2\) Google Drive: Img/img_align_celeba.*\(3\).*zip"):
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
    (base / IMAGE_DIR / "000005.jpg").unlink()
    with pytest.raises(UserError, match=r"2 of the 6 images listed in .*list_attr_celeba.txt are missing .*"
                                        r"max_missing_fraction=0.01\), e.g. 000004.jpg, 000005.jpg"):
        CelebAFolder(base)
    for path in (base / IMAGE_DIR).iterdir():  # renamed images: the names match nothing
        path.rename(path.with_name(f"img_{path.name}"))
    with pytest.raises(UserError, match=r"names of .*list_attr_celeba.txt \(e.g. 000001.jpg.*match no image in "
                                        r".*img_align_celeba \(which holds e.g. img_000001.jpg"):
        CelebAFolder(base, max_missing_fraction=1.0)
    base = make_celeba(tmp_path / "corrupt", n=6)
    (base / IMAGE_DIR / "000002.jpg").write_bytes(b"\xff\xd8 truncated")
    folder = CelebAFolder(base)
    with pytest.raises(UserError, match=r"000002.jpg: not a readable image"):
        folder.images(np.array([1]))


@pytest.mark.slow
@pytest.mark.parametrize("task_name, layout, dialog", [("smile-celeba", "torchvision", "standard"),
                                                       ("celeba-dialog/bangs", "zip", "hq")])
def test_prepare_and_run_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str], task_name: str, layout: str,
                                    dialog: str) -> None:
    root = tmp_path / "data"
    base = make_celeba(root / "celeba", layout=layout, dialog=dialog)
    if layout == "zip":  # one listed image absent from the archive: skipped and counted
        with zipfile.ZipFile(base / "img_align_celeba.zip") as archive, \
                zipfile.ZipFile(base / "partial.zip", "w") as partial:
            for info in archive.infolist()[1:]:
                partial.writestr(info, archive.read(info))
        (base / "partial.zip").replace(base / "img_align_celeba.zip")
    params = {"root": str(root), "artifacts": str(tmp_path / "artifacts"), "device": "cpu", "n_initial": 4,
              "max_missing_fraction": 0.05}
    options = [f"--task-opt={key}={value}" for key, value in params.items() if key not in ("artifacts", "device")]
    assert main(["prepare", "--task", task_name, "--quick", "-q", "--device", "cpu",
                 "--artifacts", params["artifacts"], *options]) == 0
    out = capsys.readouterr().out
    assert "survival_corr" in out and "--quick built smoke-test artifacts" in out
    assert f"next: bench run --task {task_name} --task-opt root={root}" in out
    task = task_spec(task_name).build(overrides=params)
    manifest = task.manifest
    assert manifest["status"] == "complete" and manifest["training"]["quick"]
    assert {"scorer.pt", "heldout_scorer.pt", "vqvae.pt"} <= set(manifest["files"])
    scorers = manifest["scorers"]
    assert scorers["score"].startswith(f"expected {task.attribute} degree") and scorers["layout"] == layout
    assert scorers["images"]["missing"] == (1 if layout == "zip" else 0)
    assert (scorers["dialog"]["hq_mapping"] is not None) == (dialog == "hq")
    assert math.isfinite(manifest["checks"]["psnr_db"]["value"])
    assert 0.0 <= scorers["scorer"]["valid_accuracy"] <= 1.0

    config = RunConfig(task=task_name, optimizer="random", seed=0, budget=3, task_params=params)
    folder = run_folder(tmp_path / "sweep", config)
    assert execute_run(config, folder) == C.STATUS_COMPLETED, folder.read_info().get("error")
    records = folder.read_records()
    assert len(records) == 4 + 3
    assert np.isfinite(records[C.SCORE]).all() and np.isfinite(records[C.HELDOUT_SCORE]).all()
    assert ((records[C.SCORE] >= 0) & (records[C.SCORE] <= 5)).all()  # expected degrees
    provenance = folder.read_info()["task_provenance"]
    assert provenance["quick"] is True and provenance["attribute"] == task.attribute  # a smoke run, marked


def test_vqvae_split_by_scorer_threshold(tmp_path: Path) -> None:
    """The VQ-VAE subset can instead be "scorer's score <= threshold" over the train partition."""
    base = make_celeba(tmp_path / "c", n=24)
    task = CelebASmileTask(root=str(base), device="cpu")
    task._scorer = task._heldout = SmileCNN(8, 6, seed=0).eval()
    train = np.flatnonzero(task.folder.partition == 0)
    scores = task.score_images(task.folder.images(train))
    task.vqvae_score_threshold = float(np.median(scores))
    pool = task._pool("vqvae")
    np.testing.assert_array_equal(pool, train[scores <= np.median(scores)])
    assert 0 < len(pool) < len(train)


def test_perf_celeba_load_reports_rates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["perf", "celeba-load", "--n", "24", "--threads", "1"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["n"] == 24
    for key in ("decode_images_per_s", "decode_images_per_s_draft", "cache_read_images_per_s"):
        assert figures[key] > 0, key
