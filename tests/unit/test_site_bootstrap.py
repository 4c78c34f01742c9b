"""Issue 20 item 4: paired patient-bootstrap intervals of each checkpoint against the baseline on
the task pages, cached per (results, predictions) hash so an unchanged rebuild is fast and
byte-identical, and a changed result recomputes."""
import json

import numpy as np
import pytest

from benchmark.results.store import ResultStore
from leaderboard import bootstrap, stats
from leaderboard.bootstrap_cache import Settings
from leaderboard.site import build_site
from tests.unit.site_helpers import predictions, result, write

QUICK = Settings(n_resamples=60, seed=0)


def small_store(root):
    """imagenet and ct-local with real predictions on one CT cell, two seeds each."""
    store = ResultStore(root / "results")
    for name, domain, shift in (("imagenet", "natural", 0.2), ("ct-local", "ct", 0.6)):
        for seed in (1, 2):
            write(store, result(name, domain, "ct-task", seed, 0.6 + shift / 4, preds=predictions(shift + seed / 100)))
    return store


def build(store, out, **options):
    return build_site(store, out, bootstrap=QUICK, **options)[0]


def task_page(index):
    return (index.parent / "tasks" / "ct-task.v1.html").read_text()


def test_the_task_page_shows_the_paired_bootstrap_interval_against_the_baseline(tmp_path):
    store = small_store(tmp_path)
    page = task_page(build(store, tmp_path / "site"))
    assert page.count('class="boot"') == 1 and "boot Δ " in page  # ct-local only: the baseline is the origin
    cached = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "bootstrap").glob("*.json")]
    assert len(cached) == 1 and cached[0]["seeds"] == [1, 2] and cached[0]["n_resamples"] == 60
    assert cached[0]["ci_low"] <= cached[0]["difference"] <= cached[0]["ci_high"]
    direct = stats.bootstrap_checkpoints(store, "ct-local", "imagenet", "ct-task", "1", "linear", 1.0,
                                         n_resamples=60, seed=0)
    assert (direct.ci_low, direct.ci_high) == pytest.approx((cached[0]["ci_low"], cached[0]["ci_high"]))
    assert f"[{direct.ci_low:.3f}, {direct.ci_high:.3f}]" in page


def test_a_warm_rebuild_reads_the_cache_and_writes_the_same_bytes(tmp_path, monkeypatch):
    store = small_store(tmp_path)
    cold = build(store, tmp_path / "cold")

    def refuse(*args, **kwargs):
        raise AssertionError("a warm rebuild must not bootstrap again")

    monkeypatch.setattr(bootstrap, "paired_bootstrap", refuse)
    warm = build(store, tmp_path / "warm")
    for name in ("index.html", "tasks/ct-task.v1.html", "leaderboard.json"):
        assert (cold.parent / name).read_bytes() == (warm.parent / name).read_bytes()


def test_a_changed_predictions_file_or_setting_misses_the_cache(tmp_path):
    store = small_store(tmp_path)
    before = task_page(build(store, tmp_path / "site"))
    path = next(p for p in store.root.rglob("*.predictions.npz") if "ct-local" in str(p) and "seed1" in p.name)
    with np.load(path) as arrays:
        changed = {k: arrays[k] for k in arrays.files}
    changed["probabilities"] = changed["probabilities"][:, ::-1].copy()  # every prediction flipped
    np.savez_compressed(path, **changed)
    after = task_page(build(store, tmp_path / "site"))
    assert before != after and len(list((tmp_path / "cache" / "bootstrap").glob("*.json"))) == 2
    build_site(store, tmp_path / "site", bootstrap=Settings(n_resamples=61))
    assert len(list((tmp_path / "cache" / "bootstrap").glob("*.json"))) == 3


def test_predictions_that_cannot_be_bootstrapped_give_no_interval_not_a_failed_build(tmp_path):
    store = ResultStore(tmp_path / "results")
    for name, domain in (("imagenet", "natural"), ("ct-local", "ct")):
        write(store, result(name, domain, "ct-task", 1, 0.7))  # predictions hold only y_true
    index, warnings = build_site(store, tmp_path / "site", bootstrap=QUICK)
    assert not warnings and 'class="boot"' not in task_page(index)
    cached = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "bootstrap").glob("*.json")]
    assert len(cached) == 1 and "error" in cached[0]


def test_the_cache_can_live_elsewhere_or_be_left_out(tmp_path):
    store = small_store(tmp_path)
    build(store, tmp_path / "site", cache=tmp_path / "elsewhere")
    assert len(list((tmp_path / "elsewhere").glob("*.json"))) == 1 and not (tmp_path / "cache").exists()
    index = build_site(store, tmp_path / "plain", bootstrap=None)[0]
    assert 'class="boot"' not in task_page(index)
