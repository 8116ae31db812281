"""report.html: one self-contained page with the content of report.md, checked statically and in a
real headless browser (Debian's chromium through selenium and chromium-driver).

The browser test skips only when chromium or its driver is not installed; CI installs both
(``.ci/run``) and keeps the screenshot under ``results/ci-artifacts/`` (not committed).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.analysis import report as R
from bench.testing import runs as S

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
#: CI artifacts live under the repository's (git-ignored) results/, wherever this test file sits
ARTIFACTS = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists()) / "results" / "ci-artifacts"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report with every figure: 2 tasks, 3 methods (random and copy draw the same curves), 3 seeds,
    FID checkpoints and prior log-likelihoods."""
    sweep = tmp_path_factory.mktemp("html") / "html-sweep"
    for task in ("a", "b"):
        for seed in range(3):
            for method, scores in (("random", [1.0, 1.0, 2.0]), ("copy", [1.0, 1.0, 2.0]),
                                   ("tree", [2.0 + seed, 3.0, 4.0 + seed])):
                fid = [{"at_query": 3, "subset": "top", "metric": "fid", "value": 50.0 - 5 * max(scores) + seed,
                        "std": 0.0, "n": 2, "reference": "ref", "features": "task-features"}]
                S.write_run(sweep, S.SyntheticRun(task, method, seed, [0.5, 1.0], scores, metrics=fid, propose_s=0.01,
                                                  optimizer="random" if method != "tree" else None,
                                                  prior_loglik=[-1.0, -1.0, -2.0, -3.0 - seed, -4.0]))
    R.write_report(sweep, top_k=2)
    return sweep / "report"


@pytest.mark.slow
def test_html_is_self_contained_with_the_content_of_report_md(report_folder: Path) -> None:
    page = (report_folder / "report.html").read_text(encoding="utf-8")
    markdown = (report_folder / "report.md").read_text(encoding="utf-8")
    assert "<script" not in page and not re.search(r'(src|href)="(https?:)?//', page)  # nothing from the network
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == markdown.count("![") >= 8
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1])[:8] == PNG_SIGNATURE
    assert page.count("<table>") == len(re.findall(r"^\| :?--", markdown, flags=re.M))
    ids = re.findall(r'<h[23] id="([^"]+)"', page)
    assert len(ids) == len(re.findall(r"^##{1,2} ", markdown, flags=re.M)) and len(set(ids)) == len(ids)
    toc = page.split("<main>")[0]
    assert all(f'href="#{i}"' in toc for i in ids)
    for row in ("Friedman", "Definitions", "Runtime ECDF vs optimizer queries", "Realism vs score"):
        assert row in page, row


@pytest.mark.slow
def test_every_file_is_byte_identical_in_another_process(report_folder: Path, tmp_path: Path) -> None:
    """Figures included: nothing may depend on the process (e.g. the order of a set of strings)."""
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-m", "bench.cli.main", "report", str(report_folder.parent), "--top-k", "2",
                    "--out", str(tmp_path)], check=True, env=env, capture_output=True)
    names = sorted(p.name for p in report_folder.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    for name in names:
        assert (tmp_path / name).read_bytes() == (report_folder / name).read_bytes(), name


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
def test_html_renders_in_headless_chromium(report_folder: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium must never try to download a driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.get((report_folder / "report.html").as_uri())
        assert driver.execute_script("return document.readyState") == "complete"
        images = driver.execute_script("return Array.from(document.images, i => [i.complete, i.naturalWidth])")
        assert len(images) >= 8 and all(complete and width > 0 for complete, width in images), images
        errors = [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
        assert errors == []
        assert driver.execute_script("return document.querySelectorAll('nav a').length") >= 10
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(ARTIFACTS / "report_html.png"))
    finally:
        driver.quit()
    assert (ARTIFACTS / "report_html.png").read_bytes()[:8] == PNG_SIGNATURE
