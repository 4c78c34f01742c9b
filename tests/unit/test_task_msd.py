"""Medical Segmentation Decathlon CT adapters on tiny copies of the TaskNN_Name layouts."""
import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from benchmark.core.errors import DataError
from tasks.msd import TASKS
from tests.fixtures.datasets.nifti_ct import MSD_LAYOUTS, case_spacing, msd_case_ids, save_nifti, write_msd

N_CASES = 10
BY_NAME = {task.spec.name: task for task in TASKS}
ALL = sorted(BY_NAME)


@pytest.fixture(scope="module")
def msd(tmp_path_factory):
    """One folder holding all six task folders, as after untarring them side by side."""
    out = tmp_path_factory.mktemp("msd")
    for task in TASKS:
        write_msd(out, task.decathlon.folder, n_cases=N_CASES)
    return out


def _copy(msd, tmp_path, folder):
    return shutil.copytree(msd / folder, tmp_path / folder)


def _edit_index(folder, **changes):
    index = json.loads((folder / "dataset.json").read_text())
    index.update(changes)
    (folder / "dataset.json").write_text(json.dumps(index))


def test_the_six_ct_tasks_are_there():
    assert ALL == ["msd-colon", "msd-hepaticvessel", "msd-liver", "msd-lung", "msd-pancreas", "msd-spleen"]
    assert BY_NAME["msd-hepaticvessel"].spec.class_names == ["background", "vessel", "tumour"]
    assert BY_NAME["msd-colon"].spec.class_names == ["background", "colon_cancer"]
    for task in TASKS:
        spec = task.spec
        assert spec.kind == "segmentation" and spec.main_metric == "dice_mean" and not spec.embedded
        assert len(spec.training.class_weights) == len(spec.class_names)


@pytest.mark.parametrize("name", ALL)
def test_training_cases_are_the_foreground_slices_of_dataset_json(msd, name):
    task = BY_NAME[name]
    layout = MSD_LAYOUTS[task.decathlon.folder]
    cases = list(task.cases(msd / task.decathlon.folder))
    per_case = 2 if layout.tumour_only else 3  # tumours on slices 2-3, organs on 1-3
    assert len(cases) == N_CASES * per_case
    stems = [f"{layout.prefix}_{i:0{layout.pad}d}" if layout.pad else f"{layout.prefix}_{i}"
             for i in msd_case_ids(N_CASES)]
    assert list(dict.fromkeys(c.patient_id for c in cases)) == stems  # case order, though dataset.json is not
    assert cases[0].case_id == f"imagesTr/{stems[0]}.nii.gz#{1 if per_case == 3 else 2}"
    assert not any("._" in c.case_id for c in cases)  # the AppleDouble files are not cases
    for case in cases:
        assert case.image.dtype == np.float32 and case.label.shape == case.image.shape == (32, 32)
        index = stems.index(case.patient_id)
        assert case.meta["spacing"] == pytest.approx((case_spacing(index)[0],) * 2)


@pytest.mark.parametrize("name", ALL)
def test_labels_follow_dataset_json_order(msd, name):
    task = BY_NAME[name]
    layout = MSD_LAYOUTS[task.decathlon.folder]
    cases = list(task.cases(msd))  # the parent folder works too
    images, masks = np.stack([c.image for c in cases]), np.stack([c.label for c in cases])
    assert set(np.unique(masks)) == set(range(len(layout.labels)))
    for label, hu in enumerate(layout.hu):  # each class has its own intensity in the fixture
        assert abs(images[masks == label].mean() - hu) < 5


@pytest.mark.parametrize("name", ALL)
def test_validate_accepts_the_fixture(msd, name):
    task = BY_NAME[name]
    assert list((msd / task.decathlon.folder / "imagesTr").glob("._*"))  # junk is there, and ignored
    assert task.validate(msd / task.decathlon.folder) == []


def test_a_folder_of_another_task_is_refused(msd):
    spleen = BY_NAME["msd-spleen"]
    [problem] = spleen.validate(msd / "Task03_Liver")
    assert problem.startswith(f"{msd / 'Task03_Liver' / 'dataset.json'}: is the dataset.json of MSD task 'Liver'")
    with pytest.raises(DataError, match="not 'Spleen'"):
        list(spleen.cases(msd / "Task03_Liver"))


def test_a_parent_folder_without_the_task_is_named(msd, tmp_path):
    _copy(msd, tmp_path, "Task03_Liver")
    [problem] = BY_NAME["msd-spleen"].validate(tmp_path)
    assert problem == f"{tmp_path}: has no dataset.json; expected the Task09_Spleen folder or the folder holding it"


def test_a_non_ct_modality_is_refused(msd, tmp_path):
    folder = _copy(msd, tmp_path, "Task09_Spleen")
    _edit_index(folder, modality={"0": "MRI"})
    [problem] = BY_NAME["msd-spleen"].validate(folder)
    assert "dataset.json: modality {'0': 'MRI'} is not the single CT channel" in problem


@pytest.mark.parametrize("labels", [{"0": "background", "1": "cancer", "2": "pancreas"},  # swapped
                                    {"0": "background", "1": "pancreas"}])  # one short
def test_labels_that_differ_from_the_task_are_refused(msd, tmp_path, labels):
    folder = _copy(msd, tmp_path, "Task07_Pancreas")
    _edit_index(folder, labels=labels)
    [problem] = BY_NAME["msd-pancreas"].validate(folder)
    assert "dataset.json: labels" in problem and "are not Task07_Pancreas's" in problem


def test_a_missing_or_broken_dataset_json_is_named(msd, tmp_path):
    folder = _copy(msd, tmp_path, "Task06_Lung")
    (folder / "dataset.json").write_text("{not json")
    [problem] = BY_NAME["msd-lung"].validate(folder)
    assert problem.startswith(f"{folder / 'dataset.json'}: not a readable dataset.json")
    (folder / "dataset.json").write_text(json.dumps({"name": "Lung", "modality": {"0": "CT"}}))
    assert BY_NAME["msd-lung"].validate(folder) == [f"{folder / 'dataset.json'}: has no 'training' list of cases"]


def test_validate_names_each_broken_case_once(msd, tmp_path):
    folder = _copy(msd, tmp_path, "Task07_Pancreas")
    (folder / "labelsTr" / "pancreas_004.nii.gz").unlink()
    (folder / "imagesTr" / "pancreas_007.nii.gz").write_bytes(b"\x1f\x8b truncated")
    affine = nib.load(folder / "labelsTr" / "pancreas_010.nii.gz").affine
    save_nifti(np.zeros((32, 32, 3), np.uint8), affine, folder / "labelsTr" / "pancreas_010.nii.gz")
    label = nib.load(folder / "labelsTr" / "pancreas_013.nii.gz")
    data = np.asarray(label.dataobj).copy()
    data[0, 0, 0] = 5
    save_nifti(data, label.affine, folder / "labelsTr" / "pancreas_013.nii.gz")
    problems = BY_NAME["msd-pancreas"].validate(folder)
    assert len(problems) == 4, problems
    expected = {"labelsTr/pancreas_004.nii.gz": "label listed in dataset.json is missing",
                "imagesTr/pancreas_007.nii.gz": "not a readable NIfTI",
                "labelsTr/pancreas_010.nii.gz": "mask shape", "labelsTr/pancreas_013.nii.gz": "labels [5]"}
    for name, why in expected.items():
        [line] = [p for p in problems if f"/{name}:" in p]
        assert why in line
    with pytest.raises(DataError, match=r"labelsTr/pancreas_004\.nii\.gz: label listed in dataset\.json is missing"):
        list(BY_NAME["msd-pancreas"].cases(folder))
