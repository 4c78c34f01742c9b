"""Issue 20: a row whose split is not the task's published one (or whose task has none) is marked
"custom split" and never compared with, or ranked against, rows on the published split."""
import json

import pytest

from benchmark.results.store import ResultStore
from leaderboard import site
from tests.unit.site_helpers import result, write

PUBLISHED = {("ct-task", "1"): "p" * 64}


@pytest.fixture
def index(tmp_path, monkeypatch):
    monkeypatch.setattr(site, "published_memberships", lambda workdir, tasks=None: PUBLISHED)
    store = ResultStore(tmp_path / "results")
    for name, domain, value, membership in (("imagenet", "natural", 0.6, "p" * 64), ("ct-local", "ct", 0.7, "p" * 64),
                                            ("ct-mine", "ct", 0.95, "q" * 64)):
        for seed in (1, 2, 3):
            for task in ("ct-task", "mri-task"):
                write(store, result(name, domain, task, seed, value + seed / 100, membership=membership))
    return site.build_site(store, tmp_path / "site", bootstrap=None)[0]


def test_a_custom_split_row_is_marked_and_not_compared_with_the_published_baseline(index):
    records = json.loads((index.parent / "leaderboard.json").read_text())
    ct = {r["checkpoint"]: r for r in records if r["task"] == "ct-task"}
    assert ct["ct-mine"]["split"] == "custom" and ct["ct-mine"]["baseline"] is None  # no Δ, no tier
    assert ct["ct-local"]["split"] == "published" and ct["ct-local"]["baseline"] == "imagenet"
    page = (index.parent / "tasks" / "ct-task.v1.html").read_text()
    mine_row = next(line for line in page.splitlines() if ">ct-mine</a>" in line)
    assert "custom split" in mine_row and "tier-none" in mine_row
    assert "custom split" not in next(line for line in page.splitlines() if ">ct-local</a>" in line)


def test_a_task_without_a_published_split_is_marked_but_compared_among_its_own(index):
    records = json.loads((index.parent / "leaderboard.json").read_text())
    mri = {r["checkpoint"]: r for r in records if r["task"] == "mri-task"}
    assert {r["split"] for r in mri.values()} == {"unpublished"}
    assert mri["ct-mine"]["baseline"] == "imagenet"
    assert "custom split" in (index.parent / "tasks" / "mri-task.v1.html").read_text()
    overview = index.read_text().split('<table id="overview"', 1)[1].split("</table>", 1)[0]
    mri_row = next(line for line in overview.splitlines() if ">mri-task</a>" in line)
    ct_row = next(line for line in overview.splitlines() if ">ct-task</a>" in line)
    assert mri_row.count(">custom split<") == 1  # once, on the task: none of its rows is on a published split
    assert ct_row.count(">custom split<") == 1  # ct-mine's cell only


def test_custom_split_cells_are_not_ranked(index):
    overall = index.read_text().split('<table id="overall"', 1)[1].split("</table>", 1)[0]
    assert ">ct-mine</td>" not in overall.split("</tr>")[1]  # would win every cell it is ranked in
    assert "ct-mine at scale" in index.read_text()  # listed as missing the published ct-task cell


def test_the_published_splits_module_is_read_when_present(tmp_path):
    memberships = site.published_memberships(tmp_path)
    assert memberships is None or all(isinstance(k, tuple) and len(v) == 64 for k, v in memberships.items())


def test_a_site_reads_only_the_published_sets_of_the_tasks_it_shows(tmp_path):
    every = site.published_memberships(tmp_path)
    key = sorted(every)[0]
    assert site.published_memberships(tmp_path, [key, ("phantom-body-region", "1")]) == {key: every[key]}
