"""``bench perf propose``: one JSON line per data size, then a summary (the long runs are benchmarks)."""

from __future__ import annotations

import json

import pytest

from bench.cli.perf_propose import perf_main


def test_prints_one_timing_per_size_and_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert perf_main("propose", ["--optimizer", "evolution", "--task", "closed-form", "--sizes", "10,30",
                                 "--batch", "2", "--opt", "population=5"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["n_observations"] for row in lines[:2]] == [10, 30]
    assert all(row["seconds"] >= 0 and row["cpu_seconds"] >= 0 and row["batch"] == 2 for row in lines[:2])
    assert set(lines[2]["seconds_per_proposal"]) == {"10", "30"} and lines[2]["overrides"] == {"population": 5}
