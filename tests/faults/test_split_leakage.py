"""Data leakage: for every built-in task, ``ctbench splits make`` on a tiny fixture in the dataset's
real layout, then ``ctbench splits verify`` (exit 0) and an independent check that no patient is in two
sets; and tampered manifests that ``verify`` must refuse (exit 1, one line naming the manifest).

The task list comes from the registry, so a new built-in task is covered, or fails here until it
has a fixture in ``DATASETS``/``TASK_DATA``.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Callable

import pytest

from benchmark.catalog.registries import task_registry
from benchmark.cli import main as cli
from benchmark.data.splits import MANIFEST_VERSION
from tests.cli_helpers import run_cli
from tests.fixtures.datasets.cross_domain import write_brats2020, write_chestxray14, write_rsna_ich
from tests.fixtures.datasets.ct_2d import write_deeplesion, write_luna16, write_medmnist
from tests.fixtures.datasets.nifti_ct import write_kits19, write_kits21, write_lits, write_msd

BUILTIN = [entry.name for entry in task_registry() if entry.source.startswith("built-in")]
SEEDS = "42,1"


# ---------------------------------------------------------------- fixtures, one writer per dataset


def write_phantom(out: Path, _: "Datasets") -> Path:
    from benchmark.synthetic.phantom import PhantomConfig, generate_dataset

    return generate_dataset(out, PhantomConfig(seed=3, n_patients=8, n_corpus_patients=1, matrix=32,
                                               slices_per_series=2, n_lits_volumes=6, lits_slices=4))


def write_natural(out: Path, _: "Datasets") -> Path:
    from benchmark.synthetic.natural import NaturalConfig, generate_natural

    generate_natural(out, NaturalConfig(grid=2, crops_per_block=1, crop_px=32, n_corpus=1))
    return out


def write_dicom_folder(out: Path, datasets: "Datasets") -> Path:
    """dicom-folder's layout from the phantom's series: two series (labelled by body region) per patient."""
    source = datasets.get("phantom") / "dicom"
    series = sorted(p.relative_to(source).as_posix() for p in source.glob("*/*") if p.name in ("CHEST", "PELVIS"))
    for name in series:
        shutil.copytree(source / name, out / name)
    (out / "labels.csv").write_text("series,label\n" + "".join(f"{s},{s.split('/')[1].lower()}\n" for s in series))
    return out


def write_nifti_folder(out: Path, datasets: "Datasets") -> Path:
    """nifti-folder's layout (images/, masks/, classes.txt) from the LiTS fixture's volume pairs."""
    for volume in sorted(datasets.get("lits").glob("*/volume-*.nii")):
        case = volume.name.removeprefix("volume-")
        for folder, source in (("images", volume), ("masks", volume.with_name(f"segmentation-{case}"))):
            (out / folder).mkdir(parents=True, exist_ok=True)
            shutil.copy(source, out / folder / f"case-{case}")
    (out / "classes.txt").write_text("background\nliver\ntumour\n")
    return out


def msd(folder: str) -> Callable[[Path, "Datasets"], Path]:
    return lambda out, _: write_msd(out, folder)


DATASETS: dict[str, Callable[[Path, "Datasets"], Path]] = {
    "phantom": write_phantom, "natural": write_natural, "dicom-folder": write_dicom_folder,
    "nifti-folder": write_nifti_folder,
    "lits": lambda out, _: write_lits(out), "kits19": lambda out, _: write_kits19(out),
    "kits21": lambda out, _: write_kits21(out), "medmnist": lambda out, _: write_medmnist(out, sizes=(28,)),
    "deeplesion": lambda out, _: write_deeplesion(out), "luna16": lambda out, _: write_luna16(out, n_scans=6),
    "rsna": lambda out, _: write_rsna_ich(out), "brats": lambda out, _: write_brats2020(out, n_patients=5),
    "chestxray14": lambda out, _: write_chestxray14(out),
    **{f"msd-{name}": msd(folder) for name, folder in (
        ("liver", "Task03_Liver"), ("lung", "Task06_Lung"), ("pancreas", "Task07_Pancreas"),
        ("hepaticvessel", "Task08_HepaticVessel"), ("spleen", "Task09_Spleen"), ("colon", "Task10_Colon"))},
}
TASK_DATA: dict[str, tuple[str, str]] = {  # task -> (dataset, folder inside it)
    "phantom-body-region": ("phantom", "dicom"), "phantom-lesion-present": ("phantom", "lits"),
    "phantom-liver-segmentation": ("phantom", "lits"), "natural-photo-patches": ("natural", "images"),
    "image-folder": ("natural", "images"), "dicom-folder": ("dicom-folder", ""), "nifti-folder": ("nifti-folder", ""),
    "lits-liver-segmentation": ("lits", ""), "lits-tumour-present": ("lits", ""),
    "lits-liver-segmentation-all-slices": ("lits", ""),
    "kits19-segmentation": ("kits19", ""), "kits21-segmentation": ("kits21", ""),
    "organamnist": ("medmnist", ""), "organcmnist": ("medmnist", ""), "organsmnist": ("medmnist", ""),
    "deeplesion-lesion-type": ("deeplesion", ""), "luna16-nodule-patch": ("luna16", ""), "rsna-ich": ("rsna", ""),
    "brats2020-segmentation": ("brats", ""), "chestxray14": ("chestxray14", ""),
    **{f"msd-{name}": (f"msd-{name}", "") for name in
       ("liver", "lung", "pancreas", "hepaticvessel", "spleen", "colon")},
}


class Datasets:
    """Each dataset written on first use, once per module, so ``-k one-task`` writes only its own."""

    def __init__(self, root: Path):
        self.root, self.written = root, {}

    def get(self, name: str) -> Path:
        if name not in self.written:
            self.written[name] = DATASETS[name](self.root / name, self)
        return self.written[name]

    def for_task(self, task: str) -> Path:
        dataset, folder = TASK_DATA[task]
        return self.get(dataset) / folder if folder else self.get(dataset)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> Datasets:
    return Datasets(tmp_path_factory.mktemp("leak-datasets"))


def ctbench(*argv: str) -> int:
    """``ctbench`` in-process: the parser, the error contract and the exit code, without a new interpreter."""
    return cli.main(list(argv))


def split_dir(workdir: Path, task: str) -> Path:
    (found,) = workdir.glob(f"splits/{task}@*/*-m{MANIFEST_VERSION}")
    return found


def assert_no_patient_in_two_sets(folder: Path) -> int:
    """Independently of ``verify``: test and pool are disjoint, and every budget's train and val are
    disjoint and inside the pool. Returns how many budgets were checked."""
    split = json.loads((folder / "split.json").read_text())
    test = set(split["test_patients"])
    pool_lists = [p for members in split["pool_strata"].values() for p in members]
    pool = set(pool_lists)
    assert test and pool and not test & pool and len(pool) == len(pool_lists)
    budgets = sorted(folder.glob("seed*/scale-*.json"))
    for path in budgets:
        budget = json.loads(path.read_text())
        train, val = set(budget["train_patients"]), set(budget["val_patients"])
        assert train and val and not train & val, path
        assert train | val <= pool and not (train | val) & test, path
    return len(budgets)


# ---------------------------------------------------------------- every built-in task


def test_the_built_in_tasks_are_found_and_every_fixture_is_used():
    assert len(BUILTIN) >= 20 and "phantom-body-region" in BUILTIN and "chestxray14" in BUILTIN
    assert not set(TASK_DATA) - set(BUILTIN), "a fixture for a task that no longer exists"
    assert {dataset for dataset, _ in TASK_DATA.values()} | {"lits", "phantom"} == set(DATASETS)


@pytest.mark.parametrize("task", BUILTIN)
def test_splits_make_then_verify_proves_no_patient_is_in_two_sets(task, datasets, tmp_path, capsys):
    assert task in TASK_DATA, f"built-in task {task} has no fixture: add its dataset to TASK_DATA in {__file__}"
    workdir = tmp_path / "work"
    assert ctbench("splits", "make", task, "--data", str(datasets.for_task(task)), "--workdir", str(workdir),
                   "--seeds", SEEDS) == 0, capsys.readouterr().err
    assert ctbench("splits", "verify", "--workdir", str(workdir)) == 0
    out, err = capsys.readouterr()
    assert ": 0 problem(s)" in err and "case counts re-derived for" in err
    checked = assert_no_patient_in_two_sets(split_dir(workdir, task))
    assert checked >= 2 * 3  # two seeds, at least three budgets each


# ---------------------------------------------------------------- tampered manifests


@pytest.fixture(scope="module")
def made(datasets, tmp_path_factory) -> Path:
    """One task's manifests, copied fresh into each tampering test."""
    workdir = tmp_path_factory.mktemp("made") / "work"
    assert ctbench("splits", "make", "phantom-body-region", "--data", str(datasets.for_task("phantom-body-region")),
                   "--workdir", str(workdir), "--seeds", "42") == 0
    return workdir


def tampered(made: Path, tmp_path: Path) -> tuple[Path, Path]:
    workdir = tmp_path / "work"
    shutil.copytree(made, workdir)
    return workdir, split_dir(workdir, "phantom-body-region")


def rewrite(path: Path, edit: Callable[[dict], None], fix_checksum: bool = True) -> None:
    """Edit a manifest; with ``fix_checksum`` its .sha256 is updated too, so only the leak itself can
    give it away (a careful forger, not a stray edit)."""
    payload = json.loads(path.read_text())
    edit(payload)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    if fix_checksum:
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        path.with_name(path.name + ".sha256").write_text(f"{sha}  {path.name}\n")


def test_verify_cli_refuses_a_test_patient_also_in_the_pool(made, tmp_path):
    """The one real subprocess: exit 1, and the problem is one stdout line naming split.json."""
    workdir, folder = tampered(made, tmp_path)
    patient = json.loads((folder / "split.json").read_text())["test_patients"][0]
    rewrite(folder / "split.json", lambda m: next(iter(m["pool_strata"].values())).append(patient))
    proc = run_cli("splits", "verify", "--workdir", str(workdir), check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    expected = f"{folder / 'split.json'}: patient {patient} is both in the test set and in the pool"
    assert expected in proc.stdout.splitlines()


def test_verify_refuses_a_patient_in_training_and_validation(made, tmp_path, capsys):
    workdir, folder = tampered(made, tmp_path)
    budget = folder / "seed42" / "scale-0.5.json"
    patient = json.loads(budget.read_text())["val_patients"][0]
    rewrite(budget, lambda m: m["train_patients"].append(patient))
    assert ctbench("splits", "verify", "--workdir", str(workdir)) == 1
    lines = capsys.readouterr().out.splitlines()
    assert f"{budget}: patient {patient} is both in training and validation" in lines


@pytest.mark.parametrize("checksum", ["kept", "deleted"])
def test_verify_refuses_an_edit_that_only_the_checksum_gives_away(checksum, made, tmp_path, capsys):
    """A harmless-looking edit (no leak, counts intact) is still refused; deleting the .sha256 beside
    the manifest does not hide it."""
    workdir, folder = tampered(made, tmp_path)
    split = folder / "split.json"
    rewrite(split, lambda m: m.update(stratified=not m["stratified"]), fix_checksum=False)
    if checksum == "deleted":
        split.with_name("split.json.sha256").unlink()
    assert ctbench("splits", "verify", "--workdir", str(workdir)) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"{split}: ") and "split.json.sha256" in line for line in lines), lines


@pytest.mark.parametrize("damage", ["truncated", "missing-key", "wrong-type"])
def test_verify_names_a_broken_manifest_in_one_line_without_a_traceback(damage, made, tmp_path, capsys):
    workdir, folder = tampered(made, tmp_path)
    target = folder / ("split.json" if damage == "missing-key" else "seed42/scale-0.1.json")
    if damage == "truncated":
        target.write_text(target.read_text()[:40])
    elif damage == "missing-key":
        rewrite(target, lambda m: m.pop("pool_strata"))
    else:
        rewrite(target, lambda m: m.update(train_patients=7))
    assert ctbench("splits", "verify", "--workdir", str(workdir)) == 1
    out, err = capsys.readouterr()
    assert any(line.startswith(f"{target}: ") for line in out.splitlines()), out
    assert "Traceback" not in err
