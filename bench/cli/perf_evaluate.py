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


def perf_main(name: str, argv: list[str]) -> int:
    """Print throughput figures; the last line is one JSON object."""
    from bench.cli.prepare import _build_task

    parser = argparse.ArgumentParser(prog=f"bench perf {name}", description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, help="image task name")
    parser.add_argument("--task-opt", action="append", metavar="KEY=VALUE", help="task parameter")
    parser.add_argument("--artifacts", default=None, help="artifacts folder")
    parser.add_argument("--device", default=None, help="auto, cpu or cuda[:N]")
    parser.add_argument("--n", type=int, default=1024, help="latents per timing")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timings of each path (best is kept)")
    parser.add_argument("--batch-size", type=int, default=256, help="decode batch size (as in decode_np)")
    args = parser.parse_args(argv)

    task = _build_task(args.task, args.task_opt, args.artifacts, args.device)
    rng = np.random.default_rng(0)
    warm = task.space.sample(min(args.n, args.batch_size), rng)
    task.evaluate(warm)  # loads the models, warms up kernels
    _forward_only(task, torch.from_numpy(warm).to(task.device), args.batch_size)

    evaluate_s, forward_s, numpy_s, evaluate_cpu, forward_cpu = [], [], [], [], []
    for _ in range(args.repeats):
        latents = task.space.sample(args.n, rng)
        t0 = time.perf_counter()
        task.score_images(task.decode(latents))
        numpy_s.append(time.perf_counter() - t0)
        latents = task.space.sample(args.n, rng)
        t0, c0 = time.perf_counter(), time.process_time()
        scores = task.evaluate(latents).scores
        evaluate_s.append(time.perf_counter() - t0)
        evaluate_cpu.append(time.process_time() - c0)
        assert scores.shape == (args.n,) and np.isfinite(scores).all()
        codes = torch.from_numpy(task.space.sample(args.n, rng)).to(task.device)
        if task.device.type == "cuda":
            torch.cuda.synchronize(task.device)
        t0, c0 = time.perf_counter(), time.process_time()
        _forward_only(task, codes, args.batch_size)
        forward_s.append(time.perf_counter() - t0)
        forward_cpu.append(time.process_time() - c0)
    t0 = time.perf_counter()
    decode_np(task.model, task.space.sample(args.n, rng), task.device, args.batch_size)
    decode_s = time.perf_counter() - t0

    result = {
        "benchmark": name, "task": args.task, "device": str(task.device), "threads": torch.get_num_threads(),
        "n": args.n, "batch_size": args.batch_size, "repeats": args.repeats,
        "images_per_s": args.n / min(evaluate_s), "forward_only_images_per_s": args.n / min(forward_s),
        "decode_only_images_per_s": args.n / decode_s, "numpy_path_images_per_s": args.n / min(numpy_s),
    }
    result["ratio"] = result["images_per_s"] / result["forward_only_images_per_s"]
    result["cpu_ratio"] = float(np.median(forward_cpu) / np.median(evaluate_cpu))
    print(f"task {args.task} on {task.device} ({result['threads']} threads), {args.n} latents, batch {args.batch_size}")
    print(f"  evaluate (public path):        {result['images_per_s']:10.1f} images/s   "
          f"(timings {', '.join(f'{t:.3f}' for t in evaluate_s)} s)")
    print(f"  forward only (tensor ceiling): {result['forward_only_images_per_s']:10.1f} images/s   "
          f"(timings {', '.join(f'{t:.3f}' for t in forward_s)} s)")
    print(f"  decode + score_images (numpy): {result['numpy_path_images_per_s']:10.1f} images/s")
    print(f"  ratio {result['ratio']:.3f} (target >= 0.8); CPU-time ratio {result['cpu_ratio']:.3f} "
          f"(median CPU s: evaluate {np.median(evaluate_cpu):.3f}, forward only {np.median(forward_cpu):.3f})")
    print(json.dumps(result))
    return 0
