"""The leaderboard in a real browser: Debian's chromium driven by Playwright's Python package.

Chromium comes from apt (`.ci/run` installs it); `playwright install` is never used, since it
downloads a browser of its own. The site is built from results written by hand: this tests
the page, not the jobs.
"""
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmark.results.job import Job
from benchmark.results.store import ResultStore
from leaderboard.site import build_site

CHROMIUM = Path("/usr/bin/chromium")
TASKS = {"ct-task": "ct", "mri-task": "mri", "photo-task": "natural"}
CHECKPOINTS = {"random": "none", "nat-ref": "natural", "ct-model": "ct"}


def _write_results(root: Path) -> ResultStore:
    store = ResultStore(root)
    rng = np.random.default_rng(0)
    for ck_index, (checkpoint, domain) in enumerate(CHECKPOINTS.items()):
        for task_index, (task, task_domain) in enumerate(TASKS.items()):
            for seed in (42, 1, 2):
                value = 0.5 + 0.1 * ck_index + 0.05 * task_index + rng.normal(0, 0.01)
                job = Job(checkpoint, f"{ck_index}" * 64, task, "1", "linear", "1", 1.0, seed, "demo")
                store.write(job, {
                    "job": job.as_dict(), "metrics": {"accuracy": value},
                    "main_metric": {"name": "accuracy", "value": value, "higher_is_better": True},
                    "task": {"name": task, "domain": task_domain, "kind": "classification"},
                    "counts": {"train_cases": 10, "val_cases": 2, "test_cases": 5},
                    "checkpoint": {"name": checkpoint, "arch": "test_resnet", "pretraining_domain": domain,
                                   "method": "simclr", "data": "x", "sha256": f"{ck_index}" * 64, "demo": True},
                    "predictions_file": f"{job.job_id}.predictions.npz",
                }, {"y_true": np.zeros(1)})
    return store


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    index, warnings = build_site(_write_results(root / "results"), root / "site")
    assert not warnings
    return index


@pytest.fixture(scope="module")
def page(site):
    if not CHROMIUM.is_file() or shutil.which("chromium") is None:
        pytest.fail("the browser test needs Debian's chromium: apt-get install -y chromium (see .ci/run)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page()
        page.errors = []
        page.on("console", lambda message: page.errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.on("request", lambda request: page.errors.append(f"network request: {request.url}")
                if not request.url.startswith(("file:", "data:")) else None)
        page.goto(site.as_uri())
        yield page
        browser.close()


def test_the_page_loads_without_console_errors_or_network_use(page):
    page.wait_for_load_state("load")
    assert page.title().startswith("ctbench leaderboard")
    assert page.errors == []


def _first_column(page) -> list[str]:
    return page.eval_on_selector_all("#overview tbody tr:not([hidden])", "rows => rows.map(r => r.cells[0].innerText)")


def test_clicking_a_column_header_reorders_the_rows(page):
    before = _first_column(page)
    page.click("#overview thead th:nth-child(3)")  # the first checkpoint column
    ascending = _first_column(page)
    page.click("#overview thead th:nth-child(3)")
    descending = _first_column(page)
    assert sorted(before) == sorted(ascending) and ascending == descending[::-1] and len(set(before)) > 1
    assert page.errors == []


def test_the_domain_filter_hides_rows(page):
    visible = len(_first_column(page))
    page.select_option("#domain-filter", "ct")
    shown = page.eval_on_selector_all("#overview tbody tr:not([hidden])", "rows => rows.map(r => r.dataset.domain)")
    assert 0 < len(shown) < visible and set(shown) == {"ct"}
    page.select_option("#domain-filter", "all")
    assert len(_first_column(page)) == visible


def test_a_screenshot_is_written(page, tmp_path):
    path = tmp_path / "leaderboard.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
