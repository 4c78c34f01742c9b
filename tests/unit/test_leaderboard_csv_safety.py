"""Issue 20 item 7: no published CSV cell runs as a spreadsheet formula, numbers stay numbers,
and page file names never collide on a case-insensitive file system."""
import csv
import io

import numpy as np

from benchmark.core.workdir import Workdir
from benchmark.results.job import Job
from benchmark.results.store import ResultStore
from leaderboard.aggregate import load, tidy
from leaderboard.csv_safety import neutralise, restore
from leaderboard.export import export
from leaderboard.importer import import_csv, imported_dir
from leaderboard.site import build_site, slug

FORMULA = '=HYPERLINK("http://x","y")'


def store_with(root, metric=FORMULA):
    """A checkpoint worse than the baseline (a negative delta) on a metric named like a formula."""
    store = ResultStore(root)
    for checkpoint, domain, base in (("imagenet", "natural", 0.8), ("mine", "ct", 0.6)):
        for seed, noise in ((42, 0.0), (1, 0.01), (2, -0.02)):
            job = Job(checkpoint, "a" * 64, "phantom-body-region", "1", "linear", "1", 1.0, seed, "demo")
            value = base + noise
            store.write(job, {
                "job": job.as_dict(), "metrics": {metric: -value, "@sum": value},
                "main_metric": {"name": metric, "value": -value, "higher_is_better": True},
                "task": {"domain": "ct"}, "counts": {"train_cases": 10, "val_cases": 2},
                "checkpoint": {"name": checkpoint, "pretraining_domain": domain},
            }, {"y_true": np.zeros(1)})
    return store


def test_text_cells_starting_a_formula_are_quoted_and_others_untouched():
    for text in ("=1+1", "+1", "-cmd", "@SUM(A1)", "\tx", "\rx"):
        assert neutralise(text) == "'" + text and restore(neutralise(text)) == text
    for value in ("mine", "a=b", "'quoted", -0.5, 3, None):
        assert neutralise(value) == value
    assert restore("'quoted") == "'quoted"


def test_the_site_csv_quotes_formula_names_but_keeps_negative_numbers(tmp_path):
    build_site(store_with(tmp_path / "results"), tmp_path / "site")
    rows = list(csv.DictReader(open(tmp_path / "site" / "leaderboard.csv", encoding="utf-8")))
    formula_rows = [r for r in rows if r["metric"].endswith(FORMULA)]
    assert formula_rows and all(r["metric"] == "'" + FORMULA for r in formula_rows)
    assert {r["metric"] for r in rows} == {"'" + FORMULA, "'@sum"}
    mine = next(r for r in formula_rows if r["checkpoint"] == "mine")
    assert float(mine["mean"]) < 0 and mine["mean"].startswith("-")  # a number, not a quoted cell
    assert float(mine["delta_pct"]) < 0 or float(mine["delta_pct"]) > 0
    assert not any(cell.startswith(("=", "+", "@")) for r in rows for cell in r.values())


def test_results_export_quotes_formulas_and_round_trips_through_import(tmp_path):
    store = store_with(Workdir(tmp_path / "a").results)
    buffer = io.StringIO()
    export(store, "csv", buffer)
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert {r["metric"] for r in rows} == {"'" + FORMULA, "'@sum"}
    assert any(r["value"].startswith("-") for r in rows)
    exported = tmp_path / "exported.csv"
    exported.write_text(buffer.getvalue())
    fresh = Workdir(tmp_path / "b")
    import_csv(exported, fresh)
    again = tidy(load(ResultStore(fresh.results), imported_dir(fresh))[0])
    assert set(again["metric"]) == {FORMULA, "@sum"}
    assert sorted(again["value"]) == sorted(tidy(load(store)[0])["value"])


def test_page_names_are_unique_case_insensitively():
    names = ["mine", "Mine", "MINE", "mine.v1", "Mine.v1", "a+b", "<odd>"]
    slugs = [slug(n) for n in names]
    assert len({s.lower() for s in slugs}) == len(names)
    assert slug("mine") == "mine" and slug("mine.v1") == "mine.v1"  # lower-case names keep their slug
    assert slug("Mine").startswith("mine_") and slug("Mine") == slug("Mine")  # stable across builds
    assert slug("<odd>").startswith("x-")


def test_checkpoints_differing_in_case_get_two_pages(tmp_path):
    store = ResultStore(tmp_path / "results")
    for name in ("Mine", "mine"):
        job = Job(name, "a" * 64, "t", "1", "linear", "1", 1.0, 42, "demo")
        store.write(job, {"job": job.as_dict(), "metrics": {"accuracy": 0.5},
                          "main_metric": {"name": "accuracy", "value": 0.5, "higher_is_better": True},
                          "task": {"domain": "ct"}, "checkpoint": {"name": name, "pretraining_domain": "ct"}},
                    {"y_true": np.zeros(1)})
    build_site(store, tmp_path / "site")
    pages = sorted(p.name.lower() for p in (tmp_path / "site" / "checkpoints").glob("*.html"))
    assert len(pages) == len(set(pages)) == 2
