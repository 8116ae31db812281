"""``bench sweep`` (launch a spec) and ``bench status`` (per-run state of a sweep folder)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from bench.cli.common import positive_int, writable_dir
from bench.core import constants as C
from bench.core.config import RunConfig
from bench.store.files import StoreError
from bench.sweep.launch import EXECUTORS, launch
from bench.sweep.profiles import load_profile
from bench.sweep.spec import load_spec
from bench.sweep.status import STATUS_DAMAGED, format_status, sweep_status


class QueryProgress:
    """A progress bar over the optimizer queries of the launched runs, read from their run.json."""

    def __init__(self, sweep_dir: Path, runs: Sequence[RunConfig]) -> None:
        from tqdm import tqdm

        from bench.run.runner import run_folder

        self.folders = [(run_folder(sweep_dir, c), c.budget) for c in runs]
        self.bar = tqdm(total=sum(budget for _, budget in self.folders), desc=f"sweep ({len(runs)} runs)",
                        unit="query", dynamic_ncols=True)

    def update(self) -> None:
        done = 0
        for folder, budget in self.folders:
            try:
                done += min(int(folder.read_info().get("queries_done", 0)), budget) if folder.exists() else 0
            except StoreError:
                pass  # being written, or damaged: bench status says which
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        self.update()
        self.bar.close()


def cmd_sweep(args: argparse.Namespace) -> int:
    """Launch the spec's runs that need work, wait, print the status; exit 1 when something failed."""
    spec = load_spec(Path(args.spec))
    profile = load_profile(args.profile or spec.executor.profile)
    out = writable_dir(Path(args.out) if args.out else Path("results") / spec.name)
    progress = QueryProgress(out, spec.runs) if args.executor != "debug" and args.wait else None
    try:
        result = launch(spec, out, args.executor, profile=profile, retry_failed=args.retry_failed, extend=args.extend,
                        runs_per_job=args.runs_per_job, wait=args.wait, progress=progress and progress.update,
                        wait_timeout_s=None if args.wait_timeout_min is None else 60.0 * args.wait_timeout_min)
    finally:
        if progress is not None:
            progress.close()
    rows = sweep_status(out)
    print(format_status(rows))
    if result.reports:
        print(f"{len(result.reports)} jobs reported; task models built per job: "
              f"{max(r.model_loads for r in result.reports)} at most")
    failed = sum(row.state in (C.STATUS_FAILED, STATUS_DAMAGED) for row in rows)
    if args.wait and result.unfinished_jobs:
        print(f"{len(result.unfinished_jobs)} jobs still queued or running; follow them with `bench status {out}`",
              file=sys.stderr)
        return 1
    if result.lost_jobs or failed:
        print(f"{failed} runs failed or damaged, {len(result.lost_jobs)} jobs lost or ended with an error; rerun this "
              "command to resume (add --retry-failed to rerun failures)", file=sys.stderr)
        return 1
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print the per-run state of a sweep folder."""
    print(format_status(sweep_status(Path(args.dir))))
    return 0


def register(subparsers: Any) -> None:
    """Add ``bench sweep`` and ``bench status``."""
    p = subparsers.add_parser(
        "sweep", help="expand a sweep spec and run it (SLURM, local processes or in-process)",
        description="Expand a TOML sweep spec (see slurm/README.md) into runs and submit the ones that still need "
                    "work: completed runs are skipped, partial ones resume, failed or damaged ones rerun with "
                    "--retry-failed. One launcher per sweep folder at a time (an OS lock).")
    p.add_argument("spec", help="sweep spec, e.g. slurm/specs/tiny.toml")
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="slurm: job arrays; local: processes on this machine (default); debug: in this process")
    p.add_argument("--profile", default=None, help="cluster profile (slurm/profiles/NAME.toml); default: the spec's")
    p.add_argument("--out", default=None, help="sweep folder (default: results/<spec name>)")
    p.add_argument("--retry-failed", action="store_true",
                   help="rerun failed runs (resuming their checkpoints) and restart damaged ones")
    p.add_argument("--extend", action="store_true",
                   help="continue completed runs to a larger budget set in the spec (recorded in each run.json)")
    p.add_argument("--runs-per-job", type=positive_int, default=None,
                   help="runs packed in one SLURM job (default: the spec's executor.runs_per_job)")
    p.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                   help="wait for the jobs and print the final status (default: wait)")
    p.add_argument("--wait-timeout-min", type=float, default=None,
                   help="stop waiting after this many minutes (default: from the profile's time limit)")
    p.set_defaults(func=cmd_sweep)

    p = subparsers.add_parser("status", help="per-run state of a sweep folder",
                              description="Show every run of a sweep (pending, running, completed, failed with "
                                          "the error's first line and log path, damaged with the file and reason) "
                                          "and a summary.")
    p.add_argument("dir", help="sweep folder, e.g. results/demo")
    p.set_defaults(func=cmd_status)
