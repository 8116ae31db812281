"""``bench report DIR``: tables, seaborn plots and ``report.md`` from a sweep folder's stored runs.

Everything is regenerated from ``DIR/runs`` alone. Tables are deterministic: the same runs give
byte-identical Markdown, LaTeX and CSV files (everything sorted, fixed float formatting), and
figures are written without timestamps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from bench.analysis import stats as A
from bench.core import constants as C
from bench.analysis.aggregate import (BATCH_SIZE, BUDGET, FLAG, METHOD, OPTIMIZER_NAME, PATH, QUERIES_DONE, RUN_KEYS,
                             STATUS, Sweep, best_so_far_curves, load_sweep)
from bench.core.errors import UserError

REPORT_DIR = "report"
FIGURE_FORMATS = ("png", "pdf")
#: bootstrap resamples and seed of the 95 % bands (seeded: the same runs give the same bands)
N_BOOT = 1000
BOOT_SEED = 0
DPI = 120
BEST_MARK_MD, NOT_WORSE_MARK_MD = "**", "†"
MISSING = "–"


# --- number formatting ----------------------------------------------------------------------


def fmt_number(x: float, digits: int = 4) -> str:
    """Fixed formatting of one number (``digits`` significant digits); NaN becomes a dash."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return MISSING
    text = f"{float(x):.{digits}g}"
    return "0" if text == "-0" else text


def _fixed(x: float, decimals: int) -> str:
    text = f"{x:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.00"


def fmt_mean_se(mean: float, se: float, n: int, seeds: int) -> str:
    """``mean ± se`` with the standard error to 2 significant digits and the mean to the same decimals.

    Without a standard error the mean gets 4 significant digits. ``(n=..)`` is appended when
    fewer of the row's seeds have a value.
    """
    if mean is None or math.isnan(mean):
        return MISSING
    if not math.isnan(se) and se > 0:
        decimals = min(8, max(0, 1 - math.floor(math.log10(se))))
        text = f"{_fixed(mean, decimals)} ± {_fixed(se, decimals)}"
    else:
        decimals = min(8, max(0, 3 - math.floor(math.log10(abs(mean))))) if mean != 0 else 0
        text = _fixed(mean, decimals) + ("" if math.isnan(se) else f" ± {_fixed(0.0, decimals)}")
    return text + (f" (n={n})" if n != seeds else "")


# --- tables ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One table cell: its text, whether it is the best of its column, and the not-worse mark."""

    text: str
    bold: bool = False
    mark: bool = False


@dataclass
class Table:
    """A rendered-to-be table: a title, a header, rows of cells, and its tidy CSV frame."""

    name: str
    title: str
    header: list[str]
    rows: list[list[Cell]]
    csv: pd.DataFrame
    n_keys: int  # leading text columns (left-aligned)

    def markdown(self) -> str:
        """GitHub-flavoured Markdown."""
        def cell(c: Cell) -> str:
            text = c.text.replace("|", "\\|")
            text = f"{BEST_MARK_MD}{text}{BEST_MARK_MD}" if c.bold and c.text != MISSING else text
            return text + (NOT_WORSE_MARK_MD if c.mark else "")

        align = [":--" if i < self.n_keys else "--:" for i in range(len(self.header))]
        lines = ["| " + " | ".join(self.header) + " |", "| " + " | ".join(align) + " |"]
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def latex(self) -> str:
        """A ``tabular`` (booktabs rules) to ``\\input`` in a paper."""
        def cell(c: Cell) -> str:
            text = latex_escape(c.text).replace("±", r"$\pm$").replace("–", "--")
            text = rf"\textbf{{{text}}}" if c.bold and c.text != MISSING else text
            return text + (r"$^{\dagger}$" if c.mark else "")

        spec = "l" * self.n_keys + "r" * (len(self.header) - self.n_keys)
        lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
                 " & ".join(latex_escape(h) for h in self.header) + r" \\", r"\midrule"]
        lines += [" & ".join(cell(c) for c in row) + r" \\" for row in self.rows]
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines) + "\n"

    def write(self, folder: Path) -> list[Path]:
        """Write ``<name>.md``, ``<name>.tex`` and ``<name>.csv`` into ``folder``."""
        paths = [folder / f"{self.name}.{ext}" for ext in ("md", "tex", "csv")]
        paths[0].write_text(self.markdown())
        paths[1].write_text(self.latex())
        paths[2].write_text(self.csv.to_csv(index=False, float_format="%.10g", lineterminator="\n"))
        return paths


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    for char, repl in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                       ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"),
                       ("^", r"\textasciicircum{}")):
        text = text.replace(char, repl)
    return text


def stat_table(name: str, title: str, frame: pd.DataFrame, columns: list[A.Column],
               extra: Callable[[str, str], list[str]] | None = None, extra_header: list[str] | None = None,
               lead: tuple[tuple[str, str], ...] = (), drop_empty: bool = True) -> Table:
    """Rows (task, method, *lead, seeds), one cell per statistic, then ``extra(task, method)`` cells.

    ``lead`` holds constant (header, value) cells after the method (e.g. the metric subset).
    Columns without a value for any task are dropped unless ``drop_empty`` is False.
    """
    summary = A.summarize(frame, columns)
    present = [c for c in columns if c.key in set(summary[A.COLUMN])] if drop_empty else list(columns)
    seeds = frame.groupby([C.TASK, METHOD], sort=True)[C.SEED].count()
    indexed = summary.set_index([C.TASK, METHOD, A.COLUMN])
    rows = []
    for (task, method), n_seeds in seeds.items():
        row = [Cell(str(task)), Cell(str(method))] + [Cell(value) for _, value in lead] + [Cell(str(int(n_seeds)))]
        for column in present:
            key = (task, method, column.key)
            if key not in indexed.index:
                row.append(Cell(MISSING))
                continue
            s = indexed.loc[key]
            row.append(Cell(fmt_mean_se(float(s[A.MEAN]), float(s[A.SE]), int(s[A.N]), int(n_seeds)),
                            bool(s[A.IS_BEST]), bool(s[A.NOT_WORSE])))
        row += [Cell(text) for text in (extra(str(task), str(method)) if extra else [])]
        rows.append(row)
    header = ["task", "method"] + [h for h, _ in lead] + ["seeds"] + [c.title for c in present] + (extra_header or [])
    csv = summary.copy()
    titles = {c.key: c.title for c in columns}
    csv.insert(3, "title", [titles[k] for k in csv[A.COLUMN]])
    for i, (head, value) in enumerate(lead):
        csv.insert(2 + i, head, value)
    return Table(name, title, header, rows, csv, n_keys=2 + len(lead))


def quality_table(sweep: Sweep, frame: pd.DataFrame) -> Table | None:
    """FID/KID at the final checkpoint, one block of rows per (subset, reference set); None without metrics."""
    groups = A.metric_groups(sweep.metrics)
    if not groups:
        return None
    final = A.final_metric_rows(sweep.metrics)
    names = sorted({c.title for _, _, cols in groups for c in cols}, key=lambda n: (n != "FID", n))
    parts = []
    for subset, reference, _ in groups:
        columns = [A.Column(A.metric_key(n.lower(), subset, reference), n, False) for n in names]
        rows = final[(final[C.METRIC_SUBSET] == subset) & (final[C.METRIC_REFERENCE] == reference)]

        def provenance(task: str, method: str, rows: pd.DataFrame = rows) -> list[str]:
            mine = rows[(rows[C.TASK] == task) & (rows[METHOD] == method)]
            return [", ".join(sorted({str(v) for v in mine[col]})) or MISSING for col in (C.METRIC_N, C.METRIC_FEATURES)]

        parts.append(stat_table("quality", "", frame, columns, provenance, ["n images", "features"],
                                lead=(("subset", subset), ("reference", reference)), drop_empty=False))
    csv = pd.concat([t.csv for t in parts], ignore_index=True)
    csv[A.COLUMN] = csv["title"].str.lower()  # the key's subset and reference are columns of their own
    return Table("quality", "Set-level image metrics of the top-n / last-n queried images at the final checkpoint "
                 "(lower is better)", parts[0].header, [row for t in parts for row in t.rows], csv, n_keys=4)


def overall_table(frame: pd.DataFrame) -> Table:
    """Per method over every task: normalized score and average rank (best in bold, no test)."""
    data = A.overall(frame)
    rows = []
    best_norm = data[f"{A.NORMALIZED}_{A.MEAN}"].max()
    best_rank = data[f"{A.RANK}_{A.MEAN}"].min()
    for _, r in data.iterrows():
        row = [Cell(str(r[METHOD])), Cell(str(int(r["tasks"])))]
        for key, best in ((A.NORMALIZED, best_norm), (A.RANK, best_rank)):
            mean, se, n = float(r[f"{key}_{A.MEAN}"]), float(r[f"{key}_{A.SE}"]), int(r[f"{key}_{A.N}"])
            row.append(Cell(fmt_mean_se(mean, se, n, n), bold=not math.isnan(mean) and mean == best))
        rows.append(row)
    return Table("overall", "All tasks: normalized score and average rank per method",
                 ["method", "tasks", "normalized", "avg. rank"], rows, data, n_keys=1)


def runs_table(sweep: Sweep) -> Table:
    """Every run folder with its status; runs excluded from the statistics say why."""
    runs = sweep.runs
    rows = []
    for _, r in runs.iterrows():
        rows.append([Cell(str(r[C.TASK])), Cell(str(r[METHOD])), Cell(str(r[C.SEED])), Cell(str(r[OPTIMIZER_NAME])),
                     Cell(str(r[STATUS])), Cell(f"{r[QUERIES_DONE]}/{r[BUDGET]}"), Cell(str(r[C.TASK_SIGNATURE])),
                     Cell(str(r[FLAG]) or "included")])
    csv = runs.drop(columns=[PATH]).copy()
    csv.insert(len(csv.columns), "folder", [str(Path(p).relative_to(sweep.path)) for p in runs[PATH]])
    return Table("runs", "Runs", ["task", "method", "seed", "optimizer", "status", "queries", "task signature",
                                  "in statistics"], rows, csv, n_keys=8)


def build_tables(sweep: Sweep, frame: pd.DataFrame) -> list[Table]:
    """Every table of the report, in report order."""
    tables = [stat_table("scores", "Best score (mean ± s.e. over seeds) at fractions of the budget",
                         frame, A.SCORE_COLUMNS)]
    quality = quality_table(sweep, frame)
    if quality is not None:
        tables.append(quality)
    tables.append(stat_table("cost", "Seconds per proposal, duplicate and fallback proposals per run",
                             frame, A.COST_COLUMNS))
    tables.append(overall_table(frame))
    tables.append(runs_table(sweep))
    return tables


# --- figures --------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "bench", "pdf.fonttype": 42})
    return plt


def save_figure(fig: Any, folder: Path, name: str) -> list[Path]:
    """Save as PNG and PDF without timestamps or software stamps (reproducible bytes)."""
    plt = _pyplot()
    paths = []
    for ext in FIGURE_FORMATS:
        path = folder / f"{name}.{ext}"
        metadata = {"Software": None} if ext == "png" else {"CreationDate": None, "ModDate": None, "Producer": None,
                                                            "Creator": None}
        fig.savefig(path, dpi=DPI, bbox_inches="tight", metadata=metadata)
        paths.append(path)
    plt.close(fig)
    return paths


def _hue_order(frame: pd.DataFrame) -> list[str]:
    return sorted(frame[METHOD].unique())


def plot_best_so_far(curves: pd.DataFrame, folder: Path) -> list[Path]:
    """Best-so-far vs optimizer queries: mean over seeds with 95 % seeded bootstrap bands, a facet per task."""
    import seaborn as sns

    _pyplot()
    grid = sns.relplot(data=curves, x=C.QUERY, y=C.BEST_SO_FAR, hue=METHOD, hue_order=_hue_order(curves),
                       col=C.TASK, col_wrap=min(3, curves[C.TASK].nunique()), kind="line",
                       errorbar=("ci", 95), n_boot=N_BOOT, seed=BOOT_SEED,
                       facet_kws={"sharey": False, "sharex": False}, height=3.2, aspect=1.3)
    grid.set_axis_labels("optimizer queries (0 = initial design)", "best score so far")
    grid.set_titles("{col_name}")
    return save_figure(grid.figure, folder, "best_so_far")


def plot_best_vs_time(curves: pd.DataFrame, folder: Path) -> list[Path]:
    """Best-so-far vs wall-clock seconds since the run started: one step line per run (log x)."""
    import seaborn as sns

    _pyplot()
    data = curves[curves[C.ELAPSED_S] > 0]
    if not len(data):
        return []
    grid = sns.relplot(data=data, x=C.ELAPSED_S, y=C.BEST_SO_FAR, hue=METHOD, hue_order=_hue_order(curves),
                       units=C.SEED, estimator=None, col=C.TASK, col_wrap=min(3, data[C.TASK].nunique()),
                       kind="line", drawstyle="steps-post", alpha=0.8,
                       facet_kws={"sharey": False, "sharex": False}, height=3.2, aspect=1.3)
    grid.set(xscale="log")
    grid.set_axis_labels("wall time since run start [s]", "best score so far")
    grid.set_titles("{col_name}")
    return save_figure(grid.figure, folder, "best_vs_time")


def quality_vs_score(sweep: Sweep) -> pd.DataFrame:
    """Per run and reference set at the final checkpoint: FID (else KID) of the top-n queries and their mean score."""
    final = A.final_metric_rows(sweep.metrics)
    if not len(final):
        return pd.DataFrame()
    top = final[final[C.METRIC_SUBSET] == A.MAIN_SUBSET]
    names = sorted(set(top[C.METRIC_NAME].astype(str)), key=lambda n: (n != "fid", n != "kid", n))
    if not names:
        return pd.DataFrame()
    metric = names[0]
    queries = sweep.records[~sweep.records[C.IS_INIT]]
    by_run = {key: group for key, group in queries.groupby(RUN_KEYS, sort=False)}
    rows = []
    for _, m in top[top[C.METRIC_NAME] == metric].iterrows():
        run = by_run[(m[C.TASK], m[METHOD], m[C.SEED])]
        run = run[run[C.QUERY] <= m[C.METRIC_AT_QUERY]]
        n = int(m[C.METRIC_N]) if not pd.isna(m[C.METRIC_N]) else len(run)
        top_scores = np.sort(run[C.SCORE].to_numpy())[::-1][:n]
        rows.append({C.TASK: m[C.TASK], METHOD: m[METHOD], C.SEED: m[C.SEED], "reference": str(m[C.METRIC_REFERENCE]),
                     "metric": metric, "value": float(m[C.METRIC_VALUE]), "mean_top_score": float(top_scores.mean()),
                     "n": n})
    return pd.DataFrame(rows).sort_values(RUN_KEYS + ["reference"], kind="stable").reset_index(drop=True)


def plot_quality_vs_score(data: pd.DataFrame, folder: Path) -> list[Path]:
    """The realism/score trade-off: FID (or KID) of the top-n queries against their mean score, per run.

    One facet per (task, reference set).
    """
    import seaborn as sns

    _pyplot()
    metric = str(data["metric"].iloc[0]).upper()
    grid = sns.relplot(data=data, x="value", y="mean_top_score", hue=METHOD, hue_order=_hue_order(data),
                       style=METHOD, style_order=_hue_order(data), row=C.TASK, col="reference", kind="scatter",
                       s=60, facet_kws={"sharey": False, "sharex": False}, height=3.2, aspect=1.2)
    grid.set_axis_labels(f"{metric} of the top-n queries (lower: more realistic)", "mean score of the top-n queries")
    grid.set_titles("{row_name} vs {col_name}")
    return save_figure(grid.figure, folder, "quality_vs_score")


def plot_seconds_per_proposal(frame: pd.DataFrame, folder: Path) -> list[Path]:
    """Mean seconds per proposal of each run (log scale), a facet per task."""
    import seaborn as sns

    _pyplot()
    data = frame[frame[A.SECONDS_PER_PROPOSAL] > 0]
    if not len(data):
        return []
    grid = sns.catplot(data=data, x=METHOD, y=A.SECONDS_PER_PROPOSAL, order=_hue_order(frame), hue=METHOD,
                       hue_order=_hue_order(frame), col=C.TASK, col_wrap=min(3, data[C.TASK].nunique()),
                       kind="strip", jitter=False, s=40, sharey=False, sharex=False, height=3.2, aspect=1.3)
    grid.set(yscale="log")
    grid.set_axis_labels("", "seconds per proposal (mean over the run)")
    grid.set_titles("{col_name}")
    for ax in grid.axes.flat:
        ax.tick_params(axis="x", rotation=45)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    return save_figure(grid.figure, folder, "seconds_per_proposal")


# --- image grids ----------------------------------------------------------------------------


def _top_distinct(queries: pd.DataFrame, k: int) -> pd.DataFrame:
    """The ``k`` best queries with distinct latents (ties: lower seed, then earlier query)."""
    rows = queries.sort_values([C.SCORE, C.SEED, C.EVAL], ascending=[False, True, True], kind="stable")
    return rows.drop_duplicates(C.LATENT, keep="first").head(k)


def top_images(sweep: Sweep, task_name: str, k: int) -> tuple[np.ndarray | None, dict[str, list[tuple[np.ndarray, float, int]]], str]:
    """Initial-design images and, per method, the k best distinct queried images (image, score, seed).

    Everything comes from the images each run stored as it scored them (what was really scored,
    even after retraining changed the decoder); nothing is decoded again and no model is needed.
    Returns (initial images or None, images per method, note); (None, {}, reason) when the runs
    of the task stored no images.
    """
    runs = sweep.complete_runs[sweep.complete_runs[C.TASK] == task_name]
    train = next((images for _, run in runs.iterrows() if (images := sweep.initial_images(run)) is not None), None)
    if train is None:
        return None, {}, "its runs stored no images (not an image task, or written by an older version)"
    queries = sweep.records[(sweep.records[C.TASK] == task_name) & ~sweep.records[C.IS_INIT]]
    out: dict[str, list[tuple[np.ndarray, float, int]]] = {}
    for method in sorted(runs[METHOD].unique()):
        stored = {int(run[C.SEED]): sweep.query_images(run) for _, run in runs[runs[METHOD] == method].iterrows()}
        chosen = []
        for _, row in _top_distinct(queries[queries[METHOD] == method], k).iterrows():
            images = stored.get(int(row[C.SEED]))
            if images is not None and int(row[C.QUERY]) <= len(images):
                chosen.append((images[int(row[C.QUERY]) - 1].astype(np.float32) / 255.0, float(row[C.SCORE]),
                               int(row[C.SEED])))
        out[method] = chosen
    return train.astype(np.float32) / 255.0, out, ""


def plot_image_grid(train: np.ndarray, per_method: dict[str, list[tuple[np.ndarray, float, int]]], k: int,
                    task_name: str, folder: Path) -> list[Path]:
    """Rows: training images, then each method's top-k queried images with their scores."""
    plt = _pyplot()
    labels = ["training data"] + list(per_method)
    fig, axes = plt.subplots(len(labels), k, figsize=(1.15 * k + 1.6, 1.3 * len(labels)), squeeze=False)
    for r, label in enumerate(labels):
        items = [(img, None, None) for img in train[:k]] if r == 0 else per_method[label]
        for c in range(k):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(items):
                image, score, seed = items[c]
                image = np.clip(np.asarray(image, dtype=np.float32), 0, 1).transpose(1, 2, 0)
                ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
                if score is not None:
                    ax.set_title(f"{fmt_number(score)} (s{seed})", fontsize=7, pad=2)
            if c == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    height = fig.get_size_inches()[1]
    fig.subplots_adjust(top=1 - 0.45 / height, bottom=0.02, hspace=0.3, wspace=0.08)  # a fixed title margin
    fig.suptitle(f"{task_name}: top-{k} queried images per method (score, seed)", fontsize=9, y=1 - 0.1 / height)
    return save_figure(fig, folder, f"top_images_{task_name.replace('/', '+')}")


# --- report.md ------------------------------------------------------------------------------


def _provenance(sweep: Sweep) -> list[str]:
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


def _budget_note(sweep: Sweep, frame: pd.DataFrame) -> list[str]:
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


LEGEND = ("Mean ± standard error over seeds; **bold**: best mean in the column (per task); †: not significantly "
          "worse than the best (one-sided paired Wilcoxon signed-rank test over seeds, Holm-corrected within the "
          f"column and task, α = {A.ALPHA}). `normalized`: 0 = median final best of random search, 1 = best final "
          "score of any run on the task. `avg. rank`: rank of the final best among methods per (task, seed), 1 = best. "
          "`held-out of best`: the independent scorer's value of each run's best latents.")


def write_report(sweep_dir: Path, top_k: int = 6, out: Path | None = None, figures: bool = True) -> Path:
    """Write tables, figures and ``report.md`` under ``out`` (default ``sweep_dir/report``); return report.md.

    ``figures=False`` writes the tables and a report.md without figures (fast; used by tests).
    """
    sweep = load_sweep(sweep_dir)
    folder = Path(out) if out is not None else Path(sweep_dir) / REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    frame = A.per_run(sweep)
    md = [f"# Report: {sweep.path.name}", "",
          f"Generated by `bench report` from `{sweep.path.name}/runs` alone: {len(sweep.complete_runs)} complete "
          f"run(s), {len(sweep.flagged_runs)} partial or failed run(s) (flagged, not averaged).", ""]
    if not len(frame):
        tables = [runs_table(sweep)]
        md += ["No complete run yet: nothing to summarise.", ""]
    else:
        tables = build_tables(sweep, frame)
    md += _budget_note(sweep, frame) + [""] if len(frame) else []
    md += ["## Tables", "", LEGEND, ""]
    for table in tables:
        table.write(folder)
        md += [f"### {table.title}", "", f"Files: [`{table.name}.md`]({table.name}.md), [`{table.name}.tex`]"
               f"({table.name}.tex), [`{table.name}.csv`]({table.name}.csv).", "", table.markdown()]
    if len(frame):
        final = A.final_metric_rows(sweep.metrics)
        if len(final):
            cols = RUN_KEYS + [C.METRIC_AT_QUERY, C.METRIC_SUBSET, C.METRIC_NAME, C.METRIC_VALUE, C.METRIC_STD,
                               C.METRIC_N, C.METRIC_REFERENCE, C.METRIC_FEATURES]
            final[cols].to_csv(folder / "metrics_final.csv", index=False, float_format="%.10g", lineterminator="\n")
        if figures:
            md += ["## Figures", ""] + _figures(sweep, frame, folder, top_k)
        md += [""] + _provenance(sweep)
    report = folder / "report.md"
    report.write_text("\n".join(md).rstrip("\n") + "\n")
    return report


def _figures(sweep: Sweep, frame: pd.DataFrame, folder: Path, top_k: int) -> list[str]:
    lines: list[str] = []

    def embed(paths: list[Path], caption: str) -> None:
        if not paths:
            lines.extend([f"(No data for: {caption})", ""])
            return
        png = paths[0].name
        lines.extend([f"![{caption}]({png})", "", f"*{caption}* ([PDF]({paths[1].name}))", ""])

    curves = best_so_far_curves(sweep.records)
    embed(plot_best_so_far(curves, folder),
          f"Best score so far vs optimizer queries: mean over seeds with 95 % bootstrap bands ({N_BOOT} resamples).")
    embed(plot_best_vs_time(curves, folder), "Best score so far vs wall time, one line per run (log time).")
    quality = quality_vs_score(sweep)
    if len(quality):
        quality.to_csv(folder / "quality_vs_score.csv", index=False, float_format="%.10g", lineterminator="\n")
        embed(plot_quality_vs_score(quality, folder),
              f"Realism vs score at the final checkpoint, one point per run: {quality['metric'].iloc[0].upper()} "
              "of the top-n queried images against their mean score.")
    else:
        lines += ["No FID/KID checkpoints in these runs (enable `metrics.every`), so no realism/score plot.", ""]
    embed(plot_seconds_per_proposal(frame, folder), "Mean seconds per proposal of each run (log scale).")
    for task_name in sorted(sweep.complete_runs[C.TASK].unique()):
        train, per_method, note = top_images(sweep, task_name, top_k)
        if train is None:
            lines += [f"No image grid for `{task_name}`: {note}.", ""]
            continue
        embed(plot_image_grid(train, per_method, top_k, task_name, folder),
              f"{task_name}: training images (initial design of seed 0) and the top-{top_k} distinct queried "
              "images of each method over all its seeds" + (f"; {note}" if note else "") + ".")
    return lines
