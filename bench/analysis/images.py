"""Image grids of the report: training images next to each method's top-k distinct queried images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis.aggregate import METHOD, Sweep
from bench.analysis.plotting import pyplot as _pyplot
from bench.analysis.plotting import save_figure
from bench.analysis.tables import fmt_number
from bench.core import constants as C


def _top_distinct(queries: pd.DataFrame, k: int) -> pd.DataFrame:
    """The ``k`` best queries with distinct latents (ties: lower seed, then earlier query)."""
    rows = queries.sort_values([C.SCORE, C.SEED, C.EVAL], ascending=[False, True, True], kind="stable")
    return rows.drop_duplicates(C.LATENT, keep="first").head(k)


def top_images(sweep: Sweep, task_name: str, k: int) -> tuple[np.ndarray | None, dict[str, list[tuple[np.ndarray, float, int]]], str]:
    """Initial-design images and, per method, the k best distinct queried images (image, score, seed).

    Everything comes from the images each run stored as it scored them (what was really scored,
    even after retraining changed the decoder); nothing is decoded again and no model is needed.
    Returns (initial images or None, images per method, note); (None, {}, reason) when the runs
    of the task stored no images.
    """
    runs = sweep.complete_runs[sweep.complete_runs[C.TASK] == task_name]
    train = next((images for _, run in runs.iterrows() if (images := sweep.initial_images(run)) is not None), None)
    if train is None:
        return None, {}, "its runs stored no images (not an image task, or written by an older version)"
    queries = sweep.records[(sweep.records[C.TASK] == task_name) & ~sweep.records[C.IS_INIT]]
    out: dict[str, list[tuple[np.ndarray, float, int]]] = {}
    for method in sorted(runs[METHOD].unique()):
        stored = {int(run[C.SEED]): sweep.query_images(run) for _, run in runs[runs[METHOD] == method].iterrows()}
        chosen = []
        for _, row in _top_distinct(queries[queries[METHOD] == method], k).iterrows():
            images = stored.get(int(row[C.SEED]))
            if images is not None and int(row[C.QUERY]) <= len(images):
                chosen.append((images[int(row[C.QUERY]) - 1].astype(np.float32) / 255.0, float(row[C.SCORE]),
                               int(row[C.SEED])))
        out[method] = chosen
    return train.astype(np.float32) / 255.0, out, ""


def plot_image_grid(train: np.ndarray, per_method: dict[str, list[tuple[np.ndarray, float, int]]], k: int,
                    task_name: str, folder: Path) -> list[Path]:
    """Rows: training images, then each method's top-k queried images with their scores."""
    plt = _pyplot()
    labels = ["training data"] + list(per_method)
    fig, axes = plt.subplots(len(labels), k, figsize=(1.15 * k + 1.6, 1.3 * len(labels)), squeeze=False)
    for r, label in enumerate(labels):
        items = [(img, None, None) for img in train[:k]] if r == 0 else per_method[label]
        for c in range(k):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(items):
                image, score, seed = items[c]
                image = np.clip(np.asarray(image, dtype=np.float32), 0, 1).transpose(1, 2, 0)
                ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
                if score is not None:
                    ax.set_title(f"{fmt_number(score)} (s{seed})", fontsize=7, pad=2)
            if c == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    height = fig.get_size_inches()[1]
    fig.subplots_adjust(top=1 - 0.45 / height, bottom=0.02, hspace=0.3, wspace=0.08)  # a fixed title margin
    fig.suptitle(f"{task_name}: top-{k} queried images per method (score, seed)", fontsize=9, y=1 - 0.1 / height)
    return save_figure(fig, folder, f"top_images_{task_name.replace('/', '+')}")
