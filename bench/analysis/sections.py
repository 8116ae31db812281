"""The prose sections of report.md: budget and seeds, definitions, test outcomes, provenance.

Each function returns Markdown lines; :mod:`bench.analysis.report` assembles them.
"""

from __future__ import annotations

import math

import pandas as pd

from bench.analysis import anytime as T
from bench.analysis import stats as A
from bench.analysis.aggregate import BATCH_SIZE, BUDGET, FLAG, METHOD, Sweep
from bench.analysis.tables import fmt_number
from bench.core import constants as C


def provenance(sweep: Sweep) -> list[str]:
    """Lines stating task signatures, seeds and budgets, package versions and code versions."""
    runs = sweep.complete_runs
    lines = ["## Provenance", "", "| task | task signature(s) | methods | seeds | budget | batch size |",
             "| :-- | :-- | :-- | :-- | --: | --: |"]
    warnings = []
    for task, group in runs.groupby(C.TASK, sort=True):
        signatures = sorted(set(group[C.TASK_SIGNATURE]))
        budgets = sorted(set(group[BUDGET]))
        lines.append(f"| {task} | {', '.join(signatures)} | {', '.join(sorted(set(group[METHOD])))} | "
                     f"{', '.join(str(s) for s in sorted(set(group[C.SEED])))} | "
                     f"{', '.join(str(b) for b in budgets)} | "
                     f"{', '.join(str(b) for b in sorted(set(group[BATCH_SIZE])))} |")
        if len(signatures) > 1:
            warnings.append(f"- **warning**: runs of `{task}` have {len(signatures)} different task signatures: "
                            "they did not optimize the same function, so their comparison is invalid.")
        if len(budgets) > 1:
            warnings.append(f"- **warning**: runs of `{task}` have different budgets {budgets}; "
                            "budget fractions are relative to each run's own budget.")
    versions: dict[str, set[str]] = {}
    commits: set[str] = set()
    for _, run in runs.iterrows():
        info = sweep.info(run)
        for name, version in info.get("packages", {}).items():
            versions.setdefault(str(name), set()).add(str(version))
        git = info.get("git") or {}
        if git.get("commit"):
            commits.add(f"{git['commit'][:12]}{' (dirty)' if git.get('dirty') else ''}")
    lines += [""] + warnings + ([""] if warnings else [])
    lines.append("Packages: " + ", ".join(f"{name} {' / '.join(sorted(v))}" for name, v in sorted(versions.items())) + ".")
    if any(len(v) > 1 for v in versions.values()):
        lines.append("\n**warning**: runs used different package versions (listed with `/`).")
    lines.append("")
    lines.append("Code: " + (", ".join(sorted(commits)) if commits else "not recorded") + ".")
    return lines


def _seed_range(frame: pd.DataFrame) -> str:
    counts = frame.groupby([C.TASK, METHOD])[C.SEED].count()
    low, high = int(counts.min()), int(counts.max())
    return str(low) if low == high else f"{low} to {high}"


def budget_note(sweep: Sweep, frame: pd.DataFrame) -> list[str]:
    runs = sweep.complete_runs
    min_seeds = int(frame.groupby([C.TASK, METHOD])[C.SEED].count().min()) if len(frame) else 0
    # Holm multiplies the smallest p-value by the number of comparisons (methods other than the best)
    comparisons = max(1, int(frame.groupby(C.TASK)[METHOD].nunique().max()) - 1) if len(frame) else 1
    smallest_p = 2.0 ** -min_seeds if min_seeds else math.nan
    smallest_adjusted = min(1.0, comparisons * smallest_p)
    verdict = (f"so no difference can be significant at α = {A.ALPHA}: the † marks only say that the seeds are "
               "too few to separate the methods." if smallest_adjusted >= A.ALPHA else
               "so clear differences can be significant.")
    lines = [
        "## Budget and seeds", "",
        f"{len(runs)} complete runs; budgets of {', '.join(str(b) for b in sorted(set(runs[BUDGET])))} optimizer "
        f"queries after the initial design; {_seed_range(frame)} seeds per (task, method).",
        f"With {min_seeds} paired seeds the smallest possible one-sided Wilcoxon p-value is "
        f"{fmt_number(smallest_p, 3)} ({fmt_number(smallest_adjusted, 3)} after Holm's correction over "
        f"{comparisons} comparison(s)), " + verdict,
    ]
    flagged = sweep.flagged_runs
    if len(flagged):
        lines += ["", f"**{len(flagged)} run(s) are not in the statistics** (partial or failed; see the runs table):", ""]
        lines += [f"- `{r[C.TASK]}` / `{r[METHOD]}` / seed {r[C.SEED]}: {r[FLAG]}"
                  + (f" — {r['error']}" if r["error"] else "") for _, r in flagged.iterrows()]
    return lines


LEGEND = ("Mean ± standard error over seeds (the anytime table: mean [bootstrap interval]); **bold**: best mean in "
          "the column (per task); †: not significantly worse than the best (one-sided paired Wilcoxon signed-rank "
          f"test over seeds, Holm-corrected within the column and task, α = {A.ALPHA}). `normalized` and the AUCs are "
          "in normalized units (see Definitions). `avg. rank`: rank of the final best among methods per (task, seed), "
          "1 = best. `held-out of best`: the independent scorer's value of each run's best latents. `propose share "
          "of wall time`: the run's total propose time over its total wall time.")


def definitions(bounds: dict[str, tuple[float, float]], baselines: dict[str, str], n_targets: int, tau: float,
                wall_budgets: list[float]) -> list[str]:
    """How the normalized score, the ECDF targets, the AUCs, the profiles and the budgets are defined."""
    lines = [
        "## Definitions", "",
        "**Normalized score** of a task: 0 = the median final best of random search (the method named below; on a "
        "task without random search, the median best of the initial designs), 1 = the best final score of any run "
        "on the task (the best known). Tasks where nothing beat the reference have no normalized score.", "",
        "| task | 0 = | value at 0 | value at 1 |", "| :-- | :-- | --: | --: |",
    ]
    for task, (zero, one) in sorted(bounds.items()):
        source = f"median final best of `{baselines[task]}`" if task in baselines else "median initial-design best"
        lines.append(f"| {task} | {source} | {fmt_number(zero)} | {fmt_number(one)} |")
    budgets = ", ".join(f"{b:g} s" for b in wall_budgets) or "none (no wall time recorded)"
    step = 1 / (n_targets - 1)
    lines += [
        "",
        f"**Runtime ECDFs** (COCO style): {n_targets} targets per task, evenly spaced in normalized score from 0 to 1 "
        f"(0, {step:.2g}, …, 1). A (run, target) pair is reached at the first query (and the recorded wall time) "
        "where the run's best score so far is at least the target. The ECDF is the fraction of a method's "
        "(run, target) pairs reached within a budget; `all tasks` pools every (task, seed, target) of the method. "
        "Files: `ecdf_targets.csv` (first hits), `ecdf_queries.csv`, `ecdf_seconds.csv`.",
        "",
        f"**Areas under the curve**: `AUC best-so-far` is the mean over queries 1..budget of the normalized best "
        f"score so far (1: the best known score from the first query on; 0: never above the reference); `AUC "
        f"top-10 mean` is the same for the normalized mean of the {T.TOP_K} best scores so far (initial design "
        "included), PMO's anytime score (Gao et al. 2022). Intervals: percentile bootstrap over seeds "
        f"({A.N_BOOT} resamples, seed {A.BOOT_SEED}).",
        "",
        f"**Profiles** over (task, seed) problems, tolerance τ = {tau:g}: a method solves a problem at the first "
        "query where its best score so far is ≥ f_best − τ·(f_best − f_0), with f_0 the best score of the problem's "
        "initial design and f_best the best final score of any method on it (Moré & Wild 2009). Performance "
        "profile (Dolan & Moré 2002): the fraction of problems a method solves within α times the optimizer "
        "queries (at least 1) of the fastest method on each problem. Data profile: the fraction solved within "
        "κ optimizer queries. Files: `profiles_problems.csv`, `performance_profile.csv`, `data_profile.csv`.",
        "",
        f"**Wall-clock budgets**: {budgets}, log-spaced from the shortest to the longest run's total wall time "
        "(recorded `elapsed_s`, initial design included). They depend on the machine and its load.",
    ]
    return lines
