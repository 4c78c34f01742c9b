"""Fault matrix, other inputs: a MedMNIST archive missing an array, and label tables that name
files which are not there. Each ends in one line naming the file and the problem, exit code 2
through ``ctbench tasks validate``; no listed case is skipped silently."""
import csv

import numpy as np
import pytest

from benchmark.cli.main import main
from benchmark.core.errors import DataError
from tasks.chestxray import TASK as CHESTXRAY
from tasks.deeplesion import TASK as DEEPLESION
from tasks.generic import DicomFolder
from tasks.medmnist import TASKS as MEDMNIST_TASKS
from tasks.rsna_ich import TASK as RSNA
from tests.fixtures.datasets.cross_domain import rsna_image_id, write_chestxray14, write_rsna_ich
from tests.fixtures.datasets.ct_2d import write_deeplesion, write_medmnist
from tests.fixtures.datasets.dicom_ct import write_ct_series

ORGANA = next(t for t in MEDMNIST_TASKS if t.spec.name == "organamnist")


def _validate_cli(capsys, task: str, root) -> tuple[list[str], list[str]]:
    """``ctbench tasks validate``: exit 2, the problems on stdout, one summary line on stderr."""
    assert main(["tasks", "validate", task, "--data", str(root)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert err == [f"{len(captured.out.splitlines())} problem(s) in {root} for task {task}"]
    return captured.out.splitlines(), err


# --------------------------------------------------------------------------- MedMNIST npz

@pytest.mark.parametrize("key", ["val_labels", "test_images"])
def test_medmnist_npz_missing_a_key_is_refused_naming_the_file_and_the_key(tmp_path, capsys, key):
    root = write_medmnist(tmp_path, flags=("organamnist",), sizes=(28,), counts={"train": 2, "val": 1, "test": 1})
    path = root / "organamnist.npz"
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files if k != key}
    np.savez_compressed(path, **arrays)
    with pytest.raises(DataError, match=f"has no array\\(s\\) {key} ") as err:
        list(ORGANA.cases(root))
    assert str(err.value).startswith(f"{path}: ")
    problems, _ = _validate_cli(capsys, "organamnist", root)
    assert len(problems) == 1 and problems[0].startswith(f"{path}: has no array(s) {key} (holds ")


# --------------------------------------------------------------------------- label tables naming absent files

def _rsna(tmp_path):
    root = write_rsna_ich(tmp_path, n_patients=2, slices_per_patient=2, repeat_rows=False)
    missing = rsna_image_id(1, 1)
    (root / "stage_2_train" / f"{missing}.dcm").unlink()
    return RSNA, root, root / "stage_2_train.csv", missing


def _chestxray(tmp_path):
    root = write_chestxray14(tmp_path, n_patients=2, images_per_patient=2, n_test_patients=1)
    (root / "images" / "00000002_001.png").unlink()
    return CHESTXRAY, root, root / "Data_Entry_2017.csv", "00000002_001.png"


def _deeplesion(tmp_path):
    root = write_deeplesion(tmp_path, n_patients=4)
    missing = root / "Images_png" / "000003_01_01" / "005.png"  # a key slice
    missing.unlink()
    return DEEPLESION, root, missing, "(listed in DL_info.csv)"


def _dicom_folder(tmp_path):
    write_ct_series(tmp_path / "present", np.zeros((16, 16)), [0, 5])
    with open(tmp_path / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("series", "label"), ("present", "a"), ("absent", "b")])
    return DicomFolder(), tmp_path, tmp_path / "absent", "labels.csv names series 'absent'"


@pytest.mark.parametrize("make", [_rsna, _chestxray, _deeplesion, _dicom_folder],
                         ids=["rsna-ich", "chestxray14", "deeplesion", "dicom-folder"])
def test_a_labels_csv_naming_absent_files_is_refused(tmp_path, capsys, make):
    """The line names the file to fix (the CSV, or the absent file it lists) and what is absent."""
    task, root, named, what = make(tmp_path)
    with pytest.raises(DataError) as err:
        list(task.cases(root))
    assert str(err.value).startswith(f"{named}: ") and what in str(err.value)
    problems, _ = _validate_cli(capsys, task.spec.name, root)
    assert problems == [str(err.value)]
