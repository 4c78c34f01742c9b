"""Where each task's data comes from: licence, reference and citation on the spec, in ``tasks show`` and on
the task page; and the retired ``reader`` field, still accepted with a warning."""
import json
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from pydantic import ValidationError

from benchmark.core.specs import TaskSpec
from benchmark.data.slices import slice_cache_key
from benchmark.results.job import Job
from benchmark.results.store import ResultStore
from leaderboard.site import build_site
from tasks import builtin_tasks

BUILTIN = builtin_tasks()
MINIMAL = dict(name="t", version="1", domain="ct", kind="classification", class_names=["a", "b"],
               metrics=["accuracy"], main_metric="accuracy")


@pytest.mark.parametrize("task", BUILTIN, ids=[t.spec.name for t in BUILTIN])
def test_every_built_in_task_says_where_its_data_comes_from(task):
    spec = task.spec
    assert spec.license.strip() and spec.citation.strip(), spec.name
    assert spec.reference.startswith(("https://", "http://")), spec.reference
    if not spec.embedded and "own data" not in spec.license:  # a published dataset: its citation names a year
        assert any(str(year) in spec.citation for year in range(2014, 2026)), spec.citation


def test_the_embedded_data_is_ctbench_s_own_and_says_so():
    embedded = [t.spec for t in BUILTIN if t.spec.embedded]
    assert embedded and all("Apache-2.0" in s.license for s in embedded)


@pytest.mark.parametrize("reference", ["ftp://example.org/x", "javascript:alert(1)", "example.org", "https://a b"])
def test_reference_must_be_an_http_url(reference):
    with pytest.raises(ValidationError, match="not an http"):
        TaskSpec(**MINIMAL, reference=reference)


def test_the_source_fields_default_to_empty():
    spec = TaskSpec(**MINIMAL)
    assert (spec.license, spec.reference, spec.citation) == ("", "", "")


def test_reader_is_deprecated_but_an_old_plugin_still_loads():
    with pytest.warns(DeprecationWarning, match="reader"):
        spec = TaskSpec(**MINIMAL, reader="dicom-folder")
    assert spec == TaskSpec(**MINIMAL) and "reader" not in spec.model_dump()
    with pytest.warns(DeprecationWarning):  # a stored result's spec, validated again (rescore)
        assert TaskSpec.model_validate({**MINIMAL, "reader": "x"}) == spec


def test_no_spec_passes_reader_any_more():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for task in builtin_tasks():
            TaskSpec.model_validate(task.spec.model_dump())


def test_the_source_fields_are_in_no_cache_key():
    """The slice cache is keyed on the name, version and preprocessing: a licence edit reuses it."""
    plain = BUILTIN[0]
    sourced = plain.spec.model_copy(update={"license": "CC0", "reference": "https://example.org", "citation": "X"})
    keys = {slice_cache_key(SimpleNamespace(spec=spec), "f" * 64, spec.preprocessing) for spec in (plain.spec, sourced)}
    assert len(keys) == 1


def test_tasks_show_prints_the_source_fields(capsys):
    from benchmark.cli.main import main

    assert main(["tasks", "show", "lits-liver-segmentation"]) == 0
    out = capsys.readouterr().out
    shown = json.loads(out[out.index("\n{") + 1:])
    assert shown["license"].startswith("CC BY-NC-SA 4.0")
    assert shown["reference"] == "https://competitions.codalab.org/competitions/17094"
    assert "Medical Image Analysis" in shown["citation"] and "reader" not in shown


def _store(root, task_fields: dict) -> ResultStore:
    store = ResultStore(root)
    for seed, value in zip((42, 1), (0.7, 0.8)):
        job = Job("mine", "a" * 64, "t", "1", "linear", "1", 1.0, seed, "demo")
        store.write(job, {
            "job": job.as_dict(), "metrics": {"accuracy": value}, "main_metric": {
                "name": "accuracy", "value": value, "higher_is_better": True},
            "task": {"domain": "ct", **task_fields}, "counts": {"train_cases": 10, "val_cases": 2},
            "checkpoint": {"name": "mine", "arch": "resnet18", "pretraining_domain": "ct", "method": "SimCLR",
                           "data": "x", "sha256": "a" * 64, "demo": False},
        }, {"y_true": np.zeros(1)})
    return store


def test_the_task_page_shows_licence_reference_and_citation(tmp_path):
    store = _store(tmp_path / "results", {"license": "CC BY-NC-SA 4.0", "reference": "https://example.org/?a=1&b=<2>",
                                          "citation": "Doe J. <b>A set</b>. 2024."})
    build_site(store, tmp_path / "site")
    page = (tmp_path / "site" / "tasks" / "t.v1.html").read_text()
    assert "CC BY-NC-SA 4.0" in page
    assert '<a href="https://example.org/?a=1&amp;b=&lt;2&gt;" rel="noopener noreferrer">' in page
    assert "Doe J. &lt;b&gt;A set&lt;/b&gt;. 2024." in page and "<b>A set" not in page


def test_a_reference_that_is_not_a_web_address_is_never_a_link(tmp_path):
    """An imported result's spec is not validated by TaskSpec: a javascript: URL stays text."""
    store = _store(tmp_path / "results", {"license": "x", "reference": "javascript:alert(1)"})
    build_site(store, tmp_path / "site")
    page = (tmp_path / "site" / "tasks" / "t.v1.html").read_text()
    assert "javascript:alert(1)" in page and 'href="javascript' not in page


def test_a_task_page_without_source_fields_still_builds(tmp_path):
    build_site(_store(tmp_path / "results", {}), tmp_path / "site")
    assert "Licence" not in (tmp_path / "site" / "tasks" / "t.v1.html").read_text()
