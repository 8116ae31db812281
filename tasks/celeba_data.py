"""Reading CelebA and CelebA-Dialog as they are downloaded: folder layouts, annotation files, labels.

Three layouts are recognised, in ``root`` or in ``root/celeba`` (see ``docs/data.md``):

* torchvision's flat layout: ``img_align_celeba/``, ``list_attr_celeba.txt``, ``list_eval_partition.txt``;
* the official Google Drive layout: ``Img/img_align_celeba/``, ``Anno/list_attr_celeba.txt``,
  ``Eval/list_eval_partition.txt``;
* either of them with the images left in the official ``img_align_celeba.zip`` (read in place:
  extracting 202,599 files is slow and doubles the disk use).

Text files are read with universal newlines and whitespace splitting, so CRLF line endings,
padded columns and trailing spaces are all accepted. Every error names the file, the line and
what was expected.
"""

from __future__ import annotations

import io
import os
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from bench.core.errors import UserError

IMAGE_DIR = "img_align_celeba"
IMAGE_ZIP = "img_align_celeba.zip"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
DIALOG_FILE = "combined_annotation.txt"
HQ_MAPPING_FILE = "CelebA-HQ-to-CelebA-mapping.txt"
#: the five fine-grained CelebA-Dialog attributes, as its header names them
DIALOG_ATTRIBUTES = ("Bangs", "Eyeglasses", "No_Beard", "Smiling", "Young")
N_DEGREES = 6
#: sub-folders (of the CelebA folder and of ``root``) searched for the Dialog and mapping files
DIALOG_SUBFOLDERS = ("", "CelebA-Dialog", "classification_label", "Anno")
#: where each file of a layout may be, relative to the CelebA folder
IMAGE_CANDIDATES = (IMAGE_DIR, f"Img/{IMAGE_DIR}", IMAGE_ZIP, f"Img/{IMAGE_ZIP}")
ATTR_CANDIDATES = (ATTR_FILE, f"Anno/{ATTR_FILE}")
PARTITION_CANDIDATES = (PARTITION_FILE, f"Eval/{PARTITION_FILE}")
ACCEPTED_LAYOUTS = (f"(1) torchvision: {IMAGE_DIR}/*.jpg, {ATTR_FILE}, {PARTITION_FILE}; "
                    f"(2) Google Drive: Img/{IMAGE_DIR}/*.jpg, Anno/{ATTR_FILE}, Eval/{PARTITION_FILE}; "
                    f"(3) either with {IMAGE_ZIP} in place of the image folder; "
                    f"each directly in the folder or in its celeba/ sub-folder (see docs/data.md)")


class ImageSource:
    """The aligned JPEGs of a layout: a folder or the official zip, addressed by file name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.is_zip = path.suffix == ".zip"
        self._local = threading.local()
        if self.is_zip:
            try:
                with zipfile.ZipFile(path) as archive:
                    # The official zip holds img_align_celeba/<name>; key by base name.
                    self._members = {Path(info.filename).name: info.filename for info in archive.infolist()
                                     if not info.is_dir()}
            except (OSError, zipfile.BadZipFile) as exc:
                raise UserError(f"{path}: not a readable zip archive ({exc}); expected the official "
                                f"{IMAGE_ZIP}") from None
            self.names = set(self._members)
        else:
            self.names = set(os.listdir(path))

    def open(self, name: str) -> io.BufferedIOBase | Path:
        """A file name or an in-memory file that PIL can open."""
        if not self.is_zip:
            return self.path / name
        archive = getattr(self._local, "archive", None)
        if archive is None:  # one handle per thread: decoding threads never share a file position
            archive = self._local.archive = zipfile.ZipFile(self.path)
        return io.BytesIO(archive.read(self._members[name]))

    def describe(self, name: str) -> str:
        """Where image ``name`` is, for messages."""
        return f"{self.path}:{name}" if self.is_zip else str(self.path / name)


@dataclass(frozen=True)
class Layout:
    """Where a CelebA folder keeps its images and its two annotation files."""

    kind: str
    base: Path
    images: Path
    attributes: Path
    partition: Path


def _first(base: Path, candidates: tuple[str, ...]) -> Path | None:
    return next((base / c for c in candidates if (base / c).exists()), None)


def find_layout(root: Path, env_hint: str) -> Layout:
    """The layout of ``root`` (or ``root/celeba``); a :class:`UserError` listing what is there otherwise."""
    if not root.is_dir():
        raise UserError(f"CelebA folder {str(root)!r} does not exist; pass --task-opt root=DIR or set {env_hint}. "
                        f"Accepted layouts: {ACCEPTED_LAYOUTS}")
    for base in (root, root / "celeba"):
        found = {what: _first(base, cands) for what, cands in
                 (("images", IMAGE_CANDIDATES), ("attributes", ATTR_CANDIDATES), ("partition", PARTITION_CANDIDATES))}
        if not any(found.values()):
            continue
        missing = {"images": f"{IMAGE_DIR}/ or {IMAGE_ZIP}", "attributes": ATTR_FILE, "partition": PARTITION_FILE}
        lacking = [missing[k] for k, v in found.items() if v is None]
        if lacking:
            raise UserError(f"CelebA folder {str(base)!r} lacks {', '.join(lacking)}; "
                            f"accepted layouts: {ACCEPTED_LAYOUTS}")
        images = found["images"]
        assert images is not None and found["attributes"] is not None and found["partition"] is not None
        kind = "zip" if images.suffix == ".zip" else ("drive" if images.parent.name == "Img" else "torchvision")
        return Layout(kind, base, images, found["attributes"], found["partition"])
    listing = sorted(os.listdir(root))
    shown = ", ".join(listing[:12]) + (f", ... ({len(listing)} entries)" if len(listing) > 12 else "")
    raise UserError(f"{str(root)!r} is not a CelebA folder: it holds {shown or 'nothing'}. "
                    f"Accepted layouts: {ACCEPTED_LAYOUTS}")


def _lines(path: Path) -> list[str]:
    # utf-8-sig drops a byte-order mark; universal newlines turn CRLF into LF.
    return path.read_text(encoding="utf-8-sig", errors="replace").splitlines()


def read_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(image names, 40 attribute names, int8 (n, 40) values in {-1, 1}) of ``list_attr_celeba.txt``."""
    lines = _lines(path)
    if len(lines) < 2:
        raise UserError(f"{path}: expected an image count on line 1 and attribute names on line 2")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise UserError(f"{path}: line 1 should be the number of images, got {lines[0][:40]!r}") from None
    attr_names = lines[1].split()
    rows = [(i + 3, line.split()) for i, line in enumerate(lines[2:]) if line.strip()]
    if len(rows) != count:
        raise UserError(f"{path}: line 1 announces {count} images but {len(rows)} rows follow")
    names, values = [], np.empty((len(rows), len(attr_names)), dtype=np.int8)
    for k, (line_no, row) in enumerate(rows):
        if len(row) != len(attr_names) + 1 or any(v not in ("1", "-1") for v in row[1:]):
            raise UserError(f"{path}: line {line_no} should be an image name and {len(attr_names)} values "
                            f"of 1 or -1, got {' '.join(row)[:80]!r}")
        names.append(row[0])
        values[k] = [int(v) for v in row[1:]]
    return names, attr_names, values


def _examples(names: list[str] | set[str], k: int = 3) -> str:
    return ", ".join(sorted(names)[:k])


def read_partition(path: Path, names: list[str], attr_path: Path) -> np.ndarray:
    """int8 partition (0 train, 1 valid, 2 test) of each of ``names``, from ``list_eval_partition.txt``."""
    part: dict[str, int] = {}
    for i, line in enumerate(_lines(path)):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise UserError(f"{path}: line {i + 1} should be '<image> <0|1|2>', got {line[:80]!r}")
        part[fields[0]] = int(fields[1])
    missing = [name for name in names if name not in part]
    if missing:
        raise UserError(f"{path} has no partition for {len(missing)} of the {len(names)} images of {attr_path} "
                        f"(e.g. {_examples(missing)}; {path.name} lists e.g. {_examples(list(part))}); "
                        f"both files must name the same images")
    return np.array([part[name] for name in names], dtype=np.int8)


@dataclass
class Availability:
    """Which annotated images exist in the image source; missing ones are skipped and counted."""

    present: np.ndarray
    missing: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        """Counts for the manifest and the console."""
        return {"listed": int(len(self.present)), "missing": len(self.missing), "first_missing": self.missing[:5]}


def check_images(names: list[str], source: ImageSource, attr_path: Path, max_missing_fraction: float) -> Availability:
    """Match annotation names to image files: skip a few missing ones, refuse a mismatch."""
    present = np.array([name in source.names for name in names], dtype=bool)
    missing = [name for name, ok in zip(names, present) if not ok]
    if names and not present.any():
        raise UserError(f"the image names of {attr_path} (e.g. {_examples(names)}) match no image in {source.path} "
                        f"(which holds e.g. {_examples(source.names) or 'nothing'}); the annotation files and the "
                        f"images must come from the same CelebA release (aligned images, names like 000001.jpg)")
    if len(missing) > max_missing_fraction * len(names):
        raise UserError(f"{len(missing)} of the {len(names)} images listed in {attr_path} are missing from "
                        f"{source.path} ({len(missing) / len(names):.1%} > max_missing_fraction="
                        f"{max_missing_fraction:g}), e.g. {', '.join(missing[:5])}; complete the download or "
                        f"raise --task-opt max_missing_fraction=...")
    return Availability(present, missing)


def dialog_search_dirs(base: Path, root: Path) -> list[Path]:
    """The folders searched for ``combined_annotation.txt`` and the HQ mapping, in order."""
    dirs: list[Path] = []
    for top in (base, root):
        for sub in DIALOG_SUBFOLDERS:
            d = top / sub if sub else top
            if d not in dirs:
                dirs.append(d)
    return dirs


def find_file(name: str, dirs: list[Path]) -> Path | None:
    """The first ``dir/name`` that is a file."""
    return next((d / name for d in dirs if (d / name).is_file()), None)


@dataclass
class DialogLabels:
    """CelebA-Dialog degrees (0-5, -1 = not annotated) of every CelebA image, per attribute."""

    path: Path
    degrees: dict[str, np.ndarray]
    hq_mapping: Path | None
    n_rows: int
    n_matched: int

    def summary(self) -> dict[str, object]:
        """Counts and files for the manifest and the console."""
        return {"file": str(self.path), "hq_mapping": None if self.hq_mapping is None else str(self.hq_mapping),
                "rows": self.n_rows, "matched_images": self.n_matched}


def read_dialog(path: Path, names: list[str], mapping: Path | None, attr_path: Path) -> DialogLabels:
    """Read ``combined_annotation.txt`` by its header names; HQ names go through ``mapping``."""
    lines = [line for line in _lines(path) if line.strip()]
    if not lines:
        raise UserError(f"{path}: empty; expected a header line 'img_name {' '.join(DIALOG_ATTRIBUTES)}'")
    header = lines[0].split()
    absent = [a for a in DIALOG_ATTRIBUTES if a not in header]
    if absent:
        raise UserError(f"{path}: line 1 should be the header 'img_name {' '.join(DIALOG_ATTRIBUTES)}', "
                        f"got {lines[0][:80]!r} (no column {', '.join(absent)})")
    # The header may or may not name the image column; values are located by name either way.
    names_image_column = header[0].lower() in ("img_name", "image", "image_id", "name")
    shift = 0 if names_image_column else 1
    columns = {a: header.index(a) + shift for a in DIALOG_ATTRIBUTES}
    width = len(header) + shift
    valid = {str(k) for k in range(N_DEGREES)}
    rows: dict[str, list[int]] = {}
    for i, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if len(fields) != width or any(fields[c] not in valid for c in columns.values()):
            raise UserError(f"{path}: line {i} should be an image name and {width - 1} degrees 0-5 "
                            f"(columns {' '.join(header)}), got {line[:80]!r}")
        rows[fields[0]] = [int(fields[c]) for c in columns.values()]
    rows, used_mapping = _to_celeba_names(rows, names, path, mapping, attr_path)
    index = {n: i for i, n in enumerate(names)}
    degrees = {a: np.full(len(names), -1, dtype=np.int8) for a in DIALOG_ATTRIBUTES}
    matched = 0
    for name, values in rows.items():
        i = index.get(name)
        if i is None:
            continue
        matched += 1
        for a, v in zip(DIALOG_ATTRIBUTES, values):
            degrees[a][i] = v
    return DialogLabels(path, degrees, mapping if used_mapping else None, len(lines) - 1, matched)


def _to_celeba_names(rows: dict[str, list[int]], names: list[str], path: Path, mapping: Path | None,
                     attr_path: Path) -> tuple[dict[str, list[int]], bool]:
    """Rows keyed by CelebA names: as they are, or (the HQ variant) through the mapping file;
    and whether the mapping was used."""
    known = set(names)
    if not rows or any(name in known for name in rows):
        return rows, False
    hq_like = all(Path(n).stem.isdigit() and len(Path(n).stem) < 6 for n in list(rows)[:50])
    if mapping is None:
        if hq_like:
            raise UserError(f"{path} is keyed by CelebA-HQ names (e.g. {_examples(list(rows))}); reading it needs "
                            f"{HQ_MAPPING_FILE} (from CelebA-HQ) next to it or in the CelebA folder")
        raise UserError(f"the image names of {path} (e.g. {_examples(list(rows))}) match none of {attr_path} "
                        f"(e.g. {_examples(names)}); use the CelebA-Dialog annotation of the same images")
    hq_to_celeba = read_hq_mapping(mapping)
    out: dict[str, list[int]] = {}
    for name, values in rows.items():
        stem = Path(name).stem
        target = hq_to_celeba.get(int(stem)) if stem.isdigit() else None
        if target is None:
            raise UserError(f"{path}: image {name!r} is not in {mapping} (which maps CelebA-HQ indices "
                            f"0-{max(hq_to_celeba, default=-1)} to CelebA names)")
        out[target] = values
    return out, True


def read_hq_mapping(path: Path) -> dict[int, str]:
    """CelebA-HQ index -> CelebA file name, from ``CelebA-HQ-to-CelebA-mapping.txt``
    (header ``idx orig_idx orig_file``)."""
    lines = [line for line in _lines(path) if line.strip()]
    header = lines[0].split() if lines else []
    if not {"idx", "orig_file"} <= set(header):
        raise UserError(f"{path}: line 1 should be the header 'idx orig_idx orig_file', got "
                        f"{(lines[0] if lines else '')[:80]!r}")
    idx_col, file_col = header.index("idx"), header.index("orig_file")
    out: dict[int, str] = {}
    for i, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if len(fields) != len(header) or not fields[idx_col].isdigit():
            raise UserError(f"{path}: line {i} should be '<idx> <orig_idx> <orig_file>', got {line[:80]!r}")
        out[int(fields[idx_col])] = fields[file_col]
    return out


def square_crop(img: Image.Image, crop: int, size: int, draft: bool = False) -> np.ndarray:
    """uint8 (3, size, size): the centred ``crop`` px square of ``img`` (RGB), resized with Lanczos.

    ``draft`` lets the JPEG decoder downscale by 2, 4 or 8 while decoding (never below the final
    size), which is several times faster; the pixels differ slightly, so it is a task setting.
    """
    w, h = img.size
    side = min(crop, w, h)
    if draft and img.format == "JPEG":
        img.draft("RGB", (-(-w * size // side), -(-h * size // side)))
        side = max(size, round(side * img.size[0] / w))
        w, h = img.size
    img = img.convert("RGB")
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
