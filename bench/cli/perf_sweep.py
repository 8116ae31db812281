"""``bench perf sweep``: per-run overhead of local and SLURM sweeps (last line: one JSON object)."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any, Sequence

from bench.core import constants as C
from bench.run.runner import run_folder
from bench.sweep.cluster import slurm_available
from bench.sweep.launch import launch
from bench.sweep.plan import local_slots
from bench.sweep.profiles import Profile, load_profile
from bench.sweep.spec import SweepSpec, parse_spec


def perf_spec(n_runs: int, budget: int) -> SweepSpec:
    """A sweep of ``n_runs`` trivial runs: random search on the small closed-form task."""
    return parse_spec({"name": "perf-sweep", "seeds": list(range(n_runs)), "tasks": ["closed-form/small"],
                       "run": {"budget": budget, "batch_size": 1, "n_initial": 5},
                       "method": [{"optimizer": "random"}], "executor": {"profile": "local", "runs_per_job": 4}})


def _measure(kind: str, spec: SweepSpec, profile: Profile, runs_per_job: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-perf-{kind}-") as tmp:
        result = launch(spec, Path(tmp), kind, profile=profile, runs_per_job=runs_per_job,
                        wait_timeout_s=600.0, log=lambda *a: None)
        if result.lost_jobs or result.unfinished_jobs or len(result.reports) != len(result.job_ids):
            raise RuntimeError(f"{kind} sweep did not finish: lost {result.lost_jobs}, unfinished "
                               f"{result.unfinished_jobs}")
        in_run_s = sum(float(run_folder(Path(tmp), c).read_records()[C.ELAPSED_S].max()) for c in spec.runs)
        slots = local_slots(profile) if kind == "local" else min(profile.array_parallelism, len(result.job_ids))
        loads = [r.model_loads for r in result.reports]
        return {"wall_s": result.wall_s, "jobs": len(result.job_ids), "parallel": slots, "in_run_s": in_run_s,
                # launch wall time not spent inside runs, per run (runs of parallel jobs overlap)
                "overhead_s_per_run": (result.wall_s - in_run_s / slots) / len(spec.runs),
                "model_loads_per_job": sum(loads) / len(loads)}


def perf_main(name: str, argv: Sequence[str]) -> int:
    """``bench perf sweep``: per-run overhead of local and SLURM sweeps; last line is JSON."""
    parser = argparse.ArgumentParser(prog=f"bench perf {name}", description=perf_main.__doc__)
    parser.add_argument("--runs", type=int, default=8, help="trivial runs per sweep (>= 8)")
    parser.add_argument("--budget", type=int, default=5, help="queries per run")
    parser.add_argument("--runs-per-job", type=int, default=4, help="runs per SLURM job")
    parser.add_argument("--profile", default="local", help="profile for both executors")
    parser.add_argument("--no-slurm", action="store_true", help="skip SLURM even when available")
    args = parser.parse_args(argv)
    spec = perf_spec(max(8, args.runs), args.budget)
    profile = load_profile(args.profile)
    local = _measure("local", spec, profile, args.runs_per_job)
    print(f"local: {len(spec.runs)} runs in {local['jobs']} jobs, {local['wall_s']:.2f} s wall, "
          f"{local['overhead_s_per_run']:.3f} s overhead per run, {local['model_loads_per_job']:.2f} loads per job")
    slurm = None
    if not args.no_slurm and slurm_available():
        slurm = _measure("slurm", spec, profile, args.runs_per_job)
        print(f"slurm: {len(spec.runs)} runs in {slurm['jobs']} array jobs, {slurm['wall_s']:.2f} s wall, "
              f"{slurm['overhead_s_per_run']:.3f} s overhead per run, {slurm['model_loads_per_job']:.2f} loads per job")
    else:
        print("slurm: not measured (no controller answers sinfo, or --no-slurm)")
    loads = [m["model_loads_per_job"] for m in (local, slurm) if m is not None]
    print(json.dumps({
        "runs": len(spec.runs), "budget": args.budget,
        "overhead_s_per_run_local": round(local["overhead_s_per_run"], 4),
        "overhead_s_per_run_slurm": None if slurm is None else round(slurm["overhead_s_per_run"], 4),
        "model_loads_per_job": max(loads),
        "wall_s_local": round(local["wall_s"], 3), "wall_s_slurm": None if slurm is None else round(slurm["wall_s"], 3),
        "jobs_local": local["jobs"], "jobs_slurm": None if slurm is None else slurm["jobs"],
    }))
    return 0
