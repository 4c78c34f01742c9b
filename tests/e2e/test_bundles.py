"""Submission bundles end to end: a checkpoint evaluated in one workdir, bundled, and ingested by a
maintainer who holds the same data; tampered bundles refused with their reason, nothing written."""
import hashlib
import io
import json
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

from benchmark.core.workdir import Workdir
from benchmark.data.membership import split_membership
from benchmark.results.bundle import MANIFEST, BundleRefused, write_zip
from benchmark.results.job import Job
from leaderboard import ingest as ingest_module
from leaderboard.ingest import ingest
from leaderboard.ingested import ingested_dir, load_ingested
from tests.cli_helpers import TASK, run_cli


@pytest.fixture(scope="module")
def source(tiny_phantom, tmp_path_factory):
    """One linear job of the random checkpoint on the phantom, bundled."""
    workdir = tmp_path_factory.mktemp("source")
    run_cli("run", "--workdir", str(workdir), "--device", "cpu", "--scales", "1", "--seeds", "42", "--tasks", TASK,
            "--checkpoints", "random", "--data", f"{TASK}={tiny_phantom / 'dicom'}", "--protocols", "linear",
            "--analysis-task", "none")
    bundle = workdir.parent / "random.ctbench.zip"
    run_cli("results", "bundle", "--workdir", str(workdir), "--checkpoint", "random", "--out", str(bundle),
            "--submitter", "Lab X")
    return workdir, bundle


@pytest.fixture(scope="module")
def maintainer(source, tiny_phantom, tmp_path_factory):
    """A fresh workdir that holds the same data, the bundle ingested by the CLI."""
    workdir = tmp_path_factory.mktemp("maintainer")
    proc = run_cli("leaderboard", "ingest", str(source[1]), "--workdir", str(workdir),
                   "--data", f"{TASK}={tiny_phantom / 'dicom'}")
    return workdir, proc


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def export(workdir: Path) -> str:
    return run_cli("leaderboard", "export", "--workdir", str(workdir)).stdout


def test_round_trip_is_verified_and_the_site_shows_the_sources_numbers(source, maintainer):
    workdir, proc = maintainer
    assert f"verified {TASK}@1: 1 result(s)" in proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str(workdir / "site" / "index.html")
    results, problems = load_ingested(ingested_dir(Workdir(workdir)))
    assert problems == [] and len(results) == 1
    submission = results[0].submission
    assert (submission.status, submission.submitter) == ("verified", "Lab X")
    assert export(workdir) == export(source[0])
    assert "verified" in (workdir / "site" / "leaderboard.json").read_text()


def test_the_same_results_give_the_same_bundle_bytes(source, tmp_path):
    again = tmp_path / "again.zip"
    run_cli("results", "bundle", "--workdir", str(source[0]), "--checkpoint", "random", "--out", str(again),
            "--submitter", "Lab X")
    assert again.read_bytes() == source[1].read_bytes()


def test_ingesting_the_same_bundle_again_changes_nothing(source, maintainer, tiny_phantom):
    workdir = maintainer[0]
    before = snapshot(workdir / "ingested")
    report = ingest(source[1], Workdir(workdir), {TASK: tiny_phantom / "dicom"})
    assert not report.changed and snapshot(workdir / "ingested") == before


# ---------------------------------------------------------------- tampering


def members_of(bundle: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(bundle) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def repacked(members: dict[str, bytes], out: Path, relist: bool = True) -> Path:
    """The bundle a dishonest submitter would build: member hashes listed anew unless ``relist`` is off."""
    manifest = json.loads(members[MANIFEST])
    if relist:
        manifest["members"] = {n: hashlib.sha256(d).hexdigest() for n, d in members.items() if n != MANIFEST}
    write_zip(out, {**members, MANIFEST: json.dumps(manifest).encode()})
    return out


def _result_name(members: dict[str, bytes]) -> str:
    return next(n for n in members if n.endswith(".json") and n != MANIFEST)


def edit_result(members: dict[str, bytes], edit) -> None:
    name = _result_name(members)
    payload = json.loads(members[name])
    edit(payload)
    members[name] = json.dumps(payload).encode()


def edit_predictions(members: dict[str, bytes], edit) -> None:
    name = next(n for n in members if n.endswith(".npz"))
    with np.load(io.BytesIO(members[name]), allow_pickle=False) as saved:
        arrays = {key: saved[key] for key in saved.files}
    edit(arrays)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    members[name] = buffer.getvalue()


def _edit_metric(members, source_dir):
    edit_result(members, lambda p: p["metrics"].update(auc=round(p["metrics"]["auc"] - 0.05, 6)))


def _edit_unlisted(members, source_dir):
    _edit_metric(members, source_dir)
    return False  # not relisted: the hash names the edit


def _change_prediction(members, source_dir):
    def flip(arrays):
        probabilities, truth = arrays["probabilities"], arrays["y_true"]
        right = int(np.flatnonzero(probabilities.argmax(1) == truth)[0])
        wrong = (truth[right] + 1) % probabilities.shape[1]
        probabilities[right] = np.eye(probabilities.shape[1], dtype=probabilities.dtype)[wrong]
    edit_predictions(members, flip)


def _drop_case(members, source_dir):
    edit_predictions(members, lambda arrays: arrays.update({k: v[1:] for k, v in arrays.items()}))


def _lie_about_truth(members, source_dir):
    edit_predictions(members, lambda arrays: arrays.update(y_true=(arrays["y_true"] + 1) % 6))


def _other_split(members, source_dir):
    split = json.loads(next(source_dir.glob("splits/*/*/split.json")).read_text())
    moved = split["test_patients"].pop()
    next(iter(split["pool_strata"].values())).append(moved)
    other = split_membership(split)
    edit_result(members, lambda p: p["splits"].update(split_membership=other))
    manifest = json.loads(members[MANIFEST])
    next(iter(manifest["results"].values()))["split_membership"] = other
    members[MANIFEST] = json.dumps(manifest).encode()


def renamed(members: dict[str, bytes], checkpoint: str) -> dict[str, bytes]:
    """The bundle as if its checkpoint had another name: job id, member names and bundle.json follow."""
    old = _result_name(members)
    payload = json.loads(members[old])
    job = Job.from_dict({**payload["job"], "checkpoint": checkpoint})
    payload.update(job=job.as_dict(), predictions_file=f"{job.job_id}.predictions.npz")
    payload["checkpoint"]["name"] = checkpoint
    new = f"results/{job.task}/{job.job_id}.json"
    manifest = json.loads(members[MANIFEST])
    entry = manifest["results"].pop(old)
    manifest["results"][new] = {**entry, "job_id": job.job_id, "predictions": new[:-5] + ".predictions.npz"}
    manifest["checkpoint"]["name"] = checkpoint
    return {MANIFEST: json.dumps(manifest).encode(), new: json.dumps(payload).encode(),
            new[:-5] + ".predictions.npz": members[old[:-5] + ".predictions.npz"]}


def _hostile_member(name: str, data: bytes, mode: int = stat.S_IFREG | 0o644):
    def add(members, source_dir):
        return ("extra", name, data, mode)
    return add


TAMPERS = {
    "one metric edited": (_edit_metric, "metrics['auc'] is"),
    "one metric edited, hashes left": (_edit_unlisted, "its sha256 is not the one bundle.json lists"),
    "one prediction changed": (_change_prediction, "the predictions give"),
    "a case dropped": (_drop_case, "its predictions cover other cases than the test set: 1 test case(s) missing"),
    "the truth rewritten": (_lie_about_truth, "y_true differs from the maintainer's labels"),
    "a split from another split": (_other_split, "its split differs from the maintainer's"),
    "a path outside": (_hostile_member("../evil.json", b"{}"), "'../evil.json': not a name a bundle holds"),
    "an absolute path": (_hostile_member("/tmp/evil.json", b"{}"), "not a name a bundle holds"),
    "a symlink": (_hostile_member(f"results/{TASK}/link.json", b"/etc/passwd", stat.S_IFLNK | 0o777),
                  "not a regular file"),
    "a zip bomb": (_hostile_member(f"results/{TASK}/bomb.json", bytes(16 << 20)), "a zip bomb"),
}


def tampered(source, how, out: Path) -> Path:
    members = members_of(source[1])
    change = how(members, source[0])
    if isinstance(change, tuple):  # a hostile member added beside the honest ones
        repacked(members, out)
        _, name, data, mode = change
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr, info.compress_type = mode << 16, zipfile.ZIP_DEFLATED
        with zipfile.ZipFile(out, "a") as archive:
            archive.writestr(info, data)
        return out
    return repacked(members, out, relist=change is not False)


@pytest.mark.parametrize("case", sorted(TAMPERS))
def test_a_tampered_bundle_is_refused_with_its_reason_and_nothing_is_written(case, source, maintainer, tiny_phantom,
                                                                              tmp_path):
    how, reason = TAMPERS[case]
    bundle = tampered(source, how, tmp_path / "tampered.zip")
    workdir = maintainer[0]
    before = snapshot(workdir)
    with pytest.raises(BundleRefused) as refused:
        ingest(bundle, Workdir(workdir), {TASK: tiny_phantom / "dicom"})
    assert any(reason in problem for problem in refused.value.problems), refused.value.problems
    assert all("\n" not in problem for problem in refused.value.problems)
    assert snapshot(workdir) == before


def test_a_forged_baseline_role_is_refused(source, maintainer, tiny_phantom, tmp_path):
    """A bundle renamed from a reference checkpoint keeps its role: refused, it would move every Δ."""
    members = renamed(members_of(source[1]), "mine")
    with pytest.raises(BundleRefused) as refused:
        ingest(repacked(members, tmp_path / "mine.zip"), Workdir(maintainer[0]), {TASK: tiny_phantom / "dicom"})
    assert [p.split(": ", 1)[1] for p in refused.value.problems] == [
        "its checkpoint claims the leaderboard role 'random', which only the built-in reference checkpoints play"]


def test_the_cli_lists_each_problem_and_ends_with_one_error_line(source, tiny_phantom, tmp_path):
    bundle = tampered(source, _hostile_member("../evil.json", b"{}"), tmp_path / "evil.zip")
    workdir = tmp_path / "work"
    proc = run_cli("leaderboard", "ingest", str(bundle), "--workdir", str(workdir),
                   "--data", f"{TASK}={tiny_phantom / 'dicom'}", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert lines[:-1] == ["refused: '../evil.json': not a name a bundle holds (only bundle.json and "
                          "results/<task>/<job_id>.json|.predictions.npz; no '..', '/' or '\\' paths)"]
    assert lines[-1] == f"ctbench: error: {bundle}: refused: 1 problem(s), each listed above"
    assert not ingested_dir(Workdir(workdir)).exists() and not (workdir / "site").exists()


def test_without_the_data_a_task_is_self_reported(source, tmp_path, monkeypatch):
    monkeypatch.setattr(ingest_module, "data_available", lambda spec, roots: False)
    report = ingest(source[1], Workdir(tmp_path), {})
    assert [(t.task, t.status) for t in report.tasks] == [(TASK, "self-reported")]
    results, _ = load_ingested(ingested_dir(Workdir(tmp_path)))
    assert [r.submission.status for r in results] == ["self-reported"]
    assert not (tmp_path / "cache").exists()  # nothing of the task's data was read or made
