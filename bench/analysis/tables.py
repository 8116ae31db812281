"""The report's tables: one :class:`Table` renders to Markdown, LaTeX (booktabs) and tidy CSV.

Tables are deterministic: the same runs give byte-identical files (everything sorted, fixed
float formatting, seeded bootstrap intervals).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.analysis import stats as A
from bench.analysis import walltime as W
from bench.analysis.aggregate import FLAG, METHOD, OPTIMIZER_NAME, PATH, QUERIES_DONE, BUDGET, STATUS, Sweep
from bench.analysis.critical_difference import RankTest, describe, summary_frame
from bench.core import constants as C

BEST_MARK_MD, NOT_WORSE_MARK_MD = "**", "†"
MISSING = "–"
#: short section heading of each table in report.md (its title follows as a sentence)
HEADINGS = {"scores": "Scores at fractions of the budget", "anytime": "Anytime scores: areas under the curve",
            "walltime": "Wall-clock budgets", "quality": "Image quality (FID/KID)", "cost": "Cost",
            "ranks": "Ranks and critical differences", "overall": "All tasks", "runs": "Runs"}
CSV_FLOAT = "%.10g"


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` as CSV with the report's fixed float format (byte-identical on regeneration)."""
    frame.to_csv(path, index=False, float_format=CSV_FLOAT, lineterminator="\n")
    return path


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


def _is_spread(spread: float, mean: float) -> bool:
    """Whether a standard error or interval half-width is more than float noise around ``mean``."""
    return not math.isnan(spread) and spread > 1e-12 * max(1.0, abs(mean))


def _decimals_for(spread: float) -> int:
    """Decimals that show ``spread`` (a standard error or half an interval) to 2 significant digits."""
    return min(8, max(0, 1 - math.floor(math.log10(spread))))


def _decimals_alone(mean: float) -> int:
    """Decimals that show a mean without a spread to 4 significant digits."""
    return min(8, max(0, 3 - math.floor(math.log10(abs(mean))))) if mean != 0 else 0


def fmt_mean_se(mean: float, se: float, n: int, seeds: int) -> str:
    """``mean ± se`` with the standard error to 2 significant digits and the mean to the same decimals.

    Without a standard error (or one that is float noise) the mean gets 4 significant digits.
    ``(n=..)`` is appended when fewer of the row's seeds have a value.
    """
    if mean is None or math.isnan(mean):
        return MISSING
    if _is_spread(se, mean):
        decimals = _decimals_for(se)
        text = f"{_fixed(mean, decimals)} ± {_fixed(se, decimals)}"
    else:
        decimals = _decimals_alone(mean)
        text = _fixed(mean, decimals) + ("" if math.isnan(se) else f" ± {_fixed(0.0, decimals)}")
    return text + (f" (n={n})" if n != seeds else "")


def fmt_mean_ci(mean: float, low: float, high: float, n: int, seeds: int) -> str:
    """``mean [low, high]`` with the half-width to 2 significant digits and every number to its decimals.

    Without an interval (fewer than 2 values) the mean gets 4 significant digits.
    """
    if mean is None or math.isnan(mean):
        return MISSING
    if math.isnan(low) or math.isnan(high):
        return fmt_mean_se(mean, math.nan, n, seeds)
    spread = (high - low) / 2
    decimals = _decimals_for(spread) if _is_spread(spread, mean) else _decimals_alone(mean)
    text = f"{_fixed(mean, decimals)} [{_fixed(low, decimals)}, {_fixed(high, decimals)}]"
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
    note: str = ""  # Markdown shown under the table in report.md

    @property
    def heading(self) -> str:
        """The short section heading of the table in report.md."""
        return HEADINGS.get(self.name, self.title)

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
        write_csv(self.csv, paths[2])
        return paths


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    for char, repl in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                       ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"),
                       ("^", r"\textasciicircum{}")):
        text = text.replace(char, repl)
    return text


def _stat_cell(s: pd.Series, n_seeds: int, ci: bool) -> Cell:
    """One summary row as a cell: mean ± s.e. (or mean [bootstrap interval]), bold if best, † if not worse."""
    if ci:
        text = fmt_mean_ci(float(s[A.MEAN]), float(s[A.CI_LOW]), float(s[A.CI_HIGH]), int(s[A.N]), n_seeds)
    else:
        text = fmt_mean_se(float(s[A.MEAN]), float(s[A.SE]), int(s[A.N]), n_seeds)
    return Cell(text, bool(s[A.IS_BEST]), bool(s[A.NOT_WORSE]))


def stat_table(name: str, title: str, frame: pd.DataFrame, columns: list[A.Column],
               extra: Callable[[str, str], list[str]] | None = None, extra_header: list[str] | None = None,
               lead: tuple[tuple[str, str], ...] = (), drop_empty: bool = True, ci: Sequence[str] = ()) -> Table:
    """Rows (task, method, *lead, seeds), one cell per statistic, then ``extra(task, method)`` cells.

    ``lead`` holds constant (header, value) cells after the method (e.g. the metric subset).
    Columns without a value for any task are dropped unless ``drop_empty`` is False. Columns
    whose key is in ``ci`` show the mean with its seeded bootstrap interval instead of ± s.e.
    (the CSV then has ``ci_low``/``ci_high`` for every row).
    """
    summary = A.summarize(frame, columns)
    if ci:
        summary = A.with_bootstrap_ci(summary, frame)
    present = [c for c in columns if c.key in set(summary[A.COLUMN])] if drop_empty else list(columns)
    seeds = frame.groupby([C.TASK, METHOD], sort=True)[C.SEED].count()
    indexed = summary.set_index([C.TASK, METHOD, A.COLUMN])
    rows = []
    for (task, method), n_seeds in seeds.items():
        row = [Cell(str(task)), Cell(str(method))] + [Cell(value) for _, value in lead] + [Cell(str(int(n_seeds)))]
        row += [_stat_cell(indexed.loc[(task, method, c.key)], int(n_seeds), c.key in ci)
                if (task, method, c.key) in indexed.index else Cell(MISSING) for c in present]
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
    """Per method over every task: normalized score, AUC and average rank (best in bold, no test)."""
    data = A.overall(frame)
    keys = [(A.NORMALIZED, "normalized", True), (A.AUC, "AUC best-so-far", True), (A.RANK, "avg. rank", False)]
    rows = []
    for _, r in data.iterrows():
        row = [Cell(str(r[METHOD])), Cell(str(int(r["tasks"])))]
        for key, _, higher in keys:
            means = data[f"{key}_{A.MEAN}"]
            best = means.max() if higher else means.min()
            mean, se, n = float(r[f"{key}_{A.MEAN}"]), float(r[f"{key}_{A.SE}"]), int(r[f"{key}_{A.N}"])
            row.append(Cell(fmt_mean_se(mean, se, n, n), bold=not math.isnan(mean) and mean == best))
        rows.append(row)
    return Table("overall", "All tasks: normalized score, area under the curve and average rank per method",
                 ["method", "tasks"] + [title for _, title, _ in keys], rows, data, n_keys=1)


def clique_letters(test: RankTest) -> dict[str, str]:
    """Per method, the letters of the cliques it belongs to (a = the best-ranked clique).

    Methods sharing a letter are not significantly different; a method with a letter of its own
    differs from every other method.
    """
    return {m: "".join(chr(ord("a") + i) for i, c in enumerate(test.cliques) if m in c) for m in test.mean_ranks.index}


def ranks_table(tests: list[RankTest], titles: dict[str, str]) -> Table:
    """Mean ranks over (task, seed) problems and the groups of indistinguishable methods, per measure."""
    rows = []
    for test in tests:
        letters = clique_letters(test)
        best = float(test.mean_ranks.min())
        for method, rank in test.mean_ranks.items():
            rows.append([Cell(titles.get(test.measure, test.measure)), Cell(str(method)), Cell(str(test.blocks)),
                         Cell(f"{rank:.2f}", bold=float(rank) == best), Cell(letters[method]),
                         Cell(fmt_number(test.p_value, 3))])
    return Table("ranks", "Mean ranks over (task, seed) problems, Friedman test and groups of indistinguishable "
                 "methods", ["measure", "method", "problems", "mean rank", "group", "Friedman p"], rows,
                 summary_frame(tests), n_keys=2, note="\n".join(describe(tests, titles)))


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
    return Table("runs", "Every run folder with its status and whether it enters the statistics", ["task", "method", "seed", "optimizer", "status", "queries", "task signature",
                                  "in statistics"], rows, csv, n_keys=8)


def build_tables(sweep: Sweep, frame: pd.DataFrame, wall_budgets: Sequence[float], tests: list[RankTest],
                 measure_titles: dict[str, str]) -> list[Table]:
    """Every table of the report, in report order.

    ``frame``: :func:`bench.analysis.stats.per_run` with the ``within_<b>s`` columns of
    :func:`bench.analysis.walltime.best_within` merged in.
    """
    tables = [stat_table("scores", "Best score (mean ± s.e. over seeds) at fractions of the budget",
                         frame, A.SCORE_COLUMNS),
              stat_table("anytime", "Final best next to the areas under the best-so-far and top-10-mean curves "
                         f"(mean [{round(A.CONFIDENCE * 100)} % bootstrap interval] over seeds)",
                         frame, A.ANYTIME_COLUMNS, ci=[c.key for c in A.ANYTIME_COLUMNS])]
    if wall_budgets:
        tables.append(stat_table("walltime", "Best score reached within fixed wall-clock budgets (mean ± s.e. "
                                 "over seeds; machine-dependent)", frame, W.budget_columns(wall_budgets)))
    quality = quality_table(sweep, frame)
    if quality is not None:
        tables.append(quality)
    tables.append(stat_table("cost", "Seconds per proposal, share of the wall time spent proposing, duplicate and "
                             "fallback proposals per run", frame, A.COST_COLUMNS))
    if tests:
        tables.append(ranks_table(tests, measure_titles))
    tables.append(overall_table(frame))
    tables.append(runs_table(sweep))
    return tables
