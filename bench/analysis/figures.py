"""The report's figures, each from a tidy frame computed elsewhere (nothing here computes statistics).

Every plot function takes the report's :class:`~bench.analysis.plotting.MethodStyles`, writes
``<name>.png`` and ``<name>.pdf`` into ``folder`` and returns their paths (empty without data).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.analysis import anytime as T
from bench.analysis import realism as R
from bench.analysis import stats as A
from bench.analysis.aggregate import METHOD
from bench.analysis.critical_difference import POSTHOC, RankTest
from bench.analysis.plotting import MethodStyles, facet_lines, pyplot, save_figure
from bench.core import constants as C

SCORE_LABEL = "best score so far (task score units)"
ECDF_LABEL = "fraction of (run, target) pairs reached"


def plot_best_so_far(curves: pd.DataFrame, styles: MethodStyles, folder: Path) -> list[Path]:
    """Best-so-far vs optimizer queries: mean over seeds with 95 % seeded bootstrap bands, a facet per task."""
    grid = facet_lines(curves, C.QUERY, C.BEST_SO_FAR, styles, facet=C.TASK,
                       xlabel="optimizer queries (0 = initial design)", ylabel=SCORE_LABEL,
                       title="Best score so far vs queries (mean over seeds, 95 % bootstrap band)",
                       compare=[C.SEED, C.QUERY, C.BEST_SO_FAR], integer_x=True,
                       errorbar=("ci", 95), n_boot=A.N_BOOT, seed=A.BOOT_SEED)
    return save_figure(grid.figure, folder, "best_so_far")


def plot_best_vs_time(curves: pd.DataFrame, styles: MethodStyles, folder: Path) -> list[Path]:
    """Best-so-far vs wall-clock seconds since the run started: one step line per run (log x)."""
    data = curves[curves[C.ELAPSED_S] > 0]
    if not len(data):
        return []
    grid = facet_lines(data, C.ELAPSED_S, C.BEST_SO_FAR, styles, facet=C.TASK,
                       xlabel="wall time since run start [s] (log scale)", ylabel=SCORE_LABEL,
                       title="Best score so far vs wall time (one line per run)",
                       compare=[C.SEED, C.ELAPSED_S, C.BEST_SO_FAR], units=C.SEED, estimator=None,
                       drawstyle="steps-post", alpha=0.8)
    grid.set(xscale="log")
    return save_figure(grid.figure, folder, "best_vs_time")


def plot_ecdf(ecdf: pd.DataFrame, x: str, styles: MethodStyles, folder: Path, name: str, n_targets: int) -> list[Path]:
    """Runtime ECDF: fraction of (run, target) pairs reached vs ``x`` (queries or seconds), a facet per
    task plus the pool of all tasks."""
    if not len(ecdf):
        return []
    seconds = x == C.ELAPSED_S
    data = ecdf[ecdf[x] > 0] if seconds else ecdf
    unit = "wall time since run start [s] (log scale)" if seconds else "optimizer queries (0 = initial design)"
    grid = facet_lines(data, x, T.FRACTION, styles, facet=C.TASK, xlabel=unit, ylabel=ECDF_LABEL,
                       title=f"Runtime ECDF over {n_targets} targets from random search's median (0) to the best "
                             "known score (1)", integer_x=not seconds, estimator=None, drawstyle="steps-post")
    grid.set(ylim=(-0.02, 1.02))
    if seconds:
        grid.set(xscale="log")
    return save_figure(grid.figure, folder, name)


def plot_profiles(performance: pd.DataFrame, data: pd.DataFrame, styles: MethodStyles, folder: Path,
                  tau: float) -> list[Path]:
    """Performance profile (log2 ratio axis) and data profile side by side."""
    if not len(performance):
        return []
    perf_title = "performance profile (ratio to the fastest method)"
    data_title = "data profile (problems solved within a budget)"
    long = pd.concat([performance.rename(columns={"alpha": "x"}).assign(**{"profile": perf_title}),
                      data.rename(columns={"queries": "x"}).assign(**{"profile": data_title})], ignore_index=True)
    grid = facet_lines(long, "x", T.FRACTION, styles, facet="profile", xlabel="", ylabel="fraction of (task, seed) problems solved",
                       title=f"Profiles over (task, seed) problems, tolerance τ = {tau:g}: solved when best ≥ "
                             "f_best − τ·(f_best − f_initial)", estimator=None, drawstyle="steps-post")
    grid.set(ylim=(-0.02, 1.02))
    perf_ax, data_ax = grid.axes_dict[perf_title], grid.axes_dict[data_title]
    perf_ax.set_xscale("log", base=2)
    perf_ax.set_xlabel("performance ratio α: queries needed / fewest of any method (log₂)")
    data_ax.set_xlabel("optimizer queries κ (0 = initial design)")
    from matplotlib.ticker import MaxNLocator

    data_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return save_figure(grid.figure, folder, "profiles")


def plot_critical_difference(tests: list[RankTest], titles: dict[str, str], styles: MethodStyles,
                             folder: Path) -> list[Path]:
    """Demšar-style diagrams (scikit-posthocs), one per measure: mean ranks, bars join indistinguishable methods."""
    if not tests:
        return []
    import scikit_posthocs as sp

    plt = pyplot()
    n_methods = max(len(t.mean_ranks) for t in tests)
    fig, axes = plt.subplots(len(tests), 1, figsize=(8, (1.2 + 0.32 * n_methods) * len(tests)), squeeze=False)
    for ax, test in zip(axes[:, 0], tests):
        artists = sp.critical_difference_diagram(
            test.mean_ranks, test.significance(), alpha=test.alpha, ax=ax,
            color_palette={m: styles.color(m) for m in test.mean_ranks.index},
            label_fmt_left="{label} ({rank:.2f})", label_fmt_right="({rank:.2f}) {label}", label_props={"fontsize": 8})
        for bar in (line for lines in artists["crossbars"] for line in lines):
            bar.set_xdata(sorted(bar.get_xdata()))  # drawn in set order otherwise: pixels vary between processes
        ax.set_xlim(0.9, len(test.mean_ranks) + 0.1)  # Demšar: the axis spans every possible mean rank
        verdict = ("bars join methods no test separates" if test.posthoc_applied else
                   f"Friedman does not reject at α = {test.alpha:g}: no pair is tested")
        ax.set_title(f"{titles.get(test.measure, test.measure)}: mean rank over {test.blocks} (task, seed) problems "
                     f"(1 = best)\nFriedman p = {test.p_value:.3g}; {verdict}", fontsize=9, pad=22)
    fig.text(0.5, 0.0, f"Post-hoc: {POSTHOC}, α = {tests[0].alpha:g}.", ha="center", fontsize=7)
    fig.tight_layout()
    return save_figure(fig, folder, "critical_difference")


def _draw_fronts(ax: object, points: pd.DataFrame, styles: MethodStyles) -> None:
    """Each method's own non-dominated front as a line; the overall front circled in black."""
    for method, mine in points[points[R.ON_METHOD_FRONT]].groupby(METHOD, sort=True):
        front = mine.sort_values(C.SCORE)
        kwargs = styles.line_kwargs(str(method))
        kwargs.pop("marker")
        ax.plot(front[R.REALISM], front[C.SCORE], linewidth=1, alpha=0.8, **kwargs)
    overall = points[points[R.ON_FRONT]]
    ax.scatter(overall[R.REALISM], overall[C.SCORE], s=110, facecolors="none", edgecolors="black", linewidths=1.2,
               zorder=5, label="non-dominated (all methods)")


def plot_realism(points: pd.DataFrame, styles: MethodStyles, folder: Path) -> list[Path]:
    """Score vs realism per method, one facet per (task, realism measure), Pareto fronts marked."""
    if not len(points):
        return []
    import seaborn as sns

    pyplot()
    data = points.assign(**{"facet": points[C.TASK].astype(str) + ": " + points[R.PANEL].astype(str)})
    labels = {str(m): str(m) for m in data[METHOD].unique()}
    n_facets = data["facet"].nunique()
    grid = sns.relplot(data=data, x=R.REALISM, y=C.SCORE, hue=METHOD, style=METHOD, col="facet",
                       col_wrap=min(2, n_facets) if n_facets > 1 else None, kind="scatter", s=28, alpha=0.6,
                       facet_kws={"sharey": False, "sharex": False}, height=3.4, aspect=1.3,
                       **{k: v for k, v in styles.seaborn(labels).items() if k != "dashes"})
    for facet_value, ax in grid.axes_dict.items():
        mine = data[data["facet"] == facet_value]
        _draw_fronts(ax, mine, styles)
        lower = bool(mine[R.LOWER_IS_BETTER].iloc[0])
        ax.set_xlabel(f"{str(mine[R.PANEL].iloc[0])} ({'lower' if lower else 'higher'} = more realistic)")
        if lower:
            ax.invert_xaxis()  # more realistic to the right in every panel
        ax.grid(True, alpha=0.3)
    grid.set_titles("{col_name}")
    grid.set_ylabels("score (FID/KID: mean of the top-n)")
    grid.figure.suptitle("Realism vs score (up and right is better)\nlines: each method's non-dominated front; "
                         "black circles: the front over all methods", y=1.06, fontsize=10)
    grid.figure.subplots_adjust(hspace=0.45)  # room for each facet's own x label
    return save_figure(grid.figure, folder, "realism_pareto")


def plot_seconds_per_proposal(frame: pd.DataFrame, styles: MethodStyles, folder: Path) -> list[Path]:
    """Mean seconds per proposal of each run (log scale), a facet per task."""
    import seaborn as sns

    pyplot()
    data = frame[frame[A.SECONDS_PER_PROPOSAL] > 0]
    if not len(data):
        return []
    order = sorted(frame[METHOD].unique())
    grid = sns.catplot(data=data, x=METHOD, y=A.SECONDS_PER_PROPOSAL, order=order, hue=METHOD, hue_order=order,
                       palette={m: styles.color(m) for m in order}, col=C.TASK,
                       col_wrap=min(3, data[C.TASK].nunique()), kind="strip", jitter=False, s=40, sharey=False,
                       sharex=False, height=3.2, aspect=1.3)
    grid.set(yscale="log")
    grid.set_axis_labels("", "seconds per proposal [s] (mean over the run, log scale)")
    grid.set_titles("{col_name}")
    for ax in grid.axes.flat:
        ax.grid(True, axis="y", alpha=0.3)
        ax.tick_params(axis="x", rotation=45)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    grid.figure.suptitle("Optimizer time per proposal (one point per run)", y=1.02)
    return save_figure(grid.figure, folder, "seconds_per_proposal")
