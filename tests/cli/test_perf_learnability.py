"""``bench perf learnability``: one line per attribute and a JSON summary (the real probe is a benchmark)."""

from __future__ import annotations

import json

import pytest

from bench.cli.perf_learnability import perf_main


def test_prints_one_line_per_attribute_and_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert perf_main("learnability", ["--attributes", "beard,age", "--n-train", "48", "--epochs", "0.5",
                                      "--n-test", "24"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[:2]] == ["beard", "age"]
    summary = json.loads(lines[-1])
    assert summary["n_train"] == 48 and summary["attributes_version"] >= 2
    assert all(summary[a]["r2"] <= 1.0 and -1.0 <= summary[a]["corr"] <= 1.0 for a in ("beard", "age"))
