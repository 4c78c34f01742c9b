"""Issue 20 item 3 in a real browser: the status filter hides unranked rows and columns, and
works together with the domain filter (Debian's chromium through Playwright, no network)."""
import shutil
from pathlib import Path

import pytest

from benchmark.results.store import ResultStore
from leaderboard.site import build_site
from tests.unit.site_helpers import provenance_workdir

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    if not CHROMIUM.is_file() or shutil.which("chromium") is None:
        pytest.skip("needs Debian's chromium (see tests/e2e/test_site_browser.py)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    root = tmp_path_factory.mktemp("status")
    workdir = provenance_workdir(root / "w")
    index, _ = build_site(ResultStore(workdir.results), root / "site", None, None, workdir.root / "ingested",
                          bootstrap=None)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.goto(index.as_uri())
        yield page
        browser.close()


def visible(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "els => els.filter(e => !e.hidden).map(e => e.dataset.status)")


def test_the_status_filter_shows_only_ranked_rows_and_columns(page):
    assert set(visible(page, "#checkpoints tbody tr")) == {"local", "verified", "self-reported"}
    page.select_option("#status-filter", "ranked")
    assert set(visible(page, "#checkpoints tbody tr")) == {"local", "verified"}
    assert set(visible(page, "#overview thead th[data-status]")) == {"local", "verified"}
    assert set(visible(page, "#domain-view tbody tr")) == {"local", "verified"}
    page.select_option("#status-filter", "self-reported")
    assert set(visible(page, "#checkpoints tbody tr")) == {"self-reported"}
    page.select_option("#status-filter", "all")
    assert page.errors == []


def test_the_status_and_domain_filters_combine(page):
    page.select_option("#status-filter", "verified")
    page.select_option("#domain-filter", "ct")
    rows = page.eval_on_selector_all("#overview tbody tr", "els => els.filter(e => !e.hidden).map(e => e.dataset.domain)")
    assert rows == ["ct"]
    assert set(visible(page, "#overview tbody td[data-status]")) == {"verified"}
    page.select_option("#domain-filter", "all")
    page.select_option("#status-filter", "all")
    assert page.errors == []
