"""``bench prepare`` (train/check a VQ-VAE task's models) and ``bench grid`` (originals vs reconstructions)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from bench.core.errors import UserError


def _build_task(name: str, task_opts: list[str] | None, artifacts: str | None, device: str | None) -> Any:
    """The registered image task ``name`` with ``--task-opt`` parameters, artifacts folder and device."""
    from bench.cli.common import key_values
    from bench.core.registry import task_spec
    from bench.tasks.image_task import VQImageTask

    spec = task_spec(name)
    if not issubclass(spec.load(), VQImageTask):
        raise UserError(f"task {name!r} has no models to prepare (only VQ-VAE image tasks do)")
    params = key_values(task_opts, "--task-opt")
    if artifacts:
        params["artifacts"] = artifacts
    if device:
        params["device"] = device
    return spec.build(overrides=params)


def _add_task_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, help="image task name, see `bench list`")
    parser.add_argument("--task-opt", action="append", metavar="KEY=VALUE",
                        help="task parameter, e.g. root=/data/celeba or min_survival_corr=0.5")
    parser.add_argument("--artifacts", default=None, metavar="DIR",
                        help="artifacts folder (default: tasks/artifacts/<task> or $BENCH_ARTIFACTS/<task>)")
    parser.add_argument("--device", default=None, help="auto (CUDA when available), cpu or cuda[:N]")


def format_manifest(manifest: dict[str, Any]) -> list[str]:
    """Human-readable lines: validity checks, extra figures, training and scorer summaries."""
    lines = []
    for key, check in manifest.get("checks", {}).items():
        status = "ok  " if check.get("passed") else "FAIL"
        lines.append(f"  [{status}] {key:16s} {float(check['value']):10.4f}   (needs {check['op']} {check['threshold']})")
    figures = manifest.get("figures", {})
    if figures:
        lines.append("  figures: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                              for k, v in figures.items()))
    training = manifest.get("training", {})
    if training:
        stats = training.get("stats", {})
        seconds = training.get("seconds", {})
        lines.append(f"  vq-vae training: {training.get('epochs')} epochs x {training.get('n_images')} images"
                     f"{' (quick)' if training.get('quick') else ''}, {stats.get('steps')} steps, "
                     f"train PSNR {stats.get('psnr', float('nan')):.2f} dB, codes used {stats.get('codes_used')}, "
                     f"perplexity {stats.get('perplexity', float('nan')):.1f}")
        if seconds:
            lines.append("  seconds: " + ", ".join(f"{k}={v:.1f}" for k, v in seconds.items()))
    prior = manifest.get("prior")
    if prior:
        lines.append(f"  code prior: {prior.get('steps')} steps on {prior.get('n_latents')} encodings, NLL per code "
                     f"{prior.get('test_nll_per_code', float('nan')):.3f} nats on test codes "
                     f"(uniform codes: {prior.get('uniform_nll_per_code', float('nan')):.3f})")
    if manifest.get("scorers"):
        lines.append(f"  scorers: {manifest['scorers']}")
    return lines


def cmd_prepare(args: argparse.Namespace) -> int:
    """Train or load the task's models, print the validity checks, exit 1 when one fails."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    task = _build_task(args.task, args.task_opt, args.artifacts, args.device)
    start = time.perf_counter()
    manifest = task.prepare(retrain=args.retrain, device=task.device, quick=args.quick, progress=not args.quiet)
    elapsed = time.perf_counter() - start
    verb = "loaded and checked" if manifest.get("reloaded") else "prepared"
    print(f"{args.task}: {verb} in {elapsed:.1f}s on {task.device} -> {task.artifact_dir}")
    for line in format_manifest(manifest):
        print(line)
    failed = [k for k, v in manifest.get("checks", {}).items() if not v.get("passed")]
    if manifest.get("training", {}).get("quick"):
        outcome = " (not passed)" if failed else ""
        print(f"bench prepare: --quick built smoke-test artifacts: their checks are recorded{outcome}, not enforced; "
              f"runs on them are marked quick in run.json and kept apart from full runs in reports. "
              f"For benchmark figures run without --quick.")
    elif failed:
        print(f"bench prepare: validity checks failed ({', '.join(failed)}): the task will refuse to run; retrain "
              f"with more data or epochs (docs/data.md says what each check means)")
        return 1
    print(f"next: {next_command(args, task)}")
    return 0


def next_command(args: argparse.Namespace, task: Any) -> str:
    """The ``bench run`` command for the prepared task, with every option it needs (data folder included)."""
    options = [f"--task-opt {opt}" for opt in args.task_opt or []]
    data_root = getattr(task, "data_root", None)  # a folder given through the environment is spelled out
    if data_root and not any(opt.startswith("root=") for opt in args.task_opt or []):
        options.append(f"--task-opt root={data_root}")
    if args.artifacts:
        options.append(f"--task-opt artifacts={args.artifacts}")
    if args.device:
        options.append(f"--task-opt device={args.device}")
    return " ".join(["bench run --task", args.task, *options, "--optimizer random --seed 0 --budget 20",
                     "--out results/adhoc"])


def cmd_grid(args: argparse.Namespace) -> int:
    """Save a PNG: originals (odd rows) above their VQ reconstructions (even rows)."""
    import numpy as np
    import torch
    from torchvision.utils import save_image

    from bench.tasks.vqvae import decode_np, encode_np

    task = _build_task(args.task, args.task_opt, args.artifacts, args.device)
    images = task.training_images(args.split, args.n, task.split_seed(args.split) + args.seed)
    recon = decode_np(task.model, encode_np(task.model, images, task.device), task.device)
    per_row = min(args.n, 8)
    rows = []
    for i in range(0, args.n, per_row):
        rows += [images[i:i + per_row], recon[i:i + per_row]]
    grid = torch.from_numpy(np.concatenate(rows))
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, out, nrow=per_row, padding=2, pad_value=0.5)
    except OSError as exc:
        raise UserError(f"cannot write {str(out)!r}: {exc.strerror}") from None
    print(f"saved {args.n} originals (odd rows) and reconstructions (even rows) of split {args.split!r} -> {out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``bench prepare`` and ``bench grid``."""
    p = subparsers.add_parser(
        "prepare", help="train (or load) an image task's models and run its validity checks",
        description="Train the task's scorers and VQ-VAE (or load them), run the validity checks "
                    "(PSNR, codebook usage, property survival) and write manifest.json. Exits 1 when a check "
                    "of a full build fails; --quick builds are smoke tests whose checks are not enforced.")
    _add_task_options(p)
    p.add_argument("--retrain", action="store_true", help="train from scratch even if artifacts exist")
    p.add_argument("--quick", action="store_true",
                   help="tiny data and epochs: a smoke test (checks run and are recorded, not enforced)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_prepare)

    p = subparsers.add_parser(
        "grid", help="save a PNG of originals vs VQ-VAE reconstructions",
        description="Save a PNG grid: rows of original images of a split, each followed by its reconstruction.")
    _add_task_options(p)
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--n", type=int, default=16, help="number of images")
    p.add_argument("--split", default="test", help="data split (test, vqvae, scorer, reference-high, ...)")
    p.add_argument("--seed", type=int, default=0, help="offset of the split's data seed")
    p.set_defaults(func=cmd_grid)
