"""``bench perf evaluate --task T``: batched decode+score throughput vs the forward-only ceiling.

``images_per_s`` times the task's public path, ``task.evaluate(latents)`` (numpy in, numpy out:
validation, batched decode and scoring under inference_mode, decoded images kept as numpy).
``numpy_path_images_per_s`` times ``score_images(decode(latents))``, the path runs with
retraining or metrics take because they need the images. ``forward_only_images_per_s`` runs
the same networks on a code tensor already on the device, in the same batch size, with no
numpy conversion: the achievable ceiling. Both take the best of ``--repeats`` interleaved
timings (the machine is shared), each on fresh latents so no cache can help. On a busy machine
wall-clock figures are noisy, so the CPU time of both paths is reported as well
(``cpu_ratio``: forward-only CPU seconds / evaluate CPU seconds, 1.0 = no overhead).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from bench.tasks.vqvae import decode_np


def _forward_only(task: object, codes: torch.Tensor, batch_size: int) -> None:
    model = task.model  # type: ignore[attr-defined]
    with torch.inference_mode():
        for i in range(0, len(codes), batch_size):
            images = model.decode(codes[i:i + batch_size])
            scores = task.score_tensor(images)  # type: ignore[attr-defined]
            if scores is None:  # no tensor path: score the same batch through numpy
                task.score_images(images.cpu().numpy())  # type: ignore[attr-defined]
            elif scores.device.type == "cuda":
                torch.cuda.synchronize(scores.device)


def _parser(name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"bench perf {name}", description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, help="image task name")
    parser.add_argument("--task-opt", action="append", metavar="KEY=VALUE", help="task parameter")
    parser.add_argument("--artifacts", default=None, help="artifacts folder")
    parser.add_argument("--device", default=None, help="auto, cpu or cuda[:N]")
    parser.add_argument("--n", type=int, default=1024, help="latents per timing")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timings of each path (best is kept)")
    parser.add_argument("--batch-size", type=int, default=256, help="decode batch size (as in decode_np)")
    return parser


def _timings(task: object, args: argparse.Namespace) -> dict[str, list[float]]:
    """Interleaved wall and CPU timings of the three paths, each on fresh latents."""
    rng = np.random.default_rng(0)
    space = task.space  # type: ignore[attr-defined]
    warm = space.sample(min(args.n, args.batch_size), rng)
    task.evaluate(warm)  # type: ignore[attr-defined]  # loads the models, warms up kernels
    _forward_only(task, torch.from_numpy(warm).to(task.device), args.batch_size)  # type: ignore[attr-defined]
    out: dict[str, list[float]] = {k: [] for k in ("evaluate", "forward", "numpy", "evaluate_cpu", "forward_cpu")}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        task.score_images(task.decode(space.sample(args.n, rng)))  # type: ignore[attr-defined]
        out["numpy"].append(time.perf_counter() - t0)
        latents = space.sample(args.n, rng)
        t0, c0 = time.perf_counter(), time.process_time()
        scores = task.evaluate(latents).scores  # type: ignore[attr-defined]
        out["evaluate"].append(time.perf_counter() - t0)
        out["evaluate_cpu"].append(time.process_time() - c0)
        assert scores.shape == (args.n,) and np.isfinite(scores).all()
        codes = torch.from_numpy(space.sample(args.n, rng)).to(task.device)  # type: ignore[attr-defined]
        if codes.device.type == "cuda":
            torch.cuda.synchronize(codes.device)
        t0, c0 = time.perf_counter(), time.process_time()
        _forward_only(task, codes, args.batch_size)
        out["forward"].append(time.perf_counter() - t0)
        out["forward_cpu"].append(time.process_time() - c0)
    t0 = time.perf_counter()
    decode_np(task.model, space.sample(args.n, rng), task.device, args.batch_size)  # type: ignore[attr-defined]
    out["decode"] = [time.perf_counter() - t0]
    return out


def perf_main(name: str, argv: list[str]) -> int:
    """Print throughput figures; the last line is one JSON object."""
    from bench.cli.prepare import _build_task

    args = _parser(name).parse_args(argv)
    task = _build_task(args.task, args.task_opt, args.artifacts, args.device)
    t = _timings(task, args)
    result = {
        "benchmark": name, "task": args.task, "device": str(task.device), "threads": torch.get_num_threads(),
        "n": args.n, "batch_size": args.batch_size, "repeats": args.repeats,
        "images_per_s": args.n / min(t["evaluate"]), "forward_only_images_per_s": args.n / min(t["forward"]),
        "decode_only_images_per_s": args.n / t["decode"][0], "numpy_path_images_per_s": args.n / min(t["numpy"]),
    }
    result["ratio"] = result["images_per_s"] / result["forward_only_images_per_s"]
    result["cpu_ratio"] = float(np.median(t["forward_cpu"]) / np.median(t["evaluate_cpu"]))
    print(f"task {args.task} on {task.device} ({result['threads']} threads), {args.n} latents, batch {args.batch_size}")
    print(f"  evaluate (public path):        {result['images_per_s']:10.1f} images/s   "
          f"(timings {', '.join(f'{x:.3f}' for x in t['evaluate'])} s)")
    print(f"  forward only (tensor ceiling): {result['forward_only_images_per_s']:10.1f} images/s   "
          f"(timings {', '.join(f'{x:.3f}' for x in t['forward'])} s)")
    print(f"  decode + score_images (numpy): {result['numpy_path_images_per_s']:10.1f} images/s")
    print(f"  ratio {result['ratio']:.3f} (target >= 0.8); CPU-time ratio {result['cpu_ratio']:.3f} "
          f"(median CPU s: evaluate {np.median(t['evaluate_cpu']):.3f}, forward only {np.median(t['forward_cpu']):.3f})")
    print(json.dumps(result))
    return 0
