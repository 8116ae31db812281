"""``bench report DIR``: tables, plots and report.md from a sweep folder's stored runs, swapped in whole."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.core.errors import UserError
from bench.store.sweep_folder import REPORT_DIR, staged_folder


def cmd_report(args: argparse.Namespace) -> int:
    """Write the report into a staging folder, then replace the previous report with it at once."""
    from bench.analysis.report import write_report

    if args.top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {args.top_k}")
    sweep_dir = Path(args.dir)
    if not sweep_dir.is_dir():
        raise UserError(f"sweep folder {str(sweep_dir)!r} does not exist")
    target = Path(args.out) if args.out else sweep_dir / REPORT_DIR
    with staged_folder(target) as staging:
        write_report(sweep_dir, top_k=args.top_k, out=staging)
    print(f"report: {target / 'report.md'}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``bench report DIR [--top-k K] [--out FOLDER]``."""
    p = subparsers.add_parser(
        "report", help="tables, plots and report.md from a sweep folder",
        description="Read every run under DIR/runs and write Markdown/LaTeX/CSV tables, seaborn plots "
                    "(PNG+PDF) and report.md under DIR/report/ (or --out). Partial, failed, damaged and "
                    "smoke-test runs are listed, never averaged. The previous report is replaced only once the "
                    "new one is complete. A read-only results folder: write elsewhere with --out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("dir", help="sweep folder (holding runs/task=*/opt=*/seed=*)")
    p.add_argument("--top-k", type=int, default=6, help="images per method in the image grid")
    p.add_argument("--out", default=None, help="output folder (default: DIR/report)")
    p.set_defaults(func=cmd_report)
