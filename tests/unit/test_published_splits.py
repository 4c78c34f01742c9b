"""Published split sets: identified by membership (not by whose copy), shipped sets verify and regenerate,
a lab's set travels by export and import, and a moved patient is named, never absorbed."""
import gzip
import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest

from benchmark.cli import main as cli
from benchmark.core.errors import DataError
from benchmark.core.hashing import file_sha256
from benchmark.data import published as published_module
from benchmark.data.membership import budget_membership, split_membership
from benchmark.data.published import SHIPPED_DIR, load_published, published_memberships, shipped_path
from benchmark.data.splits import MANIFEST_VERSION
from tests.cli_helpers import REPO
from tests.fixtures.datasets.nifti_ct import write_lits

TASK = "lits-tumour-present"  # a LiTS-layout classification task with a shipped set
N_VOLUMES = 6


def ctbench(*argv: str) -> int:
    return cli.main(list(argv))


def error_lines(err: str) -> list[str]:
    """stderr without the slice reader's progress bar: what a failed command said."""
    return [line for line in err.strip().splitlines() if line.strip() and not line.startswith("reading ")]


def make(workdir: Path, data: Path, *extra: str) -> int:
    return ctbench("splits", "make", TASK, "--data", str(data), "--workdir", str(workdir), "--seeds", "42,1",
                   "--scales", "1,0.5", *extra)


def copy_with_new_mtimes(root: Path, dest: Path) -> Path:
    copy = shutil.copytree(root, dest, copy_function=shutil.copy)
    for path in copy.rglob("*"):
        os.utime(path, ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))
    return copy


def split_folder(workdir: Path) -> Path:
    (found,) = workdir.glob(f"splits/{TASK}@*/*-m{MANIFEST_VERSION}")
    return found


def memberships(workdir: Path) -> dict[str, str]:
    folder = split_folder(workdir)
    split = json.loads((folder / "split.json").read_text())
    found = {"split": split_membership(split)}
    for path in sorted(folder.glob("seed*/scale-*.json")):
        found[path.relative_to(folder).as_posix()] = budget_membership(json.loads(path.read_text()), split)
    return found


def rewrite(path: Path, payload: dict) -> None:
    """An edit with its checksum brought along, so only the membership check can catch it."""
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    path.with_name(path.name + ".sha256").write_text(f"{file_sha256(path)}  {path.name}\n")


@pytest.fixture(scope="module")
def lits(tmp_path_factory) -> Path:
    return write_lits(tmp_path_factory.mktemp("lits") / "LITS17", n_volumes=N_VOLUMES)


@pytest.fixture
def unshipped(tmp_path, monkeypatch) -> None:
    """No shipped sets: the fixture's 6 volumes are then the whole dataset, as a lab's export would be."""
    empty = tmp_path / "no-shipped"
    empty.mkdir()
    monkeypatch.setattr(published_module, "SHIPPED_DIR", empty)


def test_two_copies_with_other_paths_and_mtimes_give_the_same_memberships(lits, tmp_path, capsys):
    copy = copy_with_new_mtimes(lits, tmp_path / "elsewhere" / "copy")
    assert make(tmp_path / "a", lits) == 0 and make(tmp_path / "b", copy) == 0
    first, second = memberships(tmp_path / "a"), memberships(tmp_path / "b")
    assert first == second and len(first) == 5  # the split and 2 seeds x 2 scales
    # a subset of the shipped LiTS set: a custom split, derived as before and counted as such
    assert "published" not in json.loads((split_folder(tmp_path / "a") / "split.json").read_text())
    capsys.readouterr()
    assert ctbench("splits", "verify", "--workdir", str(tmp_path / "a")) == 0
    assert "(1 custom): 0 problem(s)" in capsys.readouterr().err


def test_shipped_sets_load_their_hashes_verify_and_they_regenerate_byte_for_byte(tmp_path):
    shipped = sorted(SHIPPED_DIR.glob("*.json.gz"))
    assert {p.name for p in shipped} >= {"lits-tumour-present@1.json.gz", "brats2020-segmentation@1.json.gz",
                                         "kits19-segmentation@1.json.gz", "msd-liver@1.json.gz",
                                         "organamnist@1.json.gz"}
    found = published_memberships()
    lits = load_published(shipped_path(TASK, "1"))
    assert found[(TASK, "1")] == lits.split_membership and len(lits.patients()) == 131
    assert len(lits.split.test_patients) == 26 and list(lits.split.pool_strata) == ["all"]
    for seed in (42, 1, 2, 3):  # nested within a seed: 1 % in 10 % in 100 %
        drawn = [set(b.train_patients + b.val_patients) for b in sorted(lits.budgets, key=lambda b: b.scale)
                 if b.seed == seed and b.holdout]
        assert len(drawn) == 3 and drawn[0] <= drawn[1] <= drawn[2]
    spec = importlib.util.spec_from_file_location("make_published", REPO / "scripts" / "make_published_splits.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    ids, origin = script.RELEASES[TASK]
    payload = script.make_set(TASK, ids, None, origin, tmp_path)
    assert gzip.decompress(shipped_path(TASK, "1").read_bytes()).decode() == json.dumps(
        payload, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_an_edited_set_whose_hash_no_longer_matches_is_refused_naming_the_file(tmp_path):
    payload = json.loads(gzip.decompress(shipped_path(TASK, "1").read_bytes()))
    moved = payload["split"]["test_patients"].pop()
    payload["split"]["pool_strata"]["all"].append(moved)
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(payload))
    with pytest.raises(DataError, match=f"{edited}: split_membership differs"):
        load_published(edited)


def test_export_then_import_gives_another_lab_the_same_membership(lits, tmp_path, unshipped, capsys):
    exported = tmp_path / "lits-set.json"
    assert ctbench("splits", "export", TASK, "--data", str(lits), "--workdir", str(tmp_path / "a"), "--seeds", "42,1",
                   "--scales", "1,0.5", "--out", str(exported), "--origin", "lab A") == 0
    text = exported.read_text()
    assert str(lits) not in text and "data_fingerprint" not in text  # nothing of lab A's copy
    assert ctbench("splits", "import", str(exported), "--workdir", str(tmp_path / "b")) == 0
    assert published_memberships(tmp_path / "b")[(TASK, "1")] == json.loads(text)["split_membership"]
    copy = copy_with_new_mtimes(lits, tmp_path / "lab-b" / "LiTS")
    assert make(tmp_path / "b", copy) == 0
    lab_b, lab_a = memberships(tmp_path / "b"), memberships(tmp_path / "a")
    assert len(lab_b) == 5 and lab_b.items() <= lab_a.items()  # lab A's export also drew the -noval budgets
    adopted = json.loads((split_folder(tmp_path / "b") / "split.json").read_text())
    assert adopted["published"] == json.loads(text)["split_membership"]
    capsys.readouterr()
    assert ctbench("splits", "verify", "--workdir", str(tmp_path / "b")) == 0
    assert "1 split(s) checked against a published set (0 custom): 0 problem(s)" in capsys.readouterr().err


def test_splits_verify_names_a_patient_moved_even_with_its_checksum_rewritten(lits, tmp_path, unshipped, capsys):
    exported = tmp_path / "set.json"
    assert ctbench("splits", "export", TASK, "--data", str(lits), "--workdir", str(tmp_path / "w"), "--seeds", "42",
                   "--scales", "1", "--out", str(exported)) == 0
    assert ctbench("splits", "import", str(exported), "--workdir", str(tmp_path / "w")) == 0
    path = split_folder(tmp_path / "w") / "split.json"
    split = json.loads(path.read_text())
    patient = split["test_patients"].pop(0)
    next(iter(split["pool_strata"].values())).append(patient)
    rewrite(path, split)
    capsys.readouterr()
    assert ctbench("splits", "verify", "--workdir", str(tmp_path / "w")) == 1
    out = capsys.readouterr().out
    assert f"patient {patient} moved: pool/" in out and "test in the published split" in out


def test_a_derived_split_with_other_members_is_refused(lits, tmp_path, unshipped, capsys):
    exported = tmp_path / "set.json"
    assert ctbench("splits", "export", TASK, "--data", str(lits), "--workdir", str(tmp_path / "a"), "--seeds", "42",
                   "--scales", "1", "--out", str(exported)) == 0
    other = json.loads(exported.read_text())
    moved = other["split"]["test_patients"].pop(0)
    next(iter(other["split"]["pool_strata"].values())).append(moved)
    other["budgets"] = []
    other["split_membership"] = split_membership({"task": TASK, "task_version": "1", **other["split"]})
    different = tmp_path / "other-set.json"
    different.write_text(json.dumps(other))
    capsys.readouterr()
    assert ctbench("splits", "import", str(different), "--workdir", str(tmp_path / "a")) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "derived with other members" in err[0] and f"patient {moved} moved" in err[0]
    # placed by hand instead of imported: the run refuses the derived manifest rather than overwrite it
    target = tmp_path / "a" / "splits" / "published" / f"{TASK}@1.json"
    target.parent.mkdir(parents=True)
    shutil.copy(different, target)
    assert make(tmp_path / "a", lits) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "derived before the published split" in err[0] and "Traceback" not in err[0]


def test_a_copy_holding_a_patient_the_published_set_lacks_is_refused(lits, tmp_path, unshipped, capsys):
    exported = tmp_path / "set.json"
    assert ctbench("splits", "export", TASK, "--data", str(lits), "--workdir", str(tmp_path / "a"), "--seeds", "42",
                   "--scales", "1", "--out", str(exported)) == 0
    assert ctbench("splits", "import", str(exported), "--workdir", str(tmp_path / "b")) == 0
    bigger = write_lits(tmp_path / "bigger", n_volumes=N_VOLUMES + 1)
    capsys.readouterr()
    assert make(tmp_path / "b", bigger) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and f"holds 1 patient(s) the published split of {TASK} does not list" in err[0]
    assert f"volume-{N_VOLUMES}" in err[0]


def test_an_unreadable_set_is_one_line_without_traceback(tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert ctbench("splits", "import", str(broken), "--workdir", str(tmp_path / "w")) == 2
    err = error_lines(capsys.readouterr().err)
    assert err == [err[0]] and str(broken) in err[0] and "not a readable published split set" in err[0]
    extra = json.loads(gzip.decompress(shipped_path(TASK, "1").read_bytes()))
    extra["lab_path"] = "/home/me/data"
    broken.write_text(json.dumps(extra))
    assert ctbench("splits", "import", str(broken), "--workdir", str(tmp_path / "w")) == 2
    assert "lab_path: Extra inputs are not permitted" in capsys.readouterr().err


def test_a_full_copy_adopts_the_shipped_set_and_verify_names_a_moved_patient(tmp_path, capsys):
    """The acceptance case on the shipped LiTS set: all 131 volumes (tiny ones) take its split and budgets."""
    full = write_lits(tmp_path / "LiTS", n_volumes=131)
    assert ctbench("splits", "make", TASK, "--data", str(full), "--workdir", str(tmp_path / "w"), "--seeds", "42",
                   "--scales", "1,0.1") == 0
    shipped = load_published(shipped_path(TASK, "1"))
    found = memberships(tmp_path / "w")
    assert found["split"] == shipped.split_membership
    assert found["seed42/scale-0.1.json"] == shipped.budget(42, 0.1, "patient", True).budget_membership
    path = split_folder(tmp_path / "w") / "split.json"
    split = json.loads(path.read_text())
    patient = split["pool_strata"]["all"].pop()
    split["test_patients"].append(patient)
    rewrite(path, split)
    capsys.readouterr()
    assert ctbench("splits", "verify", "--workdir", str(tmp_path / "w")) == 1
    assert f"patient {patient} moved: test here, pool/all in the published split" in capsys.readouterr().out
