"""``bench perf acquisition``: this project's acquisition MILP against ENTMOOT's own model.

Interface with O2's module (optimizers/entmoot_opt.py): this benchmark calls
``entmoot_acquisition(booster, observed, codebook_size, beta=, acq_sense="exploration",
maximize=True, time_limit=, mip_gap=, solver="highs", seed=)`` and reads the returned
``EntmootSolution``'s ``latent``, ``objective``, ``bound``, ``status``, ``build_s`` and ``solve_s``.

For every case it generates categorical data from the closed-form task at 8x8 positions x 256
codes (random latents and their scores), fits ONE LightGBM ensemble (this project's surrogate
settings, seeded, single thread), and solves ENTMOOT's default acquisition on that same booster
twice (ENTMOOT only up to ``--entmoot-max-n`` observations): ENTMOOT's "exploration" objective
``mean + beta * d / P`` (Hamming distance to the nearest
observed latent, ``beta`` = 1.96) built and solved by ENTMOOT (Pyomo + HiGHS), and the same
objective built by :func:`optimizers.milp.solve_acquisition` directly in highspy (``--route``:
"direct" by default, or "levels"). Both solutions are
re-scored with the same exact formula. A case counts as optimal when HiGHS proved our optimum
(status Optimal) and our value is at least ENTMOOT's minus the tolerance allowed by the MIP gap.
Default cases span N = 100-500 with random and clustered codes; ``--cases all`` adds the paper's
size (800 depth-2 trees on N = 2,000 and 10,000), deeper ensembles (400 and 800 trees of 8 and
16 leaves, N = 2,000, on random codes and on encodings) and ensembles fit to smile-synthetic's own
encodings (``*encodings``: N = 500, 2,000, 10,000).
The last printed line is one JSON object with the medians and ``all_optimal``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.optimizers.milp import ACQUISITION_ROUTES, acquisition_value, solve_acquisition
from bench.optimizers.tree_bo import fit_surrogate

@dataclass(frozen=True)
class Case:
    """One benchmark case: observations, how their codes are drawn, and the ensemble's size."""

    n: int
    trees: int
    depth: int  # LightGBM max_depth; 2**depth leaves per tree
    min_child: int
    codes: str = "random"  # "random": uniform codes; "clustered": near a few centres, few codes per position;
    # "encodings": smile-synthetic's encodings of its VQ-VAE's training faces, scored by its scorer


#: the default cases span N = 100-500 and both kinds of codes; "paper*" cases are the paper's size
#: (800 depth-2 trees) and "leaves*" deeper ensembles (800 trees, or 400 where named "t400")
CASES: dict[str, Case] = {
    "n100-d3": Case(100, 100, 3, 5),
    "n100-d3-clustered": Case(100, 100, 3, 5, "clustered"),
    "n500-d3": Case(500, 100, 3, 5),
    "n500-d3-clustered": Case(500, 100, 3, 5, "clustered"),
    "paper": Case(500, 800, 2, 20),
    "paper-n2000": Case(2000, 800, 2, 20),
    "paper-n2000-clustered": Case(2000, 800, 2, 20, "clustered"),
    "paper-n10000": Case(10000, 800, 2, 20),
    "paper-n10000-clustered": Case(10000, 800, 2, 20, "clustered"),
    "leaves8-n2000": Case(2000, 800, 3, 20),
    "leaves16-n2000": Case(2000, 800, 4, 20),
    "leaves8-t400-n2000": Case(2000, 400, 3, 20),
    "leaves16-t400-n2000": Case(2000, 400, 4, 20),
    "leaves8-n2000-encodings": Case(2000, 800, 3, 20, "encodings"),
    "leaves16-n2000-encodings": Case(2000, 800, 4, 20, "encodings"),
    "leaves8-t400-n2000-encodings": Case(2000, 400, 3, 20, "encodings"),
    "leaves16-t400-n2000-encodings": Case(2000, 400, 4, 20, "encodings"),
    "encodings-n500": Case(500, 100, 3, 5, "encodings"),
    "paper-n2000-encodings": Case(2000, 800, 2, 20, "encodings"),
    "paper-n10000-encodings": Case(10000, 800, 2, 20, "encodings"),
}
DEFAULT_CASES = ("n100-d3", "n100-d3-clustered", "n500-d3", "n500-d3-clustered", "paper")
#: clustered codes: this many centres, each position resampled with this probability from a pool
#: of this many codes per position (encodings of real images concentrate on few codes)
CLUSTER_CENTRES, CLUSTER_NOISE, CLUSTER_POOL = 20, 0.15, 16


def _case_data(n: int, seed: int, height: int, width: int, codes: int,
               kind: str = "random") -> tuple[np.ndarray, np.ndarray]:
    """Latents of the closed-form task (random or clustered codes), or of smile-synthetic (its
    encodings of training faces, as a run's initial design), and their scores (flat, (n, P))."""
    from bench.tasks.closed_form import ClosedFormTask

    if kind == "encodings":
        from bench.core import registry

        task = registry.task_spec("smile-synthetic").build()
        if (task.space.height, task.space.width, task.space.codebook_size) != (height, width, codes):
            raise ValueError(f"encodings cases are {task.space.height}x{task.space.width}x{task.space.codebook_size}")
        init = task.initial_data(seed, n)
        return init.latents.reshape(n, -1), init.scores

    task = ClosedFormTask(height=height, width=width, codebook_size=codes, instance_seed=seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 41]))
    n_pos = height * width
    if kind == "random":
        flat = task.space.sample(n, rng).reshape(n, -1)
    else:
        pools = np.stack([rng.choice(codes, CLUSTER_POOL, replace=False) for _ in range(n_pos)])  # (P, pool)
        centres = pools[np.arange(n_pos), rng.integers(0, CLUSTER_POOL, size=(CLUSTER_CENTRES, n_pos))]
        flat = centres[rng.integers(0, CLUSTER_CENTRES, size=n)]
        noisy = rng.random(flat.shape) < CLUSTER_NOISE
        flat = np.where(noisy, pools[np.arange(n_pos), rng.integers(0, CLUSTER_POOL, size=flat.shape)], flat)
    return flat, task.evaluate(flat.reshape(n, height, width)).scores


def run_case(name: str, case: Case, seed: int, *, beta: float, time_limit: float | None, max_nodes: int | None,
             mip_gap: float, with_entmoot: bool, route: str = "direct", height: int = 8, width: int = 8,
             codes: int = 256) -> dict[str, Any]:
    """Fit one ensemble and solve its acquisition with both models; one result row."""
    X, y = _case_data(case.n, seed, height, width, codes, case.codes)
    n_pos = X.shape[1]
    t0 = time.perf_counter()
    ensemble, booster = fit_surrogate("lightgbm", X, y, seed, n_trees=case.trees, max_depth=case.depth,
                                      min_child_samples=case.min_child, subsample=1.0, n_codes=codes)
    fit_s = time.perf_counter() - t0
    weight = beta / n_pos  # ENTMOOT scales the Hamming distance by 1/P ("normal" distance transform)
    t1, c1 = time.perf_counter(), time.process_time()
    ours = solve_acquisition(ensemble, [np.arange(codes)] * n_pos, codes, observed=X, exploration="bonus",
                             exploration_weight=weight, warm_start=X[int(np.argmax(y))], max_nodes=max_nodes,
                             time_limit=time_limit, mip_gap=mip_gap, mip_abs_gap=0.0, seed=seed, route=route)
    ours_wall, ours_cpu = time.perf_counter() - t1, time.process_time() - c1
    row: dict[str, Any] = {
        "case": name, "seed": seed, "route": route, "n": case.n, "codes": case.codes, "trees": case.trees,
        "depth": case.depth, "leaves": ensemble.n_leaves, "fit_s": round(fit_s, 3), "ours_status": ours.status,
        "ours_value": ours.objective, "ours_bound": ours.bound, "ours_gap": ours.gap,
        "ours_build_s": round(ours.build_s, 4), "ours_solve_s": round(ours.solve_s, 4),
        "ours_total_s": round(ours_wall, 4), "ours_cpu_s": round(ours_cpu, 4), "ours_vars": ours.n_vars,
        "ours_binaries": ours.n_binaries,
        "ours_rows": ours.n_rows, "ours_nonzeros": ours.n_nonzeros, "ours_nodes": ours.extra.get("nodes"),
        "ours_lazy_rounds": ours.extra.get("lazy_rounds"), "ours_levels": ours.extra.get("levels"),
        "ours_time_limited": ours.time_limited,
    }
    row["ours_optimal"] = bool(ours.optimal)  # the value is re-scored and the gap recomputed from it
    tolerance = mip_gap * max(1.0, abs(ours.bound)) + 1e-6
    if with_entmoot:
        from bench.optimizers.entmoot_opt import entmoot_acquisition

        t2 = time.perf_counter()
        theirs = entmoot_acquisition(booster, X, codes, beta=beta, acq_sense="exploration", maximize=True,
                                     time_limit=time_limit or 600.0, mip_gap=mip_gap, solver="highs", seed=seed)
        entmoot_wall = time.perf_counter() - t2
        theirs_value = float(acquisition_value(ensemble, np.asarray(theirs.latent)[None], observed=X,
                                               exploration="bonus", exploration_weight=weight)[0])
        row.update({
            "entmoot_status": theirs.status, "entmoot_value": theirs_value,
            "entmoot_reported": float(theirs.objective), "entmoot_bound": float(theirs.bound),
            "entmoot_build_s": round(float(theirs.build_s), 3), "entmoot_solve_s": round(float(theirs.solve_s), 3),
            "entmoot_total_s": round(entmoot_wall, 3),
        })
        row["agree"] = abs(ours.objective - theirs_value) <= tolerance
        row["ours_at_least_as_good"] = ours.objective >= theirs_value - tolerance
        row["speedup_total"] = round(entmoot_wall / max(ours_wall, 1e-9), 1)
        row["speedup_solve"] = round(float(theirs.solve_s) / max(ours.solve_s, 1e-9), 1)
        row["optimal"] = bool(row["ours_optimal"] and row["ours_at_least_as_good"])
    else:
        row["entmoot_status"] = "ENTMOOT could not build"
        row["optimal"] = row["ours_optimal"]
    return row


def perf_main(name: str, argv: list[str]) -> int:
    """Entry point of ``bench perf acquisition``; prints one line per case, then the JSON summary."""
    parser = argparse.ArgumentParser(prog=f"bench perf {name}", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(DEFAULT_CASES),
                        help=f"comma-separated subset of {', '.join(CASES)}, or 'all'")
    parser.add_argument("--seeds", type=int, default=2, help="data/ensemble seeds per case")
    parser.add_argument("--beta", type=float, default=1.96, help="ENTMOOT's exploration weight")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="wall-clock safety limit per solve (s); default none")
    parser.add_argument("--max-nodes", type=int, default=None, help="HiGHS node limit per solve; default none")
    parser.add_argument("--mip-gap", type=float, default=1e-4, help="relative MIP gap for both solvers")
    parser.add_argument("--entmoot-max-n", type=int, default=500,
                        help="run ENTMOOT only up to this many observations (its Pyomo model did not finish "
                             "building at N = 2,000 in 15 minutes); larger cases say 'ENTMOOT could not build'")
    parser.add_argument("--no-entmoot", action="store_true", help="only this project's MILP")
    parser.add_argument("--route", choices=ACQUISITION_ROUTES, default="direct",
                        help="how our MILP solves the distance bonus: 'direct' (one MILP with a distance "
                             "variable) or 'levels' (one pure-ensemble MILP per distance level: faster at "
                             "N = 2,000, slower on clustered codes); both exact")
    args = parser.parse_args(argv)
    selected = list(CASES) if args.cases == "all" else [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in selected if c not in CASES]
    if unknown:
        from bench.core.errors import UserError

        raise UserError(f"unknown case(s) {', '.join(unknown)}; valid: {', '.join(CASES)}")
    rows = []
    for case_name in selected:
        case = CASES[case_name]
        for seed in range(args.seeds):
            row = run_case(case_name, case, seed, beta=args.beta, time_limit=args.time_limit,
                           max_nodes=args.max_nodes, mip_gap=args.mip_gap,
                           with_entmoot=not args.no_entmoot and case.n <= args.entmoot_max_n, route=args.route)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(json.dumps({**summarize(name, rows, args.beta, args.mip_gap), "route": args.route}))
    return 0


def summarize(name: str, rows: list[dict[str, Any]], beta: float, mip_gap: float) -> dict[str, Any]:
    """Medians over all rows, and the speedup over the rows where ENTMOOT ran."""
    compared = [r for r in rows if "speedup_total" in r]
    summary: dict[str, Any] = {
        "benchmark": name, "grid": "8x8x256", "beta": beta, "mip_gap": mip_gap, "cases": len(rows),
        "median_solve_s": float(np.median([r["ours_solve_s"] for r in rows])),
        "median_total_s": float(np.median([r["ours_total_s"] for r in rows])),
        "max_total_s": float(max(r["ours_total_s"] for r in rows)),
        "all_optimal": all(r["optimal"] for r in rows),
        "entmoot_compared": len(compared),
        "median_speedup_vs_entmoot": float(np.median([r["speedup_total"] for r in compared])) if compared else math.nan,
    }
    if compared:
        summary["median_solve_speedup_vs_entmoot"] = float(np.median([r["speedup_solve"] for r in compared]))
        summary["median_entmoot_total_s"] = float(np.median([r["entmoot_total_s"] for r in compared]))
        summary["all_agree"] = all(r["agree"] for r in compared)
    return summary
