"""`bench report` on synthetic run folders with known values, written with bench.testing.runs.

Sweep "toy" (budget 4 queries after 2 initial points, seeds 0..5):
- ``good``:   queries 2, 3, 4, 10 (+ seed) -> best@25/50/100 % = 2/3/10 + seed; 0.5 s per proposal;
  one fallback in seed 0 only; FID(top) 30 + seed.
- ``close``:  queries 1, 1, 1, 10 + seed - 0.1 (even seeds) or + 0.05 (odd seeds); 2 s per
  proposal; one duplicate per run; FID(top) 20 + seed.
- ``random``: queries 1 + 0.1 seed each (optimizer ``random``); 0.001 s per proposal; FID(top) 50 + seed.
Held-out score = 10 x score. Plus a *running* ``good`` seed 6 (huge scores) and a *failed*
``close`` seed 6: both must be flagged, never averaged.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.analysis import images
from bench.analysis import report as R
from bench.testing import runs as S
from bench.analysis import tables
from bench.analysis.aggregate import load_sweep
from bench.cli.main import main
from bench.core import constants as C
from bench.store.files import write_frame
from bench.store.run_folder import RunFolder

SEEDS = range(6)
INIT_SCORES = [0.5, 1.0]


def query_scores(method: str, seed: int) -> list[float]:
    if method == "good":
        return [2 + seed, 3 + seed, 4 + seed, 10 + seed]
    if method == "close":
        return [1, 1, 1, 10 + seed + (-0.1 if seed % 2 == 0 else 0.05)]
    return [1 + 0.1 * seed] * 4


PROPOSE_S = {"good": 0.5, "close": 2.0, "random": 0.001}
FID_TOP = {"good": 30, "close": 20, "random": 50}


def fid_rows(method: str, seed: int) -> list[dict]:
    """FID/KID of the top and last queried images at queries 2 and 4 (only 4, the final one, may be reported)."""
    metrics = []
    for at_query, offset in ((2, 999.0), (4, 0.0)):
        for subset in ("top", "last"):
            fid = FID_TOP[method] + seed + offset + (0 if subset == "top" else 5)
            metrics += [{C.METRIC_AT_QUERY: at_query, C.METRIC_SUBSET: subset, C.METRIC_NAME: "fid",
                         C.METRIC_VALUE: float(fid), C.METRIC_STD: math.nan, C.METRIC_N: 2,
                         C.METRIC_REFERENCE: "ref-set", C.METRIC_FEATURES: "task-features"},
                        {C.METRIC_AT_QUERY: at_query, C.METRIC_SUBSET: subset, C.METRIC_NAME: "kid",
                         C.METRIC_VALUE: fid / 1000, C.METRIC_STD: 0.001, C.METRIC_N: 2,
                         C.METRIC_REFERENCE: "ref-set", C.METRIC_FEATURES: "task-features"}]
    return metrics


def write_run(sweep: Path, method: str, seed: int, *, status: str = C.STATUS_COMPLETED,
              scores: list[float] | None = None, error: str | None = None) -> RunFolder:
    return S.write_run(sweep, S.SyntheticRun(
        "toy", method, seed, INIT_SCORES, query_scores(method, seed) if scores is None else scores, status=status,
        budget=4, propose_s=PROPOSE_S[method], duplicates={2} if method == "close" else (),
        fallbacks={3} if method == "good" and seed == 0 else (), metrics=fid_rows(method, seed), error=error))


def make_sweep(root: Path) -> Path:
    sweep = root / "toy-sweep"
    for method in ("close", "good", "random"):
        for seed in SEEDS:
            write_run(sweep, method, seed)
    write_run(sweep, "good", 6, status=C.STATUS_RUNNING, scores=[100.0, 200.0])
    write_run(sweep, "close", 6, status=C.STATUS_FAILED, scores=[50.0], error="RuntimeError: solver exploded")
    return sweep


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic sweep with its tables and report.md (no figures: see the slow test) generated once."""
    sweep = make_sweep(tmp_path_factory.mktemp("report"))
    R.write_report(sweep, figures=False)
    return sweep


def stats(sweep: Path, table: str) -> pd.DataFrame:
    return pd.read_csv(sweep / "report" / f"{table}.csv").set_index(["method", "column"])


def md_row(sweep: Path, table: str, method: str) -> list[str]:
    for line in (sweep / "report" / f"{table}.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) > 1 and cells[1] == method:
            return cells
    raise AssertionError(f"no row for {method} in {table}.md")


SE_OF_SEEDS = float(np.std(np.arange(6), ddof=1) / math.sqrt(6))  # se of "+ seed" over seeds 0..5


def test_best_at_budget_fractions_are_the_known_values(reported: Path) -> None:
    s = stats(reported, "scores")
    for column, mean in (("best_25", 4.5), ("best_50", 5.5), ("best_100", 12.5)):
        assert s.loc[("good", column), "mean"] == pytest.approx(mean)
        assert s.loc[("good", column), "se"] == pytest.approx(SE_OF_SEEDS)
        assert s.loc[("good", column), "n"] == 6  # the running seed 6 is not averaged in
    assert s.loc[("close", "best_25"), "mean"] == pytest.approx(1.0)  # init best 1.0 beats query 1
    assert s.loc[("close", "best_100"), "mean"] == pytest.approx(12.475)
    assert s.loc[("random", "best_100"), "mean"] == pytest.approx(1.25)
    assert s.loc[("good", "heldout"), "mean"] == pytest.approx(125.0)
    # rendering: mean and se with matching decimals, best in bold, seeds column
    row = md_row(reported, "scores", "good")
    assert row[2] == "6" and row[5] == f"**12.50 ± {SE_OF_SEEDS:.2f}**"


def test_significance_marks_and_bold(reported: Path) -> None:
    s = stats(reported, "scores")
    assert bool(s.loc[("good", "best_100"), "is_best"])
    # close differs from good by -0.1/+0.05 alternating: not significantly worse
    assert bool(s.loc[("close", "best_100"), "not_worse"])
    assert s.loc[("close", "best_100"), "p_holm"] > 0.05
    # random is worse on every one of 6 seeds: exact one-sided p = 1/64, Holm x2 over 2 comparisons
    assert s.loc[("random", "best_100"), "p_holm"] == pytest.approx(2 / 64)
    assert not bool(s.loc[("random", "best_100"), "not_worse"])
    assert md_row(reported, "scores", "close")[5].endswith("†")
    assert not md_row(reported, "scores", "random")[5].endswith("†")
    tex = (reported / "report" / "scores.tex").read_text()
    assert r"\textbf{12.50 $\pm$ 0.76}" in tex and r"$^{\dagger}$" in tex


def test_normalized_score_and_rank(reported: Path) -> None:
    s = stats(reported, "scores")
    zero, one = 1.25, 15.05  # random's median final best; best of any run (close, seed 5)
    good = np.mean([(10 + seed - zero) / (one - zero) for seed in SEEDS])
    assert s.loc[("good", "normalized"), "mean"] == pytest.approx(good)
    assert s.loc[("random", "normalized"), "mean"] == pytest.approx(0.0)
    # good wins even seeds, close odd ones: both average rank 1.5 (a tie: both bold)
    assert s.loc[("good", "rank"), "mean"] == pytest.approx(1.5)
    assert s.loc[("close", "rank"), "mean"] == pytest.approx(1.5)
    assert s.loc[("random", "rank"), "mean"] == pytest.approx(3.0)
    assert bool(s.loc[("good", "rank"), "is_best"]) and bool(s.loc[("close", "rank"), "is_best"])
    overall = pd.read_csv(reported / "report" / "overall.csv").set_index("method")
    assert overall.loc["random", "rank_mean"] == pytest.approx(3.0)


def test_cost_and_quality_tables(reported: Path) -> None:
    cost = stats(reported, "cost")
    assert cost.loc[("good", "s_per_proposal"), "mean"] == pytest.approx(0.5)
    assert cost.loc[("close", "s_per_proposal"), "mean"] == pytest.approx(2.0)
    assert bool(cost.loc[("random", "s_per_proposal"), "is_best"])
    assert cost.loc[("close", "duplicates"), "mean"] == pytest.approx(1.0)
    assert cost.loc[("good", "fallbacks"), "mean"] == pytest.approx(1 / 6)
    quality = pd.read_csv(reported / "report" / "quality.csv").set_index(["method", "subset", "column"])
    assert (quality["reference"] == "ref-set").all()
    assert quality.loc[("close", "top", "fid"), "mean"] == pytest.approx(22.5)  # final checkpoint only
    assert quality.loc[("good", "last", "fid"), "mean"] == pytest.approx(37.5)
    assert quality.loc[("random", "top", "kid"), "mean"] == pytest.approx(0.0525)
    row = md_row(reported, "quality", "close")  # the first block: subset "top"
    assert row[2:5] == ["top", "ref-set", "6"] and row[5] == f"**22.50 ± {SE_OF_SEEDS:.2f}**"
    assert row[-2:] == ["2", "task-features"]


def test_unreportable_metrics_are_dropped(tmp_path: Path) -> None:
    sweep = tmp_path / "unverified"
    folder = write_run(sweep, "random", 0)
    metrics = pd.read_parquet(folder.path / C.METRICS_FILE)
    metrics["reportable"] = False  # e.g. FID from unverified Inception weights
    write_frame(folder.path / C.METRICS_FILE, metrics)
    R.write_report(sweep, figures=False)
    assert not (sweep / "report" / "quality.csv").exists()


def test_partial_and_failed_runs_are_flagged_not_averaged(reported: Path) -> None:
    runs = pd.read_csv(reported / "report" / "runs.csv")
    flagged = runs[~runs["complete"]].set_index("method")
    assert sorted(flagged.index) == ["close", "good"]
    assert flagged.loc["good", "status"] == "running" and flagged.loc["good", "queries_done"] == 2
    assert flagged.loc["close", "status"] == "failed"
    text = (reported / "report" / "report.md").read_text()
    assert "2 run(s) are not in the statistics" in text
    assert "`toy` / `good` / seed 6: running (2/4 queries)" in text
    assert "solver exploded" in text
    sweep = load_sweep(reported)
    assert (sweep.records[sweep.records["method"] == "good"][C.SEED] < 6).all()


FIGURES = ("best_so_far", "best_vs_time", "ecdf_queries", "ecdf_seconds", "profiles", "critical_difference",
           "realism_pareto", "seconds_per_proposal")


@pytest.mark.slow
def test_cli_writes_figures_and_embeds_them(reported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "full"
    assert main(["report", str(reported), "--top-k", "2", "--out", str(folder)]) == 0
    assert f"report: {folder / 'report.md'}" in capsys.readouterr().out
    text = (folder / "report.md").read_text()
    for name in FIGURES:
        for ext in ("png", "pdf"):
            assert (folder / f"{name}.{ext}").stat().st_size > 1000, name
        assert f"]({name}.png)" in text
    assert "No image grid for `toy`" in text  # "toy" is not a registered task: skipped, not crashed
    assert "sig-toy" in text and "numpy 1.0" in text and "0, 1, 2, 3, 4, 5" in text
    assert (folder / "report.html").stat().st_size > 10_000


def test_report_writes_only_into_its_output_folder(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    for method in ("good", "random"):
        write_run(sweep, method, 0)
    before = sorted(p for p in tmp_path.rglob("*"))
    out = tmp_path / "elsewhere"
    R.write_report(sweep, out=out, figures=False)
    after = sorted(p for p in tmp_path.rglob("*") if out not in p.parents and p != out)
    assert after == before


def test_tables_and_data_are_byte_identical_on_regeneration(reported: Path, tmp_path: Path) -> None:
    R.write_report(reported, out=tmp_path, figures=False)
    names = sorted(p.name for p in (reported / "report").iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    for table in ("scores", "anytime", "walltime", "quality", "cost", "ranks", "overall", "runs"):
        assert f"{table}.csv" in names and f"{table}.md" in names and f"{table}.tex" in names, table
    for name in names:  # tables, every CSV, report.md and report.html
        assert (tmp_path / name).read_bytes() == (reported / "report" / name).read_bytes(), name


def store_images(folder: RunFolder, queries: np.ndarray, initial: np.ndarray) -> None:
    """What the runner stores for an image task: raw query frames, run.json's count, initial images."""
    (folder.path / C.QUERY_IMAGES_FILE).write_bytes(queries.tobytes())
    folder.write_info({**folder.read_info(), "images": {"shape": list(queries.shape[1:]), "queries": len(queries)}})
    folder.write_initial_images(initial)


def test_image_grid_top_k_per_method(tmp_path: Path) -> None:
    sweep = tmp_path / "img"
    for method in ("good", "random"):
        for seed in (0, 1):
            folder = write_run(sweep, method, seed)
            # query q of a run is stored as grey level 10 * seed + q: each image says where it came from
            queries = np.stack([np.full((1, 4, 4), 10 * seed + q, dtype=np.uint8) for q in range(1, 5)])
            store_images(folder, queries, np.full((3, 1, 4, 4), 128, dtype=np.uint8))
    sweep_data = load_sweep(sweep)
    assert images.top_images(sweep_data, "other-task", 2)[0] is None
    train, per_method, note = images.top_images(sweep_data, "toy", 2)
    assert train.shape == (3, 1, 4, 4) and note == "" and np.allclose(train, 128 / 255)
    assert [(score, seed) for _, score, seed in per_method["good"]] == [(11.0, 1), (10.0, 0)]
    assert np.allclose(per_method["good"][0][0], 14 / 255)  # seed 1's best is its query 4
    assert np.allclose(per_method["good"][1][0], 4 / 255)  # seed 0's query 4
    paths = images.plot_image_grid(train, per_method, 2, "toy", tmp_path)
    assert all(p.stat().st_size > 1000 for p in paths)


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path), "--top-k", "0"]) == 2
    assert "--top-k" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "no runs under" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_float_noise_is_not_a_standard_error() -> None:
    # six equal values 4.4 have a mean of 4.4000000000000004 and a standard error of ~1e-16
    assert tables.fmt_mean_se(4.4000000000000004, 1e-16, 6, 6) == "4.400 ± 0.000"
    assert tables.fmt_mean_ci(0.41, 0.30, 0.52, 5, 6) == "0.41 [0.30, 0.52] (n=5)"
