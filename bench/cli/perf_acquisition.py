"""``bench perf acquisition``: this project's acquisition MILP against ENTMOOT's own model.

Interface with O2's module (optimizers/entmoot_opt.py): this benchmark calls
``entmoot_acquisition(booster, observed, codebook_size, beta=, acq_sense="exploration",
maximize=True, time_limit=, mip_gap=, solver="highs", seed=)`` and reads the returned
``EntmootSolution``'s ``latent``, ``objective``, ``bound``, ``status``, ``build_s`` and ``solve_s``.

For every case it generates categorical data from the closed-form task at 8x8 positions x 256
codes (random latents and their scores), fits ONE LightGBM ensemble (this project's surrogate
settings, seeded, single thread), and solves ENTMOOT's default acquisition on that same booster
twice: ENTMOOT's "exploration" objective ``mean + beta * d / P`` (Hamming distance to the nearest
observed latent, ``beta`` = 1.96) built and solved by ENTMOOT (Pyomo + HiGHS), and the same
objective built by :func:`optimizers.milp.solve_acquisition` directly in highspy. Both solutions are
re-scored with the same exact formula. A case counts as optimal when HiGHS proved our optimum
(status Optimal) and our value is at least ENTMOOT's minus the tolerance allowed by the MIP gap.
The last printed line is one JSON object with the medians and ``all_optimal``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

import numpy as np

from bench.optimizers.milp import acquisition_value, solve_acquisition
from bench.optimizers.tree_bo import fit_surrogate

#: (name, observations, trees, depth, min_child_samples) of the default cases
CASES: dict[str, tuple[int, int, int, int]] = {
    "n100-d3": (100, 100, 3, 5),
    "n500-d3": (500, 100, 3, 5),
    "paper": (500, 800, 2, 20),
}


def _case_data(n: int, seed: int, height: int, width: int, codes: int) -> tuple[np.ndarray, np.ndarray]:
    """Random latents of the closed-form task and their scores (flat, (n, P))."""
    from bench.tasks.closed_form import ClosedFormTask

    task = ClosedFormTask(height=height, width=width, codebook_size=codes, instance_seed=seed)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 41]))
    latents = task.space.sample(n, rng)
    return latents.reshape(n, -1), task.evaluate(latents).scores


def run_case(name: str, n: int, n_trees: int, depth: int, min_child: int, seed: int, *, beta: float,
             time_limit: float, mip_gap: float, with_entmoot: bool, height: int = 8, width: int = 8,
             codes: int = 256) -> dict[str, Any]:
    """Fit one ensemble and solve its acquisition with both models; one result row."""
    X, y = _case_data(n, seed, height, width, codes)
    n_pos = X.shape[1]
    t0 = time.perf_counter()
    ensemble, booster = fit_surrogate("lightgbm", X, y, seed, n_trees=n_trees, max_depth=depth,
                                      min_child_samples=min_child, subsample=1.0, n_codes=codes)
    fit_s = time.perf_counter() - t0
    weight = beta / n_pos  # ENTMOOT scales the Hamming distance by 1/P ("normal" distance transform)
    ours = solve_acquisition(ensemble, [np.arange(codes)] * n_pos, codes, observed=X, exploration="bonus",
                             exploration_weight=weight, warm_start=X[int(np.argmax(y))],
                             time_limit=time_limit, mip_gap=mip_gap, mip_abs_gap=0.0, seed=seed)
    ours_value = float(acquisition_value(ensemble, ours.latent[None], observed=X, exploration="bonus",
                                         exploration_weight=weight)[0])
    row: dict[str, Any] = {
        "case": name, "seed": seed, "n": n, "trees": n_trees, "depth": depth, "leaves": ensemble.n_leaves,
        "fit_s": round(fit_s, 3), "ours_status": ours.status, "ours_value": ours_value,
        "ours_bound": ours.bound, "ours_build_s": round(ours.build_s, 4), "ours_solve_s": round(ours.solve_s, 4),
        "ours_total_s": round(ours.build_s + ours.solve_s, 4), "ours_vars": ours.n_vars,
        "ours_binaries": ours.n_binaries, "ours_rows": ours.n_rows, "ours_nonzeros": ours.n_nonzeros,
    }
    tolerance = mip_gap * max(1.0, abs(ours.bound)) + 1e-6
    row["ours_optimal"] = ours.optimal and ours.bound <= ours_value + tolerance
    if with_entmoot:
        from bench.optimizers.entmoot_opt import entmoot_acquisition

        t1 = time.perf_counter()
        theirs = entmoot_acquisition(booster, X, codes, beta=beta, acq_sense="exploration", maximize=True,
                                     time_limit=time_limit, mip_gap=mip_gap, solver="highs", seed=seed)
        entmoot_wall = time.perf_counter() - t1
        theirs_value = float(acquisition_value(ensemble, np.asarray(theirs.latent)[None], observed=X,
                                               exploration="bonus", exploration_weight=weight)[0])
        row.update({
            "entmoot_status": theirs.status, "entmoot_value": theirs_value,
            "entmoot_reported": float(theirs.objective), "entmoot_bound": float(theirs.bound),
            "entmoot_build_s": round(float(theirs.build_s), 3), "entmoot_solve_s": round(float(theirs.solve_s), 3),
            "entmoot_total_s": round(entmoot_wall, 3),
        })
        row["agree"] = abs(ours_value - theirs_value) <= tolerance
        row["ours_at_least_as_good"] = ours_value >= theirs_value - tolerance
        row["speedup_total"] = round(entmoot_wall / max(row["ours_total_s"], 1e-9), 1)
        row["speedup_solve"] = round(float(theirs.solve_s) / max(ours.solve_s, 1e-9), 1)
        row["optimal"] = bool(row["ours_optimal"] and row["ours_at_least_as_good"])
    else:
        row["optimal"] = bool(row["ours_optimal"])
    return row


def perf_main(name: str, argv: list[str]) -> int:
    """Entry point of ``bench perf acquisition``; prints one line per case, then the JSON summary."""
    parser = argparse.ArgumentParser(prog=f"bench perf {name}", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {', '.join(CASES)}")
    parser.add_argument("--seeds", type=int, default=2, help="data/ensemble seeds per case")
    parser.add_argument("--paper-n", type=int, default=CASES["paper"][0],
                        help="observations of the paper-size case (the paper fits on 10,000; ENTMOOT's "
                             "Pyomo model did not finish building at 2,000 in 15 minutes)")
    parser.add_argument("--paper-seeds", type=int, default=1, help="seeds of the paper-size case")
    parser.add_argument("--beta", type=float, default=1.96, help="ENTMOOT's exploration weight")
    parser.add_argument("--time-limit", type=float, default=300.0, help="solver time limit per solve (s)")
    parser.add_argument("--mip-gap", type=float, default=1e-4, help="relative MIP gap for both solvers")
    parser.add_argument("--no-entmoot", action="store_true", help="only this project's MILP")
    args = parser.parse_args(argv)
    selected = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in selected if c not in CASES]
    if unknown:
        from bench.core.errors import UserError

        raise UserError(f"unknown case(s) {', '.join(unknown)}; valid: {', '.join(CASES)}")
    rows = []
    for case in selected:
        n, trees, depth, min_child = CASES[case]
        if case == "paper":
            n = args.paper_n
        for seed in range(args.paper_seeds if case == "paper" else args.seeds):
            row = run_case(case, n, trees, depth, min_child, seed, beta=args.beta, time_limit=args.time_limit,
                           mip_gap=args.mip_gap, with_entmoot=not args.no_entmoot)
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary: dict[str, Any] = {
        "benchmark": name, "grid": "8x8x256", "beta": args.beta, "mip_gap": args.mip_gap, "cases": len(rows),
        "median_solve_s": float(np.median([r["ours_solve_s"] for r in rows])),
        "median_total_s": float(np.median([r["ours_total_s"] for r in rows])),
        "all_optimal": all(r["optimal"] for r in rows),
    }
    if not args.no_entmoot:
        summary["median_speedup_vs_entmoot"] = float(np.median([r["speedup_total"] for r in rows]))
        summary["median_solve_speedup_vs_entmoot"] = float(np.median([r["speedup_solve"] for r in rows]))
        summary["median_entmoot_total_s"] = float(np.median([r["entmoot_total_s"] for r in rows]))
        summary["all_agree"] = all(r["agree"] for r in rows)
    else:
        summary["median_speedup_vs_entmoot"] = math.nan
    print(json.dumps(summary))
    return 0
