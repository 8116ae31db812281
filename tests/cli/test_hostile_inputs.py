"""Every bad input gets one line that names it, exit code 2, no traceback, and nothing on disk changes.

Each case is (name, the command's arguments, a fragment the error must contain). ``{out}`` is the
folder of sweep "h" holding one completed run (closed-form/small, random, seed 0, budget 4) and
``{tmp}`` a scratch folder with prepared bad files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bench.cli.main import main

RUN = ["run", "--task", "closed-form/small", "--optimizer", "random", "--n-initial", "4", "-q"]
GOOD_SPEC = ('name = "h"\nseeds = [0]\ntasks = ["closed-form/small"]\n[run]\nbudget = 4\nn_initial = 4\n'
             '[[method]]\noptimizer = "random"\n')

CASES: list[tuple[str, list[str], str]] = [
    # bench run: names, numbers, parameters
    ("unknown task", ["run", "--task", "nope", "--optimizer", "random", "--out", "{tmp}/o"], "unknown task 'nope'"),
    ("unknown optimizer", ["run", "--task", "closed-form", "--optimizer", "nope", "--out", "{tmp}/o"],
     "unknown optimizer 'nope'"),
    ("unknown preset", ["run", "--task", "closed-form", "--optimizer", "random/nope", "--out", "{tmp}/o"],
     "random/nope"),
    ("negative seed", RUN + ["--seed", "-1", "--out", "{tmp}/o"], "--seed"),
    ("seed beyond 64 bits", RUN + ["--seed", "18446744073709551616", "--out", "{tmp}/o"], "--seed"),
    ("seed beyond 32 bits", RUN + ["--seed", "4294967296", "--out", "{tmp}/o"], "--seed"),
    ("word as seed", RUN + ["--seed", "abc", "--out", "{tmp}/o"], "--seed"),
    ("zero budget", RUN + ["--budget", "0", "--out", "{tmp}/o"], "--budget"),
    ("negative budget", RUN + ["--budget", "-5", "--out", "{tmp}/o"], "--budget"),
    ("zero batch size", RUN + ["--batch-size", "0", "--out", "{tmp}/o"], "--batch-size"),
    ("batch above budget", RUN + ["--batch-size", "10", "--budget", "5", "--out", "{tmp}/o"], "batch_size"),
    ("zero initial design", RUN + ["--n-initial", "0", "--out", "{tmp}/o"], "--n-initial"),
    ("word for a number parameter", ["run", "--task", "closed-form/small", "--optimizer", "evolution", "--opt",
                                     "crossover_rate=banana", "--out", "{tmp}/o"], "crossover_rate"),
    ("unknown optimizer parameter", RUN + ["--opt", "nokey=1", "--out", "{tmp}/o"], "nokey"),
    ("parameter without value", RUN + ["--opt", "novalue", "--out", "{tmp}/o"], "novalue"),
    ("parameter without key", RUN + ["--opt", "=3", "--out", "{tmp}/o"], "=3"),
    ("bad optimizer choice", ["run", "--task", "closed-form/small", "--optimizer", "random", "--opt",
                              "distribution=gaussian", "--out", "{tmp}/o"], "distribution"),
    ("word for a task number", RUN + ["--task-opt", "height=banana", "--out", "{tmp}/o"], "height"),
    ("unknown task parameter", RUN + ["--task-opt", "nope=1", "--out", "{tmp}/o"], "nope"),
    ("word for a task switch", ["run", "--task", "smile-synthetic", "--optimizer", "random", "--task-opt",
                                "inception_download=maybe", "--out", "{tmp}/o"], "inception_download"),
    ("negative rank weight", RUN + ["--retrain-k", "-1", "--out", "{tmp}/o"], "retrain.k"),
    ("zero retrain interval", RUN + ["--retrain-every", "0", "--out", "{tmp}/o"], "retrain.every"),
    ("retraining a task without a model", RUN + ["--retrain-every", "2", "--out", "{tmp}/o"],
     "no generative model"),
    ("negative retrain epochs", RUN + ["--retrain-epochs", "-1", "--out", "{tmp}/o"], "retrain.epochs"),
    ("word as retrain epochs", RUN + ["--retrain-epochs", "lots", "--out", "{tmp}/o"], "--retrain-epochs"),
    ("negative metrics interval", RUN + ["--metrics-every", "-1", "--out", "{tmp}/o"], "metrics.every"),
    ("zero metric images", RUN + ["--metrics-n", "0", "--out", "{tmp}/o"], "--metrics-n"),
    ("negative proposal time limit", RUN + ["--proposal-time-limit", "-1", "--out", "{tmp}/o"],
     "limits.time_limit_s"),
    ("fallback share above one", RUN + ["--max-fallback-share", "2", "--out", "{tmp}/o"], "max_fallback_share"),
    ("unknown timeout action", RUN + ["--on-proposal-timeout", "retry", "--out", "{tmp}/o"], "--on-proposal-timeout"),
    ("empty label", RUN + ["--label", "", "--out", "{tmp}/o"], "label"),
    ("missing inception weights", RUN + ["--inception-weights", "{tmp}/missing.pth", "--out", "{tmp}/o"],
     "--inception-weights"),
    ("metric features on a task without", RUN + ["--metric-features", "task", "--out", "{tmp}/o"],
     "metric_features"),
    ("out is a file", RUN + ["--out", "{tmp}/a-file"], "a-file"),
    ("out cannot be created", RUN + ["--out", "/proc/bench-cannot-write"], "/proc/bench-cannot-write"),
    # bench run into a folder holding another run
    ("other budget", RUN + ["--budget", "6", "--out", "{out}"], "--extend"),
    ("smaller budget", RUN + ["--budget", "2", "--out", "{out}"], "budget 4"),
    ("other optimizer parameters", RUN + ["--budget", "4", "--opt", "smoothing=0.5", "--out", "{out}"],
     "optimizer_params"),
    ("other task parameters", RUN + ["--budget", "4", "--task-opt", "interaction=0.7", "--out", "{out}"],
     "task_params"),
    ("other initial design", ["run", "--task", "closed-form/small", "--optimizer", "random", "--n-initial", "5",
                              "--budget", "4", "--out", "{out}", "-q"], "n_initial"),
    # bench sweep: the spec
    ("missing spec", ["sweep", "{tmp}/missing.toml", "--out", "{tmp}/s"], "missing.toml"),
    ("spec is a folder", ["sweep", "{tmp}", "--out", "{tmp}/s"], "is a folder"),
    ("spec not UTF-8", ["sweep", "{tmp}/latin1.toml", "--out", "{tmp}/s"], "not UTF-8"),
    ("spec not TOML", ["sweep", "{tmp}/broken.toml", "--out", "{tmp}/s"], "not valid TOML"),
    ("spec unknown key", ["sweep", "{tmp}/unknown-key.toml", "--out", "{tmp}/s"], "colour"),
    ("spec name with ..", ["sweep", "{tmp}/dotdot.toml", "--out", "{tmp}/s"], "'..'"),
    ("spec name with a slash", ["sweep", "{tmp}/slash.toml", "--out", "{tmp}/s"], "'a/b'"),
    ("seeds not a list", ["sweep", "{tmp}/seeds-int.toml", "--out", "{tmp}/s"], "seeds"),
    ("negative seed in spec", ["sweep", "{tmp}/seeds-negative.toml", "--out", "{tmp}/s"], "-3"),
    ("huge seed in spec", ["sweep", "{tmp}/seeds-huge.toml", "--out", "{tmp}/s"], "4294967296"),
    ("repeated seeds", ["sweep", "{tmp}/seeds-repeat.toml", "--out", "{tmp}/s"], "repeat"),
    ("unknown task in spec", ["sweep", "{tmp}/task-unknown.toml", "--out", "{tmp}/s"], "nope-task"),
    ("unknown optimizer in spec", ["sweep", "{tmp}/optimizer-unknown.toml", "--out", "{tmp}/s"], "nope-opt"),
    ("bad parameter kind in spec", ["sweep", "{tmp}/param-kind.toml", "--out", "{tmp}/s"], "crossover_rate"),
    ("unknown run key in spec", ["sweep", "{tmp}/run-key.toml", "--out", "{tmp}/s"], "budgett"),
    ("zero budget in spec", ["sweep", "{tmp}/budget-zero.toml", "--out", "{tmp}/s"], "budget"),
    ("bad timeout action in spec", ["sweep", "{tmp}/limits.toml", "--out", "{tmp}/s"], "on_timeout"),
    ("unknown profile", ["sweep", "{tmp}/good.toml", "--profile", "nope", "--out", "{tmp}/s"], "nope"),
    ("profile not TOML", ["sweep", "{tmp}/good.toml", "--profile", "{tmp}/broken.toml", "--out", "{tmp}/s"],
     "broken.toml"),
    ("profile unknown key", ["sweep", "{tmp}/good.toml", "--profile", "{tmp}/profile-key.toml", "--out", "{tmp}/s"],
     "gpus"),
    ("unknown executor", ["sweep", "{tmp}/good.toml", "--executor", "cloud", "--out", "{tmp}/s"], "--executor"),
    ("zero runs per job", ["sweep", "{tmp}/good.toml", "--runs-per-job", "0", "--out", "{tmp}/s"], "--runs-per-job"),
    ("sweep out is a file", ["sweep", "{tmp}/good.toml", "--out", "{tmp}/a-file"], "a-file"),
    ("garbage sweep.json", ["sweep", "{tmp}/good.toml", "--executor", "debug", "--out", "{tmp}/garbage-sweep"],
     "sweep.json"),
    ("sweep.json that is a list", ["sweep", "{tmp}/good.toml", "--executor", "debug", "--out", "{tmp}/list-sweep"],
     "sweep.json"),
    ("another sweep's folder", ["sweep", "{tmp}/other-name.toml", "--executor", "debug", "--out", "{out}"],
     "choose another --out"),
    ("raised budget without --extend", ["sweep", "{tmp}/budget-raised.toml", "--executor", "debug", "--out", "{out}"],
     "--extend"),
    # bench status, report, prepare, perf
    ("status of a missing folder", ["status", "{tmp}/missing"], "does not exist"),
    ("status without sweep.json", ["status", "{tmp}/empty"], "sweep.json"),
    ("status of a garbage sweep.json", ["status", "{tmp}/garbage-sweep"], "sweep.json"),
    ("report top-k zero", ["report", "{out}", "--top-k", "0"], "--top-k"),
    ("report of a missing folder", ["report", "{tmp}/missing"], "does not exist"),
    ("report without runs", ["report", "{tmp}/empty"], "no runs under"),
    ("report out is a file", ["report", "{out}", "--out", "{tmp}/a-file"], "a-file"),
    ("prepare a task without models", ["prepare", "--task", "closed-form"], "no models to prepare"),
    ("prepare an unknown task", ["prepare", "--task", "nope"], "unknown task 'nope'"),
    ("unknown benchmark", ["perf", "nope"], "nope"),
]


def _write_bad_files(tmp: Path) -> None:
    specs = {
        "good": GOOD_SPEC,
        "broken": 'name = "h"\nseeds = [0\n',
        "unknown-key": GOOD_SPEC + 'colour = "blue"\n',
        "dotdot": GOOD_SPEC.replace('name = "h"', 'name = ".."'),
        "slash": GOOD_SPEC.replace('name = "h"', 'name = "a/b"'),
        "seeds-int": GOOD_SPEC.replace("seeds = [0]", "seeds = 3"),
        "seeds-negative": GOOD_SPEC.replace("seeds = [0]", "seeds = [-3]"),
        "seeds-huge": GOOD_SPEC.replace("seeds = [0]", "seeds = [4294967296]"),
        "seeds-repeat": GOOD_SPEC.replace("seeds = [0]", "seeds = [1, 1]"),
        "task-unknown": GOOD_SPEC.replace('"closed-form/small"', '"nope-task"'),
        "optimizer-unknown": GOOD_SPEC.replace('optimizer = "random"', 'optimizer = "nope-opt"'),
        "param-kind": GOOD_SPEC.replace('optimizer = "random"', 'optimizer = "evolution"\n'
                                        'optimizer_params = {crossover_rate = "x"}'),
        "run-key": GOOD_SPEC.replace("budget = 4", "budgett = 4"),
        "budget-zero": GOOD_SPEC.replace("budget = 4", "budget = 0"),
        "limits": GOOD_SPEC.replace("n_initial = 4", 'n_initial = 4\nlimits = {on_timeout = "retry"}'),
        "other-name": GOOD_SPEC.replace('name = "h"', 'name = "other"'),
        "budget-raised": GOOD_SPEC.replace("budget = 4", "budget = 8"),
        "profile-key": "gpus = 2\n",
    }
    for name, text in specs.items():
        (tmp / f"{name}.toml").write_text(text)
    (tmp / "latin1.toml").write_bytes('name = "h\xe9"\n'.encode("latin-1"))
    (tmp / "a-file").write_text("not a folder\n")
    (tmp / "empty").mkdir()
    (tmp / "garbage-sweep").mkdir()
    (tmp / "garbage-sweep" / "sweep.json").write_text('{"name": "h", "runs": [')
    (tmp / "list-sweep").mkdir()
    (tmp / "list-sweep" / "sweep.json").write_text("[1, 2, 3]\n")


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("hostile")
    _write_bad_files(tmp)
    out = tmp / "out"
    assert main(["sweep", str(tmp / "good.toml"), "--executor", "debug", "--out", str(out)]) == 0
    assert main(RUN + ["--budget", "4", "--out", str(out)]) == 0  # the same run: left alone
    return {"tmp": tmp, "out": out}


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its content hash (lock files, which only name their holder, aside)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


@pytest.mark.parametrize("name, argv, fragment", CASES, ids=[case[0] for case in CASES])
def test_bad_input_is_one_named_line(folders: dict[str, Path], name: str, argv: list[str], fragment: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    args = [a.format(tmp=folders["tmp"], out=folders["out"]) for a in argv]
    before = _snapshot(folders["tmp"])
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert fragment in err, err
    assert "Traceback" not in err
    assert len([line for line in err.strip().splitlines() if "error" in line]) == 1, err
    assert _snapshot(folders["tmp"]) == before


def test_the_table_is_long_enough() -> None:
    assert len(CASES) >= 60
