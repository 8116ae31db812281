"""The ``bench`` command.

Core subcommands live here (``list``, ``run``, ``perf``); other modules contribute theirs
through a ``register(subparsers)`` function listed in :data:`COMMAND_MODULES`, so each
capability keeps its CLI next to its code.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from bench.core.errors import UserError

#: modules that add subcommands with ``register(subparsers) -> None``
COMMAND_MODULES: tuple[str, ...] = (
    "bench.cli.prepare",
    "bench.sweep.launch",
    "bench.analysis.report",
)

#: ``bench perf NAME`` benchmarks: name -> "module:function" taking parsed ``args.rest``
PERF_BENCHMARKS: dict[str, tuple[str, str]] = {
    "evaluate": ("bench.cli.perf_evaluate", "Batched decode+score throughput vs the forward-only ceiling (--task T)."),
    "acquisition": ("bench.cli.perf_acquisition", "Tree-ensemble MILP vs ENTMOOT on the same fitted ensembles."),
    "fid": ("bench.tasks.metrics", "Fréchet distance: this project's vs pytorch-fid's, at 2048-d."),
    "sweep": ("bench.sweep.launch", "Per-run overhead of local and SLURM sweeps."),
}

EPILOG = """\
everyday use:
  bench list                                   tasks, optimizers and presets
  bench run --task closed-form --optimizer evolution --seed 0 --budget 200
  bench prepare --task smile-synthetic         train/check the task's models
  bench sweep slurm/specs/demo.toml --executor local
  bench status results/demo                    per-run state of a sweep
  bench report results/demo                    tables, plots and report.md
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _float_or_inf(text: str) -> float:
    if text.strip().lower() in ("inf", "infinity", "never"):
        return math.inf
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'inf', got {text!r}") from None


def _key_values(pairs: Sequence[str] | None, flag: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` with values parsed as TOML scalars when possible."""
    import tomllib

    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UserError(f"{flag} expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            out[key] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = value
    return out


def writable_dir(path: Path) -> Path:
    """Create ``path`` if needed and check it is writable, else raise :class:`UserError`."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {str(path)!r}: {exc.strerror}; choose another --out") from None
    if not os.access(path, os.W_OK):
        raise UserError(f"output folder {str(path)!r} is not writable; choose another --out")
    return path


# --- list -----------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from bench.core import registry

    print("tasks:")
    for name, spec in registry.tasks().items():
        print(f"  {name:28s} {spec.description}")
    print("\noptimizers and presets (use the full name with --optimizer):")
    for name, spec in registry.optimizers().items():
        params = ", ".join(f"{k}={v}" for k, v in spec.params.items())
        print(f"  {name:28s} {spec.description}" + (f"\n  {'':28s}   [{params}]" if params and args.verbose else ""))
    print("\nbenchmarks (bench perf NAME):")
    for name, (_, text) in PERF_BENCHMARKS.items():
        print(f"  {name:28s} {text}")
    return 0


# --- run ------------------------------------------------------------------------------------


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``bench run`` and anything that builds a :class:`RunConfig` from flags."""
    parser.add_argument("--task", required=True, help="task name, see `bench list`")
    parser.add_argument("--optimizer", required=True, help="optimizer or preset name (name/preset), see `bench list`")
    parser.add_argument("--seed", type=int, default=0, help="run seed (initial design and optimizer)")
    parser.add_argument("--budget", type=_positive_int, default=100, help="number of optimizer queries")
    parser.add_argument("--batch-size", type=_positive_int, default=1, help="proposals per optimizer call")
    parser.add_argument("--n-initial", type=_positive_int, default=None, help="initial design size (task default)")
    parser.add_argument("--label", default=None, help="method name in folders and reports (default: optimizer)")
    parser.add_argument("--opt", action="append", metavar="KEY=VALUE", help="optimizer parameter override")
    parser.add_argument("--task-opt", action="append", metavar="KEY=VALUE", help="task parameter, e.g. device=cpu")
    parser.add_argument("--retrain-k", type=_float_or_inf, default=math.inf, help="rank weight k (inf: uniform)")
    parser.add_argument("--retrain-every", type=_float_or_inf, default=math.inf,
                        help="queries between weighted retrainings (inf: never)")
    parser.add_argument("--retrain-epochs", type=float, default=0.1, help="fine-tune epochs per retraining")
    parser.add_argument("--retrain-initial-epochs", type=float, default=0.0, help="weighted fine-tune before query 1")
    parser.add_argument("--metrics-every", type=int, default=0, help="queries between FID/KID checkpoints (0: off)")
    parser.add_argument("--metrics-n", type=_positive_int, default=100, help="images per FID/KID subset")
    parser.add_argument("--metric-features", default=None, metavar="LIST",
                        help="feature extractors for FID/KID: 'task', 'inception' or 'task,inception' "
                             "(image tasks; default: task)")
    parser.add_argument("--inception-weights", default=None, metavar="PATH",
                        help="local pt_inception-2015-12-05-6726825d.pth for Inception FID (no download)")


def config_from_args(args: argparse.Namespace) -> Any:
    from bench.core.config import RunConfig

    return RunConfig(
        task=args.task, optimizer=args.optimizer, seed=args.seed, budget=args.budget, batch_size=args.batch_size,
        n_initial=args.n_initial, label=args.label,
        optimizer_params=_key_values(args.opt, "--opt"), task_params=_task_params(args),
        retrain={"k": args.retrain_k, "every": args.retrain_every, "epochs": args.retrain_epochs,
                 "initial_epochs": args.retrain_initial_epochs},
        metrics={"every": args.metrics_every, "n_images": args.metrics_n},
    )


def _task_params(args: argparse.Namespace) -> dict[str, Any]:
    params = _key_values(args.task_opt, "--task-opt")
    for key in ("metric_features", "inception_weights"):
        if getattr(args, key) is not None:
            value = getattr(args, key)
            if key == "inception_weights" and not Path(value).expanduser().is_file():
                raise UserError(f"--inception-weights {value!r} is not a file; give the path of "
                                "pt_inception-2015-12-05-6726825d.pth")
            params[key] = str(Path(value).expanduser().resolve()) if key == "inception_weights" else value
    return params


def cmd_run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from bench.core import constants as C
    from bench.core.registry import optimizer_spec, task_spec
    from bench.run.runner import execute_run, run_folder

    config = config_from_args(args)
    task_spec(config.task).resolved_params(config.task_params)  # fail fast on bad names
    optimizer_spec(config.optimizer).resolved_params(config.optimizer_params)
    out = writable_dir(Path(args.out))
    folder = run_folder(out, config)
    with tqdm(total=config.budget, desc=f"{config.label} seed={config.seed}", unit="query",
              disable=args.quiet) as bar:
        status = execute_run(config, folder, progress=bar.update, sweep=out.name)
    info = folder.read_run()
    if status == C.STATUS_FAILED:
        print(f"run failed: {info.get('error')}\n  traceback: {info.get('error_file')}", file=sys.stderr)
        return 1
    print(f"{status}: best score {info.get('best'):.6g} after {info.get('queries_done')} queries -> {folder.path}")
    return 0


# --- perf -----------------------------------------------------------------------------------


def cmd_perf(args: argparse.Namespace) -> int:
    module_name, _ = PERF_BENCHMARKS[args.benchmark]
    module = importlib.import_module(module_name)
    return int(module.perf_main(args.benchmark, list(args.rest)) or 0)


# --- entry point ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Compare black-box optimizers in the discrete latent space of a VQ-VAE.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("list", help="list tasks, optimizers, presets and benchmarks",
                       description="List every registered task, optimizer, preset and benchmark.")
    p.add_argument("-v", "--verbose", action="store_true", help="show preset parameters")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="run one optimizer on one task with one seed",
                       description="Run one seeded (task, optimizer) pair and write its records to "
                                   "OUT/runs/task=<t>/opt=<o>/seed=<s>/. Rerunning resumes or skips it.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_run_options(p)
    p.add_argument("--out", default="results/adhoc", help="sweep folder to write into")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("perf", help="run a benchmark that prints a JSON line",
                       description="Benchmarks print figures; the last line is one JSON object.\n" +
                       "\n".join(f"  {k:12s} {v[1]}" for k, v in PERF_BENCHMARKS.items()),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("benchmark", choices=sorted(PERF_BENCHMARKS), help="which benchmark")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="options of the benchmark (see bench perf NAME --help)")
    p.set_defaults(func=cmd_perf)

    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # capability not installed in this checkout
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"bench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
