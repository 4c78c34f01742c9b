"""KiTS19 / KiTS21 adapters on tiny copies of the kits19, kits21 and kits23 repository layouts."""
import shutil

import nibabel as nib
import numpy as np
import pytest

from benchmark.core.errors import DataError
from benchmark.core.specs import Preprocessing, Window
from tasks.kits import KITS19, KITS21, KitsTask
from tests.fixtures.datasets.nifti_ct import (
    CENTRE_XY,
    KITS19_HU,
    KITS21_HU,
    ORGAN_SLICES,
    case_spacing,
    save_nifti,
    write_kits19,
    write_kits21,
)

N_CASES = 10


@pytest.fixture(scope="module")
def kits19(tmp_path_factory):
    return write_kits19(tmp_path_factory.mktemp("kits19"), n_cases=N_CASES, n_test=2)


@pytest.fixture(scope="module")
def kits21(tmp_path_factory):
    return write_kits21(tmp_path_factory.mktemp("kits21"), n_cases=N_CASES)


@pytest.fixture(scope="module")
def kits19_cases(kits19):
    return list(KITS19.cases(kits19))


def test_specs_use_the_challenge_labels_and_ranking_regions():
    assert KITS19.spec.class_names == ["background", "kidney", "tumor"]
    assert KITS21.spec.class_names == ["background", "kidney", "tumor", "cyst"]
    assert KITS19.spec.regions == {"kidney_and_tumor": [1, 2], "tumor": [2]}
    assert KITS21.spec.regions == {"kidney_and_mass": [1, 2, 3], "mass": [2, 3], "tumor": [2]}
    for task in (KITS19, KITS21):
        assert task.spec.main_metric == "dice_mean" and not task.spec.embedded
        assert len(task.spec.training.class_weights) == len(task.spec.class_names)


def test_kits19_reads_the_labelled_cases_and_leaves_out_the_test_set(kits19, kits19_cases):
    assert (kits19 / "case_00210" / "imaging.nii.gz").is_file()  # imaging only, as get_imaging leaves it
    assert len(kits19_cases) == N_CASES * len(ORGAN_SLICES)
    assert list(dict.fromkeys(c.patient_id for c in kits19_cases)) == [f"case_{i:05d}" for i in range(N_CASES)]
    assert kits19_cases[0].case_id == "case_00000/imaging.nii.gz#1"


def test_axis_0_is_the_axial_axis(kits19, kits19_cases):
    volume = np.asarray(nib.load(kits19 / "case_00000" / "imaging.nii.gz").dataobj)  # (slices, rows, cols)
    assert volume.shape == (5, 32, 32)
    for case, k in zip(kits19_cases[:3], ORGAN_SLICES):
        assert case.image.shape == (32, 32) and np.array_equal(case.image, volume[k])
    rows, cols = np.nonzero(kits19_cases[0].label)
    assert abs(rows.mean() - CENTRE_XY[1]) < 2 and abs(cols.mean() - CENTRE_XY[0]) < 2
    for case in kits19_cases:  # in-plane spacing, not the slice thickness of axis 0
        assert case.meta["spacing"] == pytest.approx((case_spacing(int(case.patient_id[5:]))[0],) * 2)


def test_kits19_labels_are_kidney_then_tumor(kits19_cases):
    images, masks = np.stack([c.image for c in kits19_cases]), np.stack([c.label for c in kits19_cases])
    assert set(np.unique(masks)) == {0, 1, 2}
    for label, hu in enumerate(KITS19_HU):
        assert abs(images[masks == label].mean() - hu) < 5


def test_the_repository_folder_works_as_dir(kits19, kits19_cases):
    assert [c.case_id for c in KITS19.cases(kits19.parent)] == [c.case_id for c in kits19_cases]


def test_a_test_case_with_a_segmentation_is_read(kits19, tmp_path):
    data = shutil.copytree(kits19, tmp_path / "data")
    mask = np.zeros((5, 32, 32), np.uint8)
    mask[2, 10:20, 10:20] = 1
    case = data / "case_00210"
    save_nifti(mask, nib.load(case / "imaging.nii.gz").affine, case / "segmentation.nii.gz")
    assert [c.case_id for c in KITS19.cases(data)][-1] == "case_00210/imaging.nii.gz#2"


def test_kits21_reads_the_majority_vote_with_cysts(kits21):
    cases = list(KITS21.cases(kits21))
    assert len(cases) == N_CASES * len(ORGAN_SLICES)  # not the OR file's extra slice 0
    images, masks = np.stack([c.image for c in cases]), np.stack([c.label for c in cases])
    assert set(np.unique(masks)) == {0, 1, 2, 3}  # not the AND file, which has no cyst
    for label, hu in enumerate(KITS21_HU):
        assert abs(images[masks == label].mean() - hu) < 5
    assert KITS21.validate(kits21) == []


def test_kits21_reads_the_kits23_layout_and_prefers_segmentation(tmp_path):
    dataset = write_kits21(tmp_path / "kits23", n_cases=N_CASES, layout="kits23")
    assert len(list(KITS21.cases(tmp_path / "kits23"))) == N_CASES * len(ORGAN_SLICES)
    kits21 = write_kits21(tmp_path / "kits21", n_cases=N_CASES)
    shutil.copy(kits21 / "case_00000" / "aggregated_OR_seg.nii.gz", kits21 / "case_00000" / "segmentation.nii.gz")
    assert sum(c.patient_id == "case_00000" for c in KITS21.cases(kits21)) == 4  # the OR copy adds slice 0
    assert KITS21.validate(dataset) == []


def test_kits19_refuses_kits21_data(kits21, tmp_path):
    problems = KITS19.validate(kits21)  # KiTS19 has no aggregated_MAJ_seg.nii.gz
    assert len(problems) == N_CASES and all(p.endswith("has no segmentation.nii.gz") for p in problems)
    dataset = write_kits21(tmp_path, n_cases=N_CASES, layout="kits23")
    problems = KITS19.validate(dataset)  # a cyst (3) is not a KiTS19 label
    assert len(problems) == N_CASES and all("segmentation.nii.gz: mask labels [3] are outside" in p for p in problems)


def test_neighbours_stack_the_adjacent_axial_slices(kits19):
    task = KitsTask("kits19-segmentation", KITS19.edition, "2.5-D")
    task.spec = task.spec.model_copy(update={"preprocessing": Preprocessing(windows=[Window(center=40, width=400)],
                                                                            channels=3, neighbours=1)})
    first = next(iter(task.cases(kits19)))  # case_00000, slice 1
    volume = np.asarray(nib.load(kits19 / "case_00000" / "imaging.nii.gz").dataobj)
    assert first.image.shape == (3, 32, 32)
    assert all(np.array_equal(first.image[c], volume[k]) for c, k in enumerate((0, 1, 2)))


def test_validate_accepts_the_fixture(kits19):
    assert KITS19.validate(kits19) == []


def test_validate_names_each_broken_case_once(kits19, tmp_path):
    data = shutil.copytree(kits19, tmp_path / "data")
    (data / "case_00001" / "segmentation.nii.gz").unlink()
    (data / "case_00002" / "imaging.nii.gz").unlink()
    (data / "case_00003" / "segmentation.nii.gz").write_bytes(b"garbage")
    affine = nib.load(data / "case_00004" / "segmentation.nii.gz").affine
    save_nifti(np.zeros((4, 32, 32), np.uint8), affine, data / "case_00004" / "segmentation.nii.gz")
    problems = KITS19.validate(data)
    assert len(problems) == 4, problems
    expected = {"case_00001:": "has no segmentation.nii.gz", "case_00002/imaging.nii.gz:": "is missing",
                "case_00003/segmentation.nii.gz:": "not a readable NIfTI",
                "case_00004/segmentation.nii.gz:": "mask shape"}
    for name, why in expected.items():
        [line] = [p for p in problems if f"/{name}" in p]
        assert why in line
    with pytest.raises(DataError, match=r"case_00001: has no segmentation\.nii\.gz"):
        list(KITS19.cases(data))


def test_a_folder_without_cases_is_one_problem(tmp_path):
    assert KITS21.validate(tmp_path) == [f"{tmp_path}: holds no KiTS case_XXXXX folders"]
