"""A submission bundle is read as hostile input: nothing outside its layout, no symlinks, no bombs,
no pickles, no arrays bigger than their bytes; and a task without data here is only self-reported."""
import hashlib
import io
import json
import stat
import zipfile

import numpy as np
import pytest

from benchmark.catalog.registries import task_registry
from benchmark.core.errors import ConfigError, DataError
from benchmark.core.workdir import Workdir
from benchmark.evaluation.metrics import score
from benchmark.results import untrusted_zip
from benchmark.results.bundle import MANIFEST, BundleRefused, read_bundle, write_bundle, write_zip
from benchmark.results.job import Job
from benchmark.results.schema import shown
from benchmark.results.store import ResultStore
from benchmark.results.untrusted_zip import load_npz_bytes
from leaderboard.ingest import data_available, ingest
from leaderboard.ingested import ingested_dir, load_ingested

TASK = "luna16-nodule-patch"  # not embedded and no published split: no maintainer holds its data in a unit test
JOB = Job("mine", "c" * 64, TASK, "1", "linear", "1", 1.0, 42, "demo")
PUBLISHED_TASK = "lits-tumour-present"  # ships a published split


def predictions() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet([1, 1], size=8).astype(np.float32)
    return {"case_ids": np.array([f"case-{i}" for i in range(8)]), "patient_ids": np.array([f"p{i // 2}" for i in range(8)]),
            "y_true": np.array([0, 1] * 4), "probabilities": probabilities}


def result(arrays: dict[str, np.ndarray], job: Job = JOB, **changes) -> dict:
    spec = task_registry().get(job.task).spec
    metrics = score(spec, arrays["y_true"], arrays["patient_ids"], {"probabilities": arrays["probabilities"]})
    return {"job": job.as_dict(), "metrics": metrics, "checkpoint": {"name": "mine"},
            "task": spec.model_dump(mode="json"), "counts": {"train_cases": 4, "val_cases": 2, "test_cases": 8},
            "main_metric": {"name": spec.main_metric, "value": metrics[spec.main_metric], "higher_is_better": True},
            "splits": {"split_membership": "s" * 64, "budget_membership": "b" * 64},
            "predictions_file": f"{job.job_id}.predictions.npz", **changes}


def make_bundle(folder, job: Job = JOB):
    store = ResultStore(folder / "results")
    arrays = predictions()
    store.write(job, result(arrays, job), arrays)
    out = folder / f"{job.task}.zip"
    write_bundle(store, "mine", out, submitter="Lab Y")
    return out


@pytest.fixture
def bundle(tmp_path):
    return make_bundle(tmp_path)


def members_of(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def with_member(path, name: str, data: bytes, mode: int = stat.S_IFREG | 0o644, flags: int = 0):
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr, info.compress_type = mode << 16, zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(info, data)
        if flags:
            archive.getinfo(name).flag_bits |= flags
    return path


def problems_of(path) -> list[str]:
    with pytest.raises(BundleRefused) as refused:
        read_bundle(path)
    return refused.value.problems


def test_a_bundle_reads_back_what_was_written_and_the_same_results_give_the_same_bytes(bundle, tmp_path):
    read = read_bundle(bundle)
    assert read.checkpoint == "mine" and read.manifest.submitter == "Lab Y" and read.manifest.tasks == {TASK: "1"}
    (entry,) = read.results
    assert entry.result.job.job_id == JOB.job_id
    assert np.array_equal(entry.predictions()["probabilities"], predictions()["probabilities"])
    again = tmp_path / "again.zip"
    write_bundle(ResultStore(tmp_path / "results"), "mine", again, submitter="Lab Y")
    assert again.read_bytes() == bundle.read_bytes()


@pytest.mark.parametrize("name, reason", [
    ("../evil.json", "not a name a bundle holds"),
    ("/etc/evil.json", "not a name a bundle holds"),
    ("results\\t\\evil.json", "not a name a bundle holds"),
    (f"results/{TASK}/../../evil.json", "not a name a bundle holds"),
    ("results/t/x.pth", "not a name a bundle holds"),
])
def test_names_outside_the_layout_are_refused(bundle, name, reason):
    problems = problems_of(with_member(bundle, name, b"{}"))
    assert problems == [f"{shown(name)}: {reason} (only bundle.json and "
                        "results/<task>/<job_id>.json|.predictions.npz; no '..', '/' or '\\' paths)"]


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_symlinks_folders_duplicates_and_encrypted_members_are_refused(bundle):
    with_member(bundle, f"results/{TASK}/link.json", b"/etc/passwd", stat.S_IFLNK | 0o777)
    with_member(bundle, f"results/{TASK}/x.json", b"{}", flags=0x1)
    with_member(bundle, MANIFEST, b"{}")
    problems = problems_of(bundle)
    assert f"results/{TASK}/link.json: not a regular file (a symlink, folder or device)" in problems
    assert f"results/{TASK}/x.json: encrypted" in problems
    assert f"{MANIFEST}: appears more than once" in problems


def test_sizes_and_ratios_are_capped_before_anything_is_decompressed(bundle, monkeypatch):
    with_member(bundle, f"results/{TASK}/bomb.json", bytes(8 << 20))
    assert problems_of(bundle) == [f"results/{TASK}/bomb.json: compressed more than 100:1 (a zip bomb)"]
    monkeypatch.setattr(untrusted_zip, "MAX_MEMBER_BYTES", 1000)
    assert any("more than 1000" in p for p in problems_of(bundle))


def test_a_member_edited_after_bundling_is_named(bundle, tmp_path):
    members = members_of(bundle)
    name = next(n for n in members if n.endswith(".json") and n != MANIFEST)
    payload = json.loads(members[name])
    payload["metrics"]["auc"] = 0.99
    write_zip(tmp_path / "edited.zip", {**members, name: json.dumps(payload).encode()})
    assert problems_of(tmp_path / "edited.zip") == [
        f"{name}: its sha256 is not the one bundle.json lists (edited after bundling)"]


def test_not_a_zip_is_one_data_error(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="is not a readable zip file"):
        read_bundle(tmp_path / "x.zip")


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def forged_npy(array: np.ndarray, shape: tuple) -> bytes:
    """An npy whose header claims ``shape`` over ``array``'s bytes: numpy would allocate the claim first."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.lib.format.dtype_to_descr(array.dtype),
                                                  "fortran_order": False, "shape": shape})
    return buffer.getvalue() + array.tobytes()


def test_predictions_with_pickles_or_lying_headers_are_refused_before_numpy_allocates():
    base = predictions()
    with pytest.raises(ValueError, match="holds Python objects"):
        load_npz_bytes(npz(**{**base, "probabilities": np.array([object()] * 8, dtype=object)}))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key, array in base.items():
            shape = (10**12, 2) if key == "probabilities" else array.shape
            archive.writestr(f"{key}.npy", forged_npy(array, shape))
    with pytest.raises(ValueError, match=r"probabilities.npy: its header says \(1000000000000, 2\) float32"):
        load_npz_bytes(buffer.getvalue())


def test_bundling_refuses_results_a_maintainer_could_not_check(tmp_path):
    store = ResultStore(tmp_path / "results")
    arrays = predictions()
    store.write(JOB, result(arrays, splits={}), arrays)
    with pytest.raises(ConfigError, match="records no split membership"):
        write_bundle(store, "mine", tmp_path / "out.zip")
    with pytest.raises(ConfigError, match="holds no results of checkpoint 'other'"):
        write_bundle(store, "other", tmp_path / "out.zip")


def test_without_the_data_a_task_is_self_reported(bundle, tmp_path):
    report = ingest(bundle, Workdir(tmp_path / "work"), {})
    assert [(t.task, t.status) for t in report.tasks] == [(TASK, "self-reported")]
    results, problems = load_ingested(ingested_dir(Workdir(tmp_path / "work")))
    assert problems == [] and [(r.submission.status, r.submission.submitter) for r in results] == [
        ("self-reported", "Lab Y")]


def _forge_accuracy(payload):
    payload["metrics"]["accuracy"] = 1.0


def _drop_a_metric(payload):
    """The task section edited too: the metrics are scored as this ctbench's task scores them."""
    del payload["metrics"]["f1_macro"]
    payload["task"]["metrics"].remove("f1_macro")


@pytest.mark.parametrize("edit, reason", [
    (_forge_accuracy, f"metrics['accuracy'] is 1.0, the predictions give {result(predictions())['metrics']['accuracy']:.6g}"),
    (_drop_a_metric, f"metrics lacks 'f1_macro' (the predictions give {result(predictions())['metrics']['f1_macro']:.6g})"),
])
def test_a_self_reported_metric_must_still_follow_from_its_own_predictions(bundle, tmp_path, edit, reason):
    members = members_of(bundle)
    name = next(n for n in members if n.endswith(".json") and n != MANIFEST)
    payload = json.loads(members[name])
    edit(payload)
    members[name] = json.dumps(payload).encode()
    manifest = json.loads(members[MANIFEST])
    manifest["members"][name] = hashlib.sha256(members[name]).hexdigest()
    write_zip(tmp_path / "edited.zip", {**members, MANIFEST: json.dumps(manifest).encode()})
    with pytest.raises(BundleRefused) as refused:
        ingest(tmp_path / "edited.zip", Workdir(tmp_path / "work"), {})
    assert refused.value.problems == [f"{name}: {reason}"]
    assert not (tmp_path / "work").exists()


def test_a_self_reported_result_off_the_published_split_is_refused(tmp_path):
    job = Job("mine", "c" * 64, PUBLISHED_TASK, "1", "linear", "1", 1.0, 42, "demo")
    with pytest.raises(BundleRefused) as refused:
        ingest(make_bundle(tmp_path, job), Workdir(tmp_path / "work"), {})
    (problem,) = refused.value.problems
    assert f"its split is not the published split of {PUBLISHED_TASK}@1 (membership ssssssssssss" in problem


def test_a_task_is_verified_where_its_data_is_given_or_generated():
    lits, phantom = task_registry().get(TASK).spec, task_registry().get("phantom-body-region").spec
    assert not data_available(lits, {}) and data_available(lits, {TASK: "/data"}) and data_available(phantom, {})


def test_every_problem_is_one_line_whatever_bundle_json_names(bundle, tmp_path):
    members = members_of(bundle)
    manifest = json.loads(members[MANIFEST])
    entry = next(iter(manifest["results"].values()))
    manifest["results"]["evil\nrefused: all is well"] = entry
    write_zip(tmp_path / "evil.zip", {**members, MANIFEST: json.dumps(manifest).encode()})
    problems = problems_of(tmp_path / "evil.zip")
    assert "evil\\nrefused: all is well: listed in bundle.json's results but not in the bundle" in problems
    assert all("\n" not in p for p in problems)


def test_a_bundle_repacked_by_a_tool_that_records_no_file_type_still_reads(bundle, tmp_path):
    """Windows zippers and ``ZipFile.writestr(name, ...)`` leave the type bits of a member's mode at 0."""
    repacked = tmp_path / "repacked.zip"
    with zipfile.ZipFile(repacked, "w") as archive:
        for name, data in members_of(bundle).items():
            archive.writestr(name, data)
    assert all(stat.S_IFMT(i.external_attr >> 16) == 0 for i in zipfile.ZipFile(repacked).infolist())
    assert read_bundle(repacked).checkpoint == "mine"
