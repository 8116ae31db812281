"""``bench report DIR``: tables, figures, ``report.md`` and ``report.html`` from a sweep folder's stored runs.

The flow: load the runs (:mod:`~bench.analysis.aggregate`) → compute everything once
(:func:`analyse`: per-run statistics, anytime curves, ECDFs, profiles, rank tests, wall-time
budgets, realism points) → write the CSVs and tables (:mod:`~bench.analysis.tables`) → draw the
figures (:mod:`~bench.analysis.figures`) → assemble report.md from the sections
(:mod:`~bench.analysis.sections`) → render report.html (:mod:`~bench.analysis.html`).

Everything is regenerated from ``DIR/runs`` alone and written only into the output folder.
Tables are deterministic: the same runs give byte-identical Markdown, LaTeX and CSV files
(everything sorted, fixed float formatting, seeded bootstraps), and figures are written
without timestamps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.analysis import anytime as T
from bench.analysis import critical_difference as D
from bench.analysis import figures as F
from bench.analysis import images
from bench.analysis import realism as R
from bench.analysis import sections
from bench.analysis import stats as A
from bench.analysis import walltime as W
from bench.analysis.aggregate import METHOD, RUN_KEYS, Sweep, best_so_far_curves, load_sweep
from bench.analysis.html import write_html
from bench.analysis.plotting import MethodStyles
from bench.analysis.tables import Table, build_tables, runs_table, write_csv
from bench.core import constants as C
from bench.store.sweep_folder import REPORT_DIR

#: per-run figures the rank tests compare (all higher-is-better), with their titles
RANKED_MEASURES = (A.FINAL_BEST, A.AUC)
MEASURE_TITLES = {c.key: c.title for c in A.ANYTIME_COLUMNS}


@dataclass
class Analysis:
    """Everything the report shows, computed once from a sweep's complete runs (see :func:`analyse`)."""

    sweep: Sweep
    frame: pd.DataFrame  # stats.per_run with the walltime.best_within columns
    curves: pd.DataFrame  # anytime.query_curves
    bounds: dict[str, tuple[float, float]]  # stats.normalization_bounds
    wall_budgets: list[float]
    hits: pd.DataFrame  # anytime.first_hits
    ecdf_queries: pd.DataFrame
    ecdf_seconds: pd.DataFrame
    solved: pd.DataFrame  # anytime.solve_times
    performance: pd.DataFrame
    data_profile: pd.DataFrame
    tests: list[D.RankTest]
    realism: pd.DataFrame  # realism.realism_points


def analyse(sweep: Sweep, wall_budgets: Sequence[float] | None = None) -> Analysis:
    """Compute every statistic of the report (no file is written). Needs at least one complete run."""
    curves = T.query_curves(sweep.records)
    frame = A.per_run(sweep, curves)
    bounds = A.normalization_bounds(frame)
    budgets = sorted(set(wall_budgets)) if wall_budgets is not None else W.default_budgets(curves)
    frame = frame.merge(W.best_within(curves, budgets), on=RUN_KEYS, how="left")
    hits = T.first_hits(curves, bounds)
    solved = T.solve_times(curves)
    last_query = int(curves[C.QUERY].max())
    tests = [t for t in (D.rank_test(frame, m) for m in RANKED_MEASURES) if t is not None]
    return Analysis(sweep, frame, curves, bounds, budgets, hits, T.ecdf_queries(hits, last_query),
                    T.ecdf_seconds(hits), solved, T.performance_profile(solved), T.data_profile(solved, last_query),
                    tests, R.realism_points(sweep))


def write_data(analysis: Analysis, folder: Path) -> list[str]:
    """Write every computed quantity that is not a table as CSV; return the file names written."""
    normalization = pd.DataFrame([{C.TASK: t, "zero": z, "one": o} for t, (z, o) in sorted(analysis.bounds.items())],
                                 columns=[C.TASK, "zero", "one"])
    files = {
        "per_run.csv": analysis.frame,
        "normalization.csv": normalization,
        "ecdf_targets.csv": analysis.hits,
        "ecdf_queries.csv": analysis.ecdf_queries,
        "ecdf_seconds.csv": analysis.ecdf_seconds,
        "profiles_problems.csv": analysis.solved,
        "performance_profile.csv": analysis.performance,
        "data_profile.csv": analysis.data_profile,
        "ranks_pairs.csv": D.pairs_frame(analysis.tests),
        "realism_pareto.csv": analysis.realism,
    }
    final = A.final_metric_rows(analysis.sweep.metrics)
    if len(final):
        files["metrics_final.csv"] = final[RUN_KEYS + [C.METRIC_AT_QUERY, C.METRIC_SUBSET, C.METRIC_NAME,
                                                       C.METRIC_VALUE, C.METRIC_STD, C.METRIC_N, C.METRIC_REFERENCE,
                                                       C.METRIC_FEATURES]]
    written = []
    for name, frame in files.items():
        if len(frame):
            write_csv(frame, folder / name)
            written.append(name)
    return written


def _table_lines(tables: list[Table], folder: Path) -> list[str]:
    lines = ["## Tables", "", sections.LEGEND, ""]
    for table in tables:
        table.write(folder)
        lines += [f"### {table.heading}", "", f"{table.title}. Files: [`{table.name}.md`]({table.name}.md), "
                  f"[`{table.name}.tex`]({table.name}.tex), [`{table.name}.csv`]({table.name}.csv).", "",
                  table.markdown()]
        lines += [table.note, ""] if table.note else []
    return lines


def _body(analysis: Analysis, folder: Path, top_k: int, figures: bool) -> list[str]:
    """Every section after the header of a report with at least one complete run."""
    sweep, frame = analysis.sweep, analysis.frame
    lines = sections.budget_note(sweep, frame) + [""]
    lines += sections.definitions(analysis.bounds, A.random_baseline(frame), T.N_TARGETS, T.TAU,
                                  analysis.wall_budgets) + [""]
    lines += _table_lines(build_tables(sweep, frame, analysis.wall_budgets, analysis.tests, MEASURE_TITLES), folder)
    if not analysis.tests:
        lines += [D.NO_TEST, ""]
    written = write_data(analysis, folder)
    lines += ["Other data files: " + ", ".join(f"[`{name}`]({name})" for name in written) + ".", ""]
    if figures:
        lines += ["## Figures", ""] + _figures(analysis, folder, top_k)
    return lines + [""] + sections.provenance(sweep)


def write_report(sweep_dir: Path, top_k: int = 6, out: Path | None = None, figures: bool = True,
                 wall_budgets: Sequence[float] | None = None) -> Path:
    """Write tables, CSVs, figures, ``report.md`` and ``report.html`` into ``out`` (default
    ``sweep_dir/report``) and nowhere else; return the path of report.md.

    ``figures=False`` writes everything but the figures (fast; used by tests). ``wall_budgets``
    overrides the default wall-clock budgets (seconds).
    """
    sweep = load_sweep(sweep_dir)
    folder = Path(out) if out is not None else Path(sweep_dir) / REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    md = [f"# Report: {sweep.path.name}", "",
          f"Generated by `bench report` from `{sweep.path.name}/runs` alone: {len(sweep.complete_runs)} complete "
          f"run(s), {len(sweep.flagged_runs)} partial, failed, damaged or smoke-test run(s) (flagged, never averaged).",
          ""]
    if len(sweep.complete_runs):
        md += _body(analyse(sweep, wall_budgets), folder, top_k, figures)
    else:
        md += ["No complete run yet: nothing to summarise.", ""] + _table_lines([runs_table(sweep)], folder)
    text = "\n".join(md).rstrip("\n") + "\n"
    report = folder / "report.md"
    report.write_text(text, encoding="utf-8")
    write_html(text, folder, f"Report: {sweep.path.name}")
    return report


def _embed(paths: list[Path], heading: str, caption: str) -> list[str]:
    """Markdown of one figure under its own heading (a note when it has no data)."""
    if not paths:
        return [f"### {heading}", "", f"(No data for: {caption})", ""]
    return [f"### {heading}", "", f"![{caption}]({paths[0].name})", "", f"*{caption}* ([PDF]({paths[1].name}))", ""]


def _figures(analysis: Analysis, folder: Path, top_k: int) -> list[str]:
    """Draw every figure into ``folder``; return the Markdown lines embedding them."""
    sweep = analysis.sweep
    styles = MethodStyles.for_methods(sweep.runs[METHOD])
    curves = best_so_far_curves(sweep.records)
    lines = _embed(F.plot_best_so_far(curves, styles, folder), "Best score so far vs queries",
                   f"Best score so far vs optimizer queries: mean over seeds with 95 % bootstrap bands "
                   f"({A.N_BOOT} resamples).")
    lines += _embed(F.plot_best_vs_time(curves, styles, folder), "Best score so far vs wall time",
                    "Best score so far vs wall time, one line per run (log time).")
    for x, data, name, what in ((C.QUERY, analysis.ecdf_queries, "ecdf_queries", "optimizer queries"),
                                (C.ELAPSED_S, analysis.ecdf_seconds, "ecdf_seconds", "wall-clock seconds")):
        lines += _embed(F.plot_ecdf(data, x, styles, folder, name, T.N_TARGETS), f"Runtime ECDF vs {what}",
                        f"Runtime ECDF vs {what}: fraction of (run, target) pairs reached, per task and pooled "
                        "over tasks (targets: see Definitions).")
    lines += _embed(F.plot_profiles(analysis.performance, analysis.data_profile, styles, folder, T.TAU),
                    "Performance and data profiles", "Performance profile (left) and data profile (right) over "
                    f"(task, seed) problems, τ = {T.TAU:g}.")
    lines += _embed(F.plot_critical_difference(analysis.tests, MEASURE_TITLES, styles, folder),
                    "Critical-difference diagrams", "Mean rank per method (1 = best); a bar joins methods that no "
                    "Holm-corrected Wilcoxon test separates.") if analysis.tests else [
        "### Critical-difference diagrams", "", D.NO_TEST, ""]
    if len(analysis.realism):
        lines += _embed(F.plot_realism(analysis.realism, styles, folder), "Realism vs score",
                        "Realism vs score with the Pareto fronts: FID/KID of each run's top-n queried images at the "
                        "final checkpoint, and/or each query's prior log-likelihood.")
    else:
        lines += ["### Realism vs score", "", "No realism figures in these runs (no FID/KID checkpoints — enable "
                  "`metrics.every` — and no `prior_loglik` values), so no realism/score plot.", ""]
    lines += _embed(F.plot_seconds_per_proposal(analysis.frame, styles, folder), "Seconds per proposal",
                    "Mean seconds per proposal of each run (log scale).")
    return lines + _image_grids(sweep, folder, top_k)


def _image_grids(sweep: Sweep, folder: Path, top_k: int) -> list[str]:
    lines: list[str] = []
    for task_name in sorted(sweep.complete_runs[C.TASK].unique()):
        train, per_method, note = images.top_images(sweep, task_name, top_k)
        if train is None:
            lines += [f"No image grid for `{task_name}`: {note}.", ""]
            continue
        lines += _embed(images.plot_image_grid(train, per_method, top_k, task_name, folder), f"Images: {task_name}",
                        f"{task_name}: initial-design images (as stored by the first run) and the top-{top_k} distinct "
                        "queried images of each method over all its seeds" + (f"; {note}" if note else "") + ".")
    return lines
