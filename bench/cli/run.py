"""``bench run``: one seeded (task, optimizer) run into ``OUT/runs/task=<t>/opt=<o>/seed=<s>/``."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from bench.cli.common import float_or_inf, key_values, positive_int, seed, writable_dir
from bench.core import constants as C
from bench.core.config import RunConfig
from bench.core.errors import UserError


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options that build a :class:`RunConfig` from flags."""
    parser.add_argument("--task", required=True, help="task name, see `bench list`")
    parser.add_argument("--optimizer", required=True, help="optimizer or preset name (name/preset), see `bench list`")
    parser.add_argument("--seed", type=seed, default=0, help="run seed (initial design and optimizer), 0 to 2^32-1")
    parser.add_argument("--budget", type=positive_int, default=100, help="number of optimizer queries")
    parser.add_argument("--batch-size", type=positive_int, default=1, help="proposals per optimizer call")
    parser.add_argument("--n-initial", type=positive_int, default=None, help="initial design size (task default)")
    parser.add_argument("--label", default=None, help="method name in folders and reports (default: optimizer)")
    parser.add_argument("--opt", action="append", metavar="KEY=VALUE", help="optimizer parameter override")
    parser.add_argument("--task-opt", action="append", metavar="KEY=VALUE", help="task parameter, e.g. device=cpu")
    parser.add_argument("--retrain-k", type=float_or_inf, default=math.inf, help="rank weight k (inf: uniform)")
    parser.add_argument("--retrain-every", type=float_or_inf, default=math.inf,
                        help="queries between weighted retrainings (inf: never)")
    parser.add_argument("--retrain-epochs", type=float_or_inf, default=0.1, help="fine-tune epochs per retraining")
    parser.add_argument("--retrain-initial-epochs", type=float_or_inf, default=0.0,
                        help="weighted fine-tune before query 1")
    parser.add_argument("--metrics-every", type=int, default=0, help="queries between FID/KID checkpoints (0: off)")
    parser.add_argument("--metrics-n", type=positive_int, default=100, help="images per FID/KID subset")
    parser.add_argument("--metric-features", default=None, metavar="LIST",
                        help="feature extractors for FID/KID: 'task', 'inception' or 'task,inception' "
                             "(image tasks; default: task)")
    parser.add_argument("--inception-weights", default=None, metavar="PATH",
                        help="local pt_inception-2015-12-05-6726825d.pth for Inception FID (no download)")
    parser.add_argument("--proposal-time-limit", type=float_or_inf, default=3600.0, metavar="SECONDS",
                        help="wall-clock limit of one propose call (a safety net; when it fires the run is "
                             "flagged load-dependent)")
    parser.add_argument("--on-proposal-timeout", choices=("fail", "fallback"), default="fail",
                        help="when a propose call times out: fail the run, or propose random points and go on")
    parser.add_argument("--max-fallback-share", type=float, default=0.5,
                        help="fail a run when more than this share of its batches fell back to random points")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The :class:`RunConfig` the flags describe (bad values raise one-line config errors)."""
    return RunConfig(
        task=args.task, optimizer=args.optimizer, seed=args.seed, budget=args.budget, batch_size=args.batch_size,
        n_initial=args.n_initial, label=args.label,
        optimizer_params=key_values(args.opt, "--opt"), task_params=_task_params(args),
        retrain={"k": args.retrain_k, "every": args.retrain_every, "epochs": args.retrain_epochs,
                 "initial_epochs": args.retrain_initial_epochs},
        metrics={"every": args.metrics_every, "n_images": args.metrics_n},
        limits={"time_limit_s": args.proposal_time_limit, "on_timeout": args.on_proposal_timeout,
                "max_fallback_share": args.max_fallback_share},
    )


def _task_params(args: argparse.Namespace) -> dict[str, Any]:
    params = key_values(args.task_opt, "--task-opt")
    if args.metric_features is not None:
        params["metric_features"] = args.metric_features
    if args.inception_weights is not None:
        path = Path(args.inception_weights).expanduser()
        if not path.is_file():
            raise UserError(f"--inception-weights {args.inception_weights!r} is not a file; give the path of "
                            "pt_inception-2015-12-05-6726825d.pth")
        params["inception_weights"] = str(path.resolve())
    return params


def check_buildable(config: RunConfig, tasks: Any) -> None:
    """Build the task and the optimizer once, so a bad parameter fails before any run folder exists."""
    from bench.core.registry import optimizer_spec, task_spec
    from bench.core.task import RetrainableTask

    task = tasks.get(config.task, task_spec(config.task).resolved_params(config.task_params))
    if config.retrain.enabled and not isinstance(task, RetrainableTask):
        raise UserError(f"task {config.task!r} has no generative model to retrain; drop the --retrain-* options")
    try:
        optimizer_spec(config.optimizer).build(task.space, config.seed, overrides=config.optimizer_params)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError(f"optimizer {config.optimizer!r} rejects its parameters: {exc}") from None


def cmd_run(args: argparse.Namespace) -> int:
    """Run or resume one run; print its result (exit 1 when it failed)."""
    from tqdm import tqdm

    from bench.run.runner import TaskCache, execute_run, run_folder

    config = config_from_args(args)
    tasks = TaskCache()
    check_buildable(config, tasks)
    out = writable_dir(Path(args.out))
    folder = run_folder(out, config)
    with tqdm(total=config.budget, desc=f"{config.label} seed={config.seed}", unit="query",
              disable=args.quiet) as bar:
        status = execute_run(config, folder, tasks=tasks, progress=bar.update, sweep=out.name, extend=args.extend)
    info = folder.read_info()
    if status == C.STATUS_FAILED:
        print(f"run failed: {info.get('error')}\n  traceback: {info.get('error_file')}", file=sys.stderr)
        return 1
    note = " (load-dependent: a wall-clock limit decided some proposals)" if info.get("load_dependent") else ""
    print(f"{status}: best score {info.get('best'):.6g} after {info.get('queries_done')} queries -> "
          f"{folder.path}{note}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``bench run``."""
    p = subparsers.add_parser(
        "run", help="run one optimizer on one task with one seed",
        description="Run one seeded (task, optimizer) pair and write its records to OUT/runs/task=<t>/opt=<o>/seed=<s>/. "
                    "Rerunning the same command resumes an unfinished or failed run and leaves a completed one alone; "
                    "a folder holding a run with another configuration is refused.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_run_options(p)
    p.add_argument("--out", default="results/adhoc", help="sweep folder to write into")
    p.add_argument("--extend", action="store_true",
                   help="continue a run recorded with a smaller budget up to --budget (recorded in its run.json)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)
