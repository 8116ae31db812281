"""The ``bench`` command: one entry point, one module per group of subcommands.

Nothing below :mod:`bench.cli` imports it: every command module registers its subcommands
with a ``register(subparsers)`` function listed here, and every benchmark is a module with a
``perf_main(name, argv)`` function listed in :data:`PERF_BENCHMARKS`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from bench.cli import prepare, report, run, sweep
from bench.core.errors import UserError

#: ``bench perf NAME``: name -> (module with ``perf_main(name, argv)``, one-line description)
PERF_BENCHMARKS: dict[str, tuple[str, str]] = {
    "evaluate": ("bench.cli.perf_evaluate", "Batched decode+score throughput vs the forward-only ceiling (--task T)."),
    "acquisition": ("bench.cli.perf_acquisition", "Tree-ensemble MILP vs ENTMOOT on the same fitted ensembles."),
    "paper": ("bench.cli.perf_paper", "The paper's per-query loop at full size (smile-synthetic, N = 10,000), timed by part."),
    "fid": ("bench.cli.perf_fid", "Fréchet distance: this project's vs pytorch-fid's, at 2048-d."),
    "sweep": ("bench.cli.perf_sweep", "Per-run overhead of local and SLURM sweeps."),
    "celeba-load": ("bench.cli.perf_celeba_load", "CelebA JPEG decode+crop+resize and 64x64 cache read, images/s."),
    "learnability": ("bench.cli.perf_learnability", "Held-out R^2 of a scorer CNN trained briefly on each face attribute."),
    "propose": ("bench.cli.perf_propose", "Seconds per propose call of an optimizer at N = 200, 500, 1000 observations."),
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


def cmd_list(args: argparse.Namespace) -> int:
    """Print every registered task, optimizer, preset and benchmark (importing no plug-in)."""
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
    problems = [f"  {module}: {reason}" for module, reason in registry.broken_modules().items()]
    problems += [f"  {name} is registered by {' and '.join(targets)}"
                 for name, targets in registry.duplicate_names().items()]
    if problems:
        print("\nplug-in problems (only these names are unavailable):\n" + "\n".join(problems))
    return 0


def cmd_perf(args: argparse.Namespace) -> int:
    """Run one benchmark module's ``perf_main``."""
    module_name, _ = PERF_BENCHMARKS[args.benchmark]
    return int(importlib.import_module(module_name).perf_main(args.benchmark, list(args.rest)) or 0)


def build_parser() -> argparse.ArgumentParser:
    """The ``bench`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="bench", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Compare black-box optimizers in the discrete latent space of a VQ-VAE.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser("list", help="list tasks, optimizers, presets and benchmarks",
                       description="List every registered task, optimizer, preset and benchmark.")
    p.add_argument("-v", "--verbose", action="store_true", help="show preset parameters")
    p.set_defaults(func=cmd_list)
    run.register(sub)
    for module in (sweep, report, prepare):
        module.register(sub)
    p = sub.add_parser("perf", help="run a benchmark that prints a JSON line",
                       description="Benchmarks print figures; the last line is one JSON object.\n" +
                       "\n".join(f"  {k:12s} {v[1]}" for k, v in PERF_BENCHMARKS.items()),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("benchmark", choices=sorted(PERF_BENCHMARKS), help="which benchmark")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="options of the benchmark (see bench perf NAME --help)")
    p.set_defaults(func=cmd_perf)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``bench`` command; bad input prints one line and returns 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"bench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
