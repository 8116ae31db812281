"""``bench perf fid``: the harness's Fréchet distance against pytorch-fid's, on 2048-d statistics."""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np

from bench.tasks.metrics import feature_statistics, frechet_distance


def perf_main(name: str, argv: list[str]) -> int:
    """``bench perf fid``: this module's Fréchet distance vs pytorch-fid's on 2048-d statistics.

    Prints figures, then as the last line one JSON object with ``max_rel_diff_vs_pytorch_fid``
    and ``speedup_vs_pytorch_fid`` (pytorch-fid time / this module's time, medians).
    """
    from pytorch_fid.fid_score import calculate_frechet_distance

    parser = argparse.ArgumentParser(prog=f"bench perf {name}", description=perf_main.__doc__)
    parser.add_argument("--dim", type=int, default=2048, help="feature dimension")
    parser.add_argument("--n", type=int, default=2500, help="feature vectors per set (>= 2,500 for the record)")
    parser.add_argument("--pairs", type=int, default=2, help="pairs of statistics compared (pytorch-fid: 15-45 s each)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of this module's distance per pair")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    rel_diffs, ours_s, theirs_s, values = [], [], [], []
    for pair in range(args.pairs):
        # correlated, anisotropic features like a network's, the second set shifted and mixed
        mixing = rng.standard_normal((args.dim, args.dim)) / math.sqrt(args.dim)
        scale = np.exp(rng.uniform(-2.0, 1.0, args.dim))
        feats_a = (rng.standard_normal((args.n, args.dim)) * scale) @ mixing
        shift = 0.1 * (pair + 1) * rng.standard_normal(args.dim)
        feats_b = (rng.standard_normal((args.n, args.dim)) * scale) @ (mixing + 0.1 * (pair + 1) *
                                                                        rng.standard_normal(mixing.shape) /
                                                                        math.sqrt(args.dim)) + shift
        mu1, sigma1 = feature_statistics(feats_a)
        mu2, sigma2 = feature_statistics(feats_b)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            ours = frechet_distance(mu1, sigma1, mu2, sigma2)
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        theirs = float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))
        theirs_s.append(time.perf_counter() - t0)
        ours_s.append(float(np.median(times)))
        rel_diffs.append(abs(ours - theirs) / abs(theirs))
        values.append((ours, theirs))
        print(f"pair {pair}: d={args.dim} n={args.n}  ours {ours:.6f} ({ours_s[-1]:.2f} s)  "
              f"pytorch-fid {theirs:.6f} ({theirs_s[-1]:.2f} s)  rel diff {rel_diffs[-1]:.2e}", flush=True)
    result = {"benchmark": name, "dim": args.dim, "n": args.n, "pairs": args.pairs,
              "max_rel_diff_vs_pytorch_fid": max(rel_diffs),
              "speedup_vs_pytorch_fid": float(np.median(theirs_s) / np.median(ours_s)),
              "ours_s_median": float(np.median(ours_s)), "pytorch_fid_s_median": float(np.median(theirs_s)),
              "fid_values": [v[0] for v in values],
              # BLAS threading decides both timings (oversubscribed cores make threaded LAPACK spin)
              "blas_threads_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                             "MKL_NUM_THREADS") if k in os.environ},
              "cpus": os.cpu_count()}
    print(json.dumps(result))
    return 0
