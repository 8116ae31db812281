"""``bench perf propose --optimizer NAME``: seconds per ``propose`` call as the data grow.

For every N in ``--sizes`` it draws N random latents of the closed-form task at 8x8 positions x
256 codes (``--task`` to change), scores them, builds the optimizer with ``--seed`` and times one
``propose(--batch, data)``: wall-clock and process CPU seconds (the machine may be shared; CPU
time is the steadier figure). One JSON line per N, then one summary line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from bench.cli.common import key_values
from bench.core import registry
from bench.core.optimizer import Observations


def perf_main(name: str, argv: list[str]) -> int:
    """Time one proposal of ``--optimizer`` at each data size."""
    parser = argparse.ArgumentParser(prog=f"bench perf {name}", description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", required=True, help="registered optimizer (or preset) name")
    parser.add_argument("--opt", action="append", metavar="KEY=VALUE", help="optimizer parameter")
    parser.add_argument("--task", default="closed-form/wide", help="task the data come from")
    parser.add_argument("--sizes", default="200,500,1000", help="comma-separated numbers of observations")
    parser.add_argument("--batch", type=int, default=1, help="points per proposal")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    task = registry.task_spec(args.task).build()
    overrides = key_values(args.opt, "--opt")
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        latents = task.space.sample(n, np.random.default_rng(np.random.SeedSequence([args.seed, n])))
        data = Observations(task.space, latents, task.evaluate(latents).scores, codebook=task.codebook(),
                            prior=task.code_prior())
        optimizer = registry.optimizer_spec(args.optimizer).build(task.space, args.seed, overrides=overrides)
        wall, cpu = time.perf_counter(), time.process_time()
        optimizer.propose(args.batch, data)
        row = {"optimizer": args.optimizer, "n_observations": n, "batch": args.batch,
               "seconds": round(time.perf_counter() - wall, 3), "cpu_seconds": round(time.process_time() - cpu, 3)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(json.dumps({"optimizer": args.optimizer, "task": args.task, "overrides": overrides,
                      "seconds_per_proposal": {r["n_observations"]: r["seconds"] for r in rows}}))
    return 0
