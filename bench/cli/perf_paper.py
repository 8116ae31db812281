"""``bench perf paper``: the paper's per-query loop at full size, timed (last line: one JSON object).

One run of ``lgbm-milp/paper`` (LightGBM, 800 depth-2 trees, fit on the best 2,000 plus 8,000
random points, exact MILP acquisition with the exploration bonus) on ``smile-synthetic`` from
``--n-initial`` encoded faces (10,000 by default, so the surrogate sees 10,000 points as in the
paper), with weighted retraining of the VQ-VAE every 5 queries, for ``--queries`` queries. Each
query is timed in parts: surrogate fit, MILP model build, MILP solve, decode+score of the proposal,
and the retraining, in wall-clock seconds; ``step_cpu_s`` is the
process's CPU time for the whole query (on a shared machine, wall time / CPU time shows the
contention). The last line gives the medians per query, the mean, the slowest solve, the hours
500 queries would take (from the mean: a seed's time is the sum of its queries) and the hours
they would take if every MILP solve took no time (the floor the rest of the loop sets). A
retraining follows every 5th query except the last, so 500 queries retrain 99 times; the
projection amortises the mean retraining over that count (a run of 5 queries or fewer times
none, and then projects nothing).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from bench.cli.common import key_values
from bench.core import constants as C
from bench.core import registry
from bench.core.config import RunConfig
from bench.run.loop import run

#: queries of one seed of the paper's protocol
PAPER_QUERIES = 500


def paper_config(queries: int, n_initial: int, seed: int, task: str,
                 optimizer_params: dict[str, Any] | None = None) -> RunConfig:
    """The paper's method and retraining, shortened to ``queries`` queries; a parameter the
    optimizer does not take is named before any work starts."""
    config = RunConfig.from_dict({"task": task, "optimizer": "lgbm-milp/paper", "seed": seed, "budget": queries,
                                "optimizer_params": optimizer_params or {},
                                "batch_size": 1, "n_initial": n_initial,
                                "retrain": {"k": 1e-3, "every": 5, "epochs": 0.1},
                                "metrics": {"every": 0, "n_images": 20}})
    registry.optimizer_spec(config.optimizer).resolved_params(config.optimizer_params)
    return config


def timed_queries(config: RunConfig) -> tuple[list[dict[str, float]], float]:
    """Run ``config`` in memory; per-query seconds by part, and the seconds before the first query."""
    task = registry.task_spec(config.task).build(overrides=config.task_params)
    spec = registry.optimizer_spec(config.optimizer)
    optimizer = spec.build(task.space, config.seed, overrides=config.optimizer_params)
    parts: list[dict[str, float]] = []
    t0, c0 = time.perf_counter(), time.process_time()
    setup_s = 0.0
    batches = run(task, optimizer, config, preset_hash=spec.preset_hash(config.optimizer_params))
    for index, result in enumerate(batches):
        step_s, step_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        if index == 0:
            setup_s = step_s  # initial design (encode and score) and its surrogate-free setup
        else:
            info = next((d for d in result.diagnostics if "info_solve_s" in d), {})
            row = result.records[0]
            propose_s, evaluate_s = float(row[C.PROPOSE_S]), float(row[C.EVALUATE_S])
            parts.append({"fit_s": float(info.get("info_fit_s", np.nan)),
                          "build_s": float(info.get("info_build_s", np.nan)),
                          "solve_s": float(info.get("info_solve_s", np.nan)),
                          "propose_s": propose_s, "decode_score_s": evaluate_s,
                          "retrain_s": step_s - propose_s - evaluate_s if result.retrain_stats else 0.0,
                          "step_s": step_s, "step_cpu_s": step_cpu_s,
                          "status": info.get("info_status", "none"), "gap": info.get("info_gap", np.nan),
                          "lazy_rounds": int(info.get("info_lazy_rounds", 0))})
            print(json.dumps({"query": index, **parts[-1]}), flush=True)
        t0, c0 = time.perf_counter(), time.process_time()
    return parts, setup_s


def retrainings(queries: int, every: int) -> int:
    """How many retrainings a run of ``queries`` single-point queries does (none after the last)."""
    return max(0, (queries - 1) // every)


def summarize(parts: list[dict[str, Any]], setup_s: float, config: RunConfig) -> dict[str, Any]:
    """Median seconds per query by part, retraining amortised, and the projection to 500 queries.

    A seed's time is the sum of its queries, so the projection uses the mean seconds per query
    (a few slow solves weigh in full); the medians show the typical query. Retraining is
    amortised as its mean over the retrainings timed times the count 500 queries do, divided by
    500: dividing the time measured by the queries run would count one retraining per 10
    queries in a 10-query run where the protocol does one per 5. None when none was timed."""
    def median(key: str) -> float:
        return float(np.nanmedian([p[key] for p in parts]))

    def mean(key: str) -> float:
        return float(np.nanmean([p[key] for p in parts]))

    timed = [p["retrain_s"] for p in parts if p["retrain_s"] > 0.0]
    retrain_mean = float(np.mean(timed)) if timed else None
    retrain_per_query = (retrain_mean * retrainings(PAPER_QUERIES, config.retrain.every) / PAPER_QUERIES
                         if retrain_mean is not None else None)
    known_retrain = retrain_per_query or 0.0
    per_query = median("propose_s") + median("decode_score_s") + known_retrain
    mean_per_query = mean("propose_s") + mean("decode_score_s") + known_retrain
    statuses: dict[str, int] = {}
    for p in parts:
        statuses[p["status"]] = statuses.get(p["status"], 0) + 1
    return {"benchmark": "paper", "task": config.task, "queries": len(parts), "n_initial": config.n_initial,
            "median_fit_s": median("fit_s"), "median_build_s": median("build_s"), "median_solve_s": median("solve_s"),
            "median_propose_s": median("propose_s"), "median_decode_score_s": median("decode_score_s"),
            "retrainings_timed": len(timed), "retrain_s_mean": retrain_mean,
            "retrain_s_per_query_amortised": retrain_per_query, "median_s_per_query": per_query,
            "max_solve_s": float(np.nanmax([p["solve_s"] for p in parts])), "mean_s_per_query": mean_per_query,
            "median_step_cpu_s": median("step_cpu_s"), "setup_s": setup_s, "statuses": statuses,
            "projected_hours_500_queries": (setup_s + PAPER_QUERIES * mean_per_query) / 3600.0 if timed else None,
            "projected_hours_500_queries_without_solve":
                (setup_s + PAPER_QUERIES * (mean_per_query - mean("solve_s"))) / 3600.0 if timed else None}


def perf_main(name: str, argv: list[str]) -> int:
    """Entry point of ``bench perf paper``; one line per query, then the JSON summary."""
    parser = argparse.ArgumentParser(prog=f"bench perf {name}", description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=20, help="queries to time (the paper runs 500)")
    parser.add_argument("--n-initial", type=int, default=10_000, help="encoded faces of the initial design")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--task", default="smile-synthetic")
    parser.add_argument("--opt", action="append", metavar="KEY=VALUE",
                        help="override a parameter of lgbm-milp/paper, e.g. route=levels")
    args = parser.parse_args(argv)
    if args.queries < 1 or args.n_initial < 1:
        from bench.core.errors import UserError

        raise UserError(f"--queries and --n-initial must be at least 1, got {args.queries} and {args.n_initial}")
    config = paper_config(args.queries, args.n_initial, args.seed, args.task, key_values(args.opt, "--opt"))
    parts, setup_s = timed_queries(config)
    print(json.dumps(summarize(parts, setup_s, config)))
    return 0
