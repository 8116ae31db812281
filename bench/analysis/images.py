"""Image grids of the report: training images next to each method's top-k distinct queried images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.analysis.aggregate import METHOD, PATH, Sweep
from bench.analysis.plotting import pyplot as _pyplot
from bench.analysis.plotting import save_figure
from bench.analysis.tables import fmt_number
from bench.core import constants as C


def _task_for(sweep: Sweep, task_name: str) -> Any:
    """Build the task of a sweep's runs with their parameters (None when it cannot be built)."""
    from bench.core.registry import task_spec

    run = sweep.complete_runs[sweep.complete_runs[C.TASK] == task_name].iloc[0]
    params = sweep.info(run).get("config", {}).get("task_params", {})
    return task_spec(task_name).build(overrides=params)


def _query_images(path: str) -> np.ndarray | None:
    """The exact images a run scored (uint8, from its checkpoint), or None when not stored."""
    from bench.store.files import RunFolder

    saved = RunFolder(Path(path)).read_checkpoint()
    images = getattr(saved[3], "query_images", None) if saved is not None else None
    return images if images is not None and len(images) else None


def top_images(sweep: Sweep, task_name: str, k: int) -> tuple[np.ndarray | None, dict[str, list[tuple[np.ndarray, float, int]]], str]:
    """Training images and, per method, the k best distinct queried images (image, score, seed).

    Queried images come from each run's checkpoint (what was really scored, even after
    retraining changed the decoder); without them, latents are decoded with the task's
    untrained-on-queries model, which is exact only for rows with model version 0.
    Returns (training images or None, images per method, note); (None, {}, reason) when the
    task has no images or cannot be built.
    """
    from bench.store.files import decode_latents

    try:
        task = _task_for(sweep, task_name)
        init = task.initial_data(0, k)
        train = init.images if init.images is not None else task.decode(init.latents)
    except NotImplementedError:
        return None, {}, "task has no images"
    except Exception as exc:  # noqa: BLE001 - a missing model must not stop the rest of the report
        return None, {}, f"cannot build the task ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    runs = sweep.complete_runs[sweep.complete_runs[C.TASK] == task_name]
    queries = sweep.records[(sweep.records[C.TASK] == task_name) & ~sweep.records[C.IS_INIT]]
    out: dict[str, list[tuple[np.ndarray, float, int]]] = {}
    skipped = 0
    for method in sorted(runs[METHOD].unique()):
        rows = queries[queries[METHOD] == method].sort_values([C.SCORE, C.SEED, C.EVAL], ascending=[False, True, True],
                                                             kind="stable")
        rows = rows.drop_duplicates(C.LATENT, keep="first")
        stored: dict[int, np.ndarray | None] = {}
        chosen = []
        for _, row in rows.iterrows():
            seed = int(row[C.SEED])
            if seed not in stored:
                run = runs[(runs[METHOD] == method) & (runs[C.SEED] == seed)].iloc[0]
                stored[seed] = _query_images(str(run[PATH]))
            images = stored[seed]
            if images is not None and int(row[C.QUERY]) <= len(images):
                image = images[int(row[C.QUERY]) - 1].astype(np.float32) / 255.0
            elif int(row[C.MODEL_VERSION]) == 0:
                grid = sweep.info(runs[(runs[METHOD] == method) & (runs[C.SEED] == seed)].iloc[0])["grid"]
                latent = decode_latents([row[C.LATENT]], (grid["height"], grid["width"]), grid["codebook_size"])
                image = np.asarray(task.decode(latent))[0]
            else:
                skipped += 1
                continue
            chosen.append((image, float(row[C.SCORE]), seed))
            if len(chosen) == k:
                break
        out[method] = chosen
    note = f"{skipped} retrained-model queries without stored images skipped" if skipped else ""
    return train, out, note


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
