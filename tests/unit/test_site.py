import csv

import numpy as np

from benchmark.results.job import Job
from benchmark.results.store import ResultStore
from leaderboard.site import build_site


def store_with_results(root, method="SimCLR", values=(0.7, 0.8, 0.9)):
    store = ResultStore(root)
    for seed, value in zip((42, 1, 2), values):
        job = Job("mine", "a" * 64, "t", "1", "linear", "1", 1.0, seed, "demo")
        store.write(job, {
            "job": job.as_dict(), "metrics": {"accuracy": value}, "main_metric": {
                "name": "accuracy", "value": value, "higher_is_better": True},
            "task": {"domain": "ct"}, "counts": {"train_cases": 10, "val_cases": 2},
            "checkpoint": {"name": "mine", "arch": "resnet18", "pretraining_domain": "ct", "method": method,
                           "data": "x", "sha256": "a" * 64, "demo": False},
        }, {"y_true": np.zeros(1)})
    return store


def test_summary_statistics_are_across_seeds(tmp_path):
    store = store_with_results(tmp_path / "results")
    build_site(store, tmp_path / "site")
    row = next(csv.DictReader(open(tmp_path / "site" / "leaderboard.csv")))
    assert row["n"] == "3"
    assert float(row["mean"]) == 0.8 and abs(float(row["std"]) - 0.1) < 1e-9
    half = 4.30265 * 0.1 / np.sqrt(3)  # t(0.975, 2 dof)
    assert abs(float(row["ci_low"]) - (0.8 - half)) < 1e-4


def test_user_strings_are_escaped(tmp_path):
    store = store_with_results(tmp_path / "results", method='<script>alert("x")</script>')
    index, _ = build_site(store, tmp_path / "site")
    pages = [index, *index.parent.glob("checkpoints/*.html")]
    html = "".join(p.read_text() for p in pages)
    assert '<script>alert' not in html and "&lt;script&gt;alert" in html


def test_a_malformed_result_is_named_and_the_rest_still_builds(tmp_path):
    store = store_with_results(tmp_path / "results")
    bad = tmp_path / "results" / "mine" / "t" / "garbage.json"
    bad.write_text("{")
    index, warnings = build_site(store, tmp_path / "site")
    assert len(warnings) == 1 and warnings[0].startswith(f"{bad}: ")  # stderr: where to look on this machine
    page = index.read_text()
    assert "results/mine/t/garbage.json: " in page and "0.800" in page
    assert str(tmp_path) not in page  # the published page holds no local folder
