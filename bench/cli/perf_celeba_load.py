"""``bench perf celeba-load``: decode+crop+resize throughput of CelebA-size JPEGs, and the cache's read speed."""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

#: the aligned CelebA image size (width, height) and a JPEG quality close to the originals'
CELEBA_SIZE = (178, 218)
JPEG_QUALITY = 95


def write_folder(root: Path, n: int, seed: int) -> None:
    """``n`` CelebA-size JPEGs with smooth content and pixel noise (compressing like photos) and the
    two annotation files, in torchvision's layout."""
    from PIL import Image

    from bench.tasks.celeba_data import ATTR_FILE, DIALOG_ATTRIBUTES, IMAGE_DIR, PARTITION_FILE

    rng = np.random.default_rng(seed)
    (root / IMAGE_DIR).mkdir(parents=True)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    for name in names:
        coarse = rng.integers(0, 256, (7, 6, 3), dtype=np.uint8)
        img = Image.fromarray(coarse).resize(CELEBA_SIZE, Image.Resampling.BICUBIC)
        pixels = np.asarray(img, dtype=np.int16) + rng.integers(-12, 13, (CELEBA_SIZE[1], CELEBA_SIZE[0], 3))
        buffer = io.BytesIO()
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=JPEG_QUALITY)
        (root / IMAGE_DIR / name).write_bytes(buffer.getvalue())
    rows = [f"{name} " + " ".join(rng.choice(["-1", " 1"], len(DIALOG_ATTRIBUTES))) for name in names]
    (root / ATTR_FILE).write_text("\n".join([str(n), " ".join(DIALOG_ATTRIBUTES), *rows]) + "\n")
    (root / PARTITION_FILE).write_text("".join(f"{name} {i % 3}\n" for i, name in enumerate(names)))


def perf_main(name: str, argv: list[str]) -> int:
    """``bench perf celeba-load``: images/s of decode+crop+resize into the 64x64 cache (full and JPEG
    draft decoding) and of reading the cache back, on a generated folder of CelebA-size JPEGs.

    Prints figures, then as the last line one JSON object.
    """
    from bench.tasks.celeba import CelebAFolder

    parser = argparse.ArgumentParser(prog=f"bench perf {name}", description=perf_main.__doc__)
    parser.add_argument("--n", type=int, default=2000, help="JPEGs to generate (CelebA has 202,599)")
    parser.add_argument("--threads", type=int, default=None, help="decoding threads (default: min(8, cores))")
    parser.add_argument("--batch", type=int, default=4096, help="images per cache read")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    result: dict[str, object] = {"benchmark": name, "n": args.n, "cpus": os.cpu_count(), "threads": args.threads}
    with tempfile.TemporaryDirectory(prefix="celeba-load-") as tmp:
        root = Path(tmp) / "celeba"
        t0 = time.perf_counter()
        write_folder(root, args.n, args.seed)
        print(f"wrote {args.n} JPEGs of {CELEBA_SIZE[0]}x{CELEBA_SIZE[1]} in {time.perf_counter() - t0:.1f} s",
              flush=True)
        for draft in (False, True):
            folder = CelebAFolder(root, jpeg_draft=draft, cache_dir=Path(tmp) / f"cache-draft-{draft}")
            t0 = time.perf_counter()
            folder.cache.fill(np.arange(args.n), threads=args.threads)
            rate = args.n / (time.perf_counter() - t0)
            result[f"decode_images_per_s{'_draft' if draft else ''}"] = rate
            print(f"decode+crop+resize{' (JPEG draft)' if draft else ''}: {rate:,.0f} images/s", flush=True)
        order = np.random.default_rng(args.seed).permutation(args.n)
        t0 = time.perf_counter()
        for start in range(0, args.n, args.batch):
            folder.cache.read(order[start:start + args.batch])
        rate = args.n / (time.perf_counter() - t0)
        result["cache_read_images_per_s"] = rate
        print(f"cache read (random order, batches of {args.batch}): {rate:,.0f} images/s "
              f"(page cache warm: the file was just written)", flush=True)
    print(json.dumps(result))
    return 0
