"""Same seed, same records, under any load: every method of the demo (and the prior-based methods of
the zoo), on an idle machine and with every core busy, writes identical records (timing columns aside).

Eight busy-looping processes share the machine's cores with the run: fewer did not expose the
wall-clock solver limits the demo presets once had.
"""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

from bench.core import constants as C
from bench.core.config import RunConfig
from bench.run.runner import TaskCache, execute_run, run_folder
from bench.sweep.spec import load_spec
from tests import REPO_ROOT

ROOT = REPO_ROOT
HOGS = 8


@contextmanager
def every_core_busy() -> Iterator[None]:
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(HOGS)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def demo_runs() -> list[RunConfig]:
    """Seed 0 of every demo method, shortened (a retraining run keeps one retraining), and one batch of
    the zoo's prior-based methods (sampling from and refitting the learned code prior)."""
    out = []
    for spec_name, methods in (("demo", None), ("zoo", {"prior-sample", "cbas"})):
        for config in load_spec(ROOT / "slurm" / "specs" / f"{spec_name}.toml").runs:
            if config.seed == 0 and (methods is None or config.label in methods):
                budget = 6 if config.retrain.enabled else 3 if methods is None else config.batch_size
                out.append(RunConfig.from_dict({**config.to_dict(), "budget": budget,
                                                "metrics": {"every": 0, "n_images": 20}}))
    return out


def records(folder_root: Path, config: RunConfig, tasks: TaskCache) -> pd.DataFrame:
    folder = run_folder(folder_root, config)
    assert execute_run(config, folder, tasks=tasks) == C.STATUS_COMPLETED, folder.read_info().get("error")
    assert not folder.read_info()["load_dependent"]
    frame = pd.read_parquet(folder.file(C.RECORDS_FILE))
    return frame.drop(columns=list(C.TIMING_COLUMNS))


@pytest.mark.slow
def test_demo_methods_write_the_same_records_under_full_load(tmp_path: Path) -> None:
    tasks = TaskCache()
    configs = demo_runs()
    assert len(configs) >= 9
    idle = {c.label: records(tmp_path / "idle", c, tasks) for c in configs}
    with every_core_busy():
        loaded = {c.label: records(tmp_path / "loaded", c, tasks) for c in configs}
    for label, frame in idle.items():
        pd.testing.assert_frame_equal(frame, loaded[label], check_exact=True, obj=label)
