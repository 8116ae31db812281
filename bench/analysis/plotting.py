"""What every figure of the report shares: one style per method, reproducible saving, faceted lines.

One :class:`MethodStyles` is built per report from every method of the sweep, so a method has
the same colour, dash pattern and marker in every figure. Colours come from the Okabe–Ito
palette (distinguishable with the common colour-vision deficiencies); dashes and markers also
differ between neighbours, so lines stay apart in greyscale print and where colours repeat
(more than 8 methods). Curves that coincide exactly are named in the legend, since the later one
hides the earlier.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.analysis.aggregate import METHOD

FIGURE_FORMATS = ("png", "pdf")
DPI = 120
#: Okabe & Ito (2008), black last; yellow is kept for the 7th method only (weak on white)
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
DASHES: tuple[tuple[float, ...] | str, ...] = ("", (4, 1.5), (1, 1), (6, 2, 1, 2), (2, 2))
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
FACET = "facet"


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend, with reproducible output settings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "bench", "pdf.fonttype": 42})
    return plt


def save_figure(fig: Any, folder: Path, name: str) -> list[Path]:
    """Save as PNG and PDF without timestamps or software stamps (reproducible bytes)."""
    plt = pyplot()
    paths = []
    for ext in FIGURE_FORMATS:
        path = folder / f"{name}.{ext}"
        metadata = {"Software": None} if ext == "png" else {"CreationDate": None, "ModDate": None, "Producer": None,
                                                            "Creator": None}
        fig.savefig(path, dpi=DPI, bbox_inches="tight", metadata=metadata)
        paths.append(path)
    plt.close(fig)
    return paths


@dataclass(frozen=True)
class MethodStyles:
    """Colour, dash pattern and marker of every method, fixed for the whole report."""

    methods: tuple[str, ...]

    @classmethod
    def for_methods(cls, methods: Iterable[str]) -> MethodStyles:
        """Styles for ``methods`` in sorted order (the same sweep always gets the same styles)."""
        return cls(tuple(sorted({str(m) for m in methods})))

    def _index(self, method: str) -> int:
        return self.methods.index(method) if method in self.methods else len(self.methods)

    def color(self, method: str) -> str:
        """The method's colour (hex)."""
        return OKABE_ITO[self._index(method) % len(OKABE_ITO)]

    def dashes(self, method: str) -> tuple[float, ...] | str:
        """The method's dash pattern for seaborn ("" is solid)."""
        return DASHES[self._index(method) % len(DASHES)]

    def marker(self, method: str) -> str:
        """The method's marker symbol."""
        return MARKERS[self._index(method) % len(MARKERS)]

    def line_kwargs(self, method: str) -> dict[str, Any]:
        """Keyword arguments of ``Axes.plot`` drawing a line in the method's style."""
        dashes = self.dashes(method)
        return {"color": self.color(method), "marker": self.marker(method),
                **({"linestyle": "-"} if dashes == "" else {"dashes": dashes})}

    def seaborn(self, labels: dict[str, str]) -> dict[str, Any]:
        """``palette``/``dashes``/``markers`` and orders for seaborn, keyed by display label."""
        order = [labels[m] for m in sorted(labels)]
        return {"hue_order": order, "style_order": order,
                "palette": {labels[m]: self.color(m) for m in labels},
                "dashes": {labels[m]: self.dashes(m) for m in labels},
                "markers": {labels[m]: self.marker(m) for m in labels}}


def coincident_groups(data: pd.DataFrame, facet: str, columns: Sequence[str]) -> dict[str, list[tuple[str, ...]]]:
    """Per facet, the groups of 2+ methods whose ``columns`` data are identical (identical curves)."""
    out: dict[str, list[tuple[str, ...]]] = {}
    for facet_value, group in data.groupby(facet, sort=True):
        keys: dict[tuple, list[str]] = {}
        for method, mine in group.groupby(METHOD, sort=True):
            rows = mine[list(columns)].sort_values(list(columns), kind="stable")
            keys.setdefault(tuple(map(tuple, rows.to_numpy().tolist())), []).append(str(method))
        groups = [tuple(methods) for methods in keys.values() if len(methods) > 1]
        if groups:
            out[str(facet_value)] = groups
    return out


def display_labels(data: pd.DataFrame, facet: str, columns: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(legend label per method, note per facet) that name the curves which coincide.

    A method identical to an earlier-sorted method in every facet it appears in gets ``(same curve
    as <that method>)`` in the legend; other coincidences get a note written inside the facet.
    """
    groups = coincident_groups(data, facet, columns)
    facets_of = data.groupby(METHOD)[facet].agg(lambda v: sorted(set(map(str, v)))).to_dict()
    labels = {str(m): str(m) for m in data[METHOD].unique()}
    for method in sorted(labels):
        partners = [{p for g in groups.get(f, []) if method in g for p in g} - {method} for f in facets_of[method]]
        common = set.intersection(*partners) if partners else set()
        earlier = sorted(p for p in common if p < method)
        if earlier:
            labels[method] = f"{method} (same curve as {earlier[0]})"
    notes: dict[str, str] = {}
    for facet_value, facet_groups in groups.items():
        partial = [g for g in facet_groups if sum(labels[m] != m for m in g) < len(g) - 1]
        if partial:
            notes[facet_value] = "identical curves: " + "; ".join(" = ".join(g) for g in partial)
    return labels, notes


def _stagger_markers(ax: Any, styles: MethodStyles, step: float) -> None:
    """Shift each method's markers along its line so that coinciding lines still show every marker."""
    from matplotlib.colors import to_hex

    index = {(styles.color(m), styles.marker(m)): i for i, m in enumerate(styles.methods)}
    for line in ax.get_lines():
        key = (to_hex(line.get_color()), line.get_marker())
        if key in index:
            line.set_markevery((step * (index[key] % 5) / 5, step))


def facet_lines(data: pd.DataFrame, x: str, y: str, styles: MethodStyles, *, facet: str, xlabel: str, ylabel: str,
                title: str, compare: Sequence[str] | None = None, col_wrap: int = 3, integer_x: bool = False,
                **line_kws: Any) -> Any:
    """One seaborn line per method (the method's colour, dashes and markers), one facet per ``facet`` value.

    ``compare``: the columns whose equality means two methods draw the same curve (default x and
    y); such methods are named in the legend or in a note inside the facet. ``integer_x``: whole
    ticks only (query counts). ``line_kws`` go to ``seaborn.relplot`` (e.g. ``errorbar``,
    ``units``, ``drawstyle``). Returns the FacetGrid.
    """
    import seaborn as sns
    from matplotlib.ticker import MaxNLocator

    pyplot()
    labels, notes = display_labels(data, facet, list(compare or [x, y]))
    plotted = data.assign(**{METHOD: data[METHOD].map(lambda m: labels[str(m)])})
    n_facets = plotted[facet].nunique()
    line_kws.setdefault("markersize", 5)
    grid = sns.relplot(data=plotted, x=x, y=y, hue=METHOD, style=METHOD, col=facet,
                       col_wrap=min(col_wrap, n_facets) if n_facets > 1 else None, kind="line",
                       facet_kws={"sharey": False, "sharex": False}, height=3.2, aspect=1.35,
                       **styles.seaborn(labels), **line_kws)
    grid.set_axis_labels(xlabel, ylabel)
    grid.set_titles("{col_name}")
    for facet_value, ax in grid.axes_dict.items():
        ax.grid(True, alpha=0.3)
        _stagger_markers(ax, styles, 0.1)
        if integer_x:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if str(facet_value) in notes:
            ax.text(0.02, 0.98, notes[str(facet_value)], transform=ax.transAxes, va="top", fontsize=7,
                    bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.7"})
    grid.figure.suptitle(title, y=1.02)
    return grid
