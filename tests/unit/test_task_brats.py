import gzip
import shutil

import nibabel as nib
import numpy as np
import pytest

import tasks.brats as brats
from benchmark.core.errors import DataError
from benchmark.data.readers.nifti import Volume, read_volume
from benchmark.data.readers.volume import axial_image
from benchmark.evaluation.recipes import study_recipe
from tasks import tasks_of
from tests.fixtures.datasets.cross_domain import BRATS_AFFINE, write_brats2020

TASK = brats.TASK
CASE = "BraTS20_Training_{:03d}"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_brats2020(tmp_path_factory.mktemp("brats"))


@pytest.fixture
def copy(dataset, tmp_path):
    return shutil.copytree(dataset, tmp_path / dataset.name)


def _file(root, n, modality, suffix=".nii.gz"):
    name = CASE.format(n)
    return root / name / f"{name}_{modality}{suffix}"


def _rewrite(path, array, affine=BRATS_AFFINE):
    nib.save(nib.Nifti1Image(array, affine), str(path))


def test_spec_follows_brats_2020_labels_and_regions():
    spec = TASK.spec
    assert tasks_of(brats) == [TASK]
    assert (spec.domain, spec.kind) == ("mri", "segmentation")
    assert spec.class_names == ["background", "necrotic", "edema", "enhancing"]
    assert brats.DISK_TO_CLASS == {0: 0, 1: 1, 2: 2, 4: 3}  # BraTS 2020: 1 NCR/NET, 2 ED, 4 ET; no 3
    assert spec.regions == {"WT": [1, 2, 3], "TC": [1, 3], "ET": [3]}
    assert spec.main_metric == "dice_mean" and {"dice_WT", "dice_TC", "dice_ET"} <= set(spec.metrics)
    assert spec.training == study_recipe("brats")


def test_reads_the_tumour_slices_of_every_patient(dataset):
    cases = list(TASK.cases(dataset))
    assert len(cases) == 40  # 10 patients x the 4 middle slices; the first and last show no tumour
    assert len({c.case_id for c in cases}) == 40
    assert {c.patient_id for c in cases} == {CASE.format(n) for n in range(1, 11)}
    assert {c.case_id.split("#")[1] for c in cases} == {"1", "2", "3", "4"}
    for case in cases:
        assert case.image.shape == (3, 32, 32) and case.image.dtype == np.float32
        assert 0.0 <= case.image.min() and case.image.max() <= 1.0
        assert case.label.shape == (32, 32) and case.label.dtype == np.uint8 and case.label.any()
        assert case.meta["spacing"] == (1.0, 1.0)


def test_label_4_becomes_class_3_and_the_channels_are_t1_t1ce_flair(dataset):
    case = next(c for c in TASK.cases(dataset) if c.case_id.endswith("BraTS20_Training_001#2"))
    on_disk = axial_image(np.asarray(nib.load(str(_file(dataset, 1, "seg"))).dataobj), 2)
    assert set(np.unique(on_disk)) == {0, 1, 2, 4}
    for disk, index in [(0, 0), (1, 1), (2, 2), (4, 3)]:
        assert (case.label[on_disk == disk] == index).all()
    t1, t1ce, flair = case.image
    enhancing, edema = case.label == 3, case.label == 2
    assert t1ce[enhancing].mean() > t1ce[edema].mean() + 0.3  # enhancing tumour lights up with gadolinium
    assert flair[edema].mean() > t1[edema].mean() + 0.3  # edema is bright in FLAIR
    assert t1[case.label == 1].mean() < t1[edema].mean()  # the necrotic core is dark in T1


def test_per_volume_scaling_ignores_each_scanners_gain(dataset):
    volume = read_volume(_file(dataset, 1, "flair"))
    brighter = Volume(volume.path, volume.array * 2.7, volume.affine, volume.spacing)
    scaled = brats.normalise(volume)
    np.testing.assert_allclose(brats.normalise(brighter), scaled, atol=1e-5)
    assert scaled.min() == 0.0 and scaled.max() == 1.0 and (scaled[volume.array == 0] == 0).all()


def test_validate_accepts_the_good_fixture(dataset):
    assert TASK.validate(dataset) == []


def test_validate_names_each_broken_file(copy):
    _file(copy, 2, "seg").unlink()
    seg = np.asarray(nib.load(str(_file(copy, 3, "seg"))).dataobj).copy()
    seg[seg == 4] = 3  # as if already remapped
    _rewrite(_file(copy, 3, "seg"), seg)
    _rewrite(_file(copy, 4, "flair"), np.ones((32, 32, 5), np.int16))
    shifted = BRATS_AFFINE.copy()
    shifted[2, 3] = 5.0
    _rewrite(_file(copy, 5, "t2"), np.asarray(nib.load(str(_file(copy, 5, "t2"))).dataobj), shifted)
    _file(copy, 6, "t1ce").write_bytes(_file(copy, 6, "t1ce").read_bytes()[:200])
    _file(copy, 7, "t1").unlink()

    problems = TASK.validate(copy)
    assert len(problems) == 6, problems
    expected = [("BraTS20_Training_002", "has no BraTS20_Training_002_seg.nii[.gz]"),
                ("BraTS20_Training_003_seg.nii.gz", "label 3, which BraTS 2020 does not use"),
                ("BraTS20_Training_004_flair.nii.gz", "shape (32, 32, 5) differs"),
                ("BraTS20_Training_005_t2.nii.gz", "affine differs"),
                ("BraTS20_Training_006_t1ce.nii.gz", "not a readable NIfTI file"),
                ("BraTS20_Training_007", "has no BraTS20_Training_007_t1.nii[.gz]")]
    for line, (name, message) in zip(problems, expected):
        assert name in line and message in line


def test_labels_outside_brats_2020_are_refused(copy):
    seg = np.asarray(nib.load(str(_file(copy, 1, "seg"))).dataobj).copy()
    seg[0, 0, 0] = 5
    _rewrite(_file(copy, 1, "seg"), seg)
    [problem] = TASK.validate(copy)
    assert "BraTS20_Training_001_seg.nii.gz" in problem and "[5] are outside BraTS 2020's 0, 1, 2, 4" in problem


def test_cases_raises_on_the_first_broken_file(copy):
    _file(copy, 2, "seg").unlink()
    with pytest.raises(DataError, match="BraTS20_Training_002.*has no BraTS20_Training_002_seg"):
        list(TASK.cases(copy))


def test_uncompressed_files_and_case_355s_misnamed_mask_are_read(tmp_path):
    root = write_brats2020(tmp_path, gz=False)
    seg = _file(root, 4, "seg", ".nii")
    seg.rename(seg.with_name("W39_1998.09.19_Segm.nii"))
    assert TASK.validate(root) == []
    assert len(list(TASK.cases(root))) == 40


def test_a_folder_without_cases_is_one_problem(tmp_path):
    (tmp_path / "MICCAI_BraTS2020_ValidationData" / "BraTS20_Validation_001").mkdir(parents=True)
    assert TASK.validate(tmp_path) == [f"{tmp_path}: holds no BraTS20_Training_NNN case folders"]


def test_a_case_found_twice_is_refused(dataset, tmp_path):
    shutil.copytree(dataset / CASE.format(1), tmp_path / "a" / CASE.format(1))
    shutil.copytree(dataset / CASE.format(1), tmp_path / "b" / CASE.format(1))
    [problem] = TASK.validate(tmp_path)
    assert "case BraTS20_Training_001 is found twice" in problem


def test_gzip_is_what_the_official_archive_holds(dataset):
    with gzip.open(_file(dataset, 1, "t1"), "rb") as handle:
        assert handle.read(348)[344:348] == b"n+1\0"  # a single-file NIfTI-1 inside
