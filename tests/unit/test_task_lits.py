"""LiTS 2017 adapters on a tiny copy of the real training layout (Training Batch 1/2)."""
import shutil

import nibabel as nib
import numpy as np
import pytest

from benchmark.core.errors import DataError
from benchmark.core.specs import Preprocessing, Window
from tasks.lits import SEGMENTATION, TUMOUR_PRESENT, LitsLiverSegmentation
from tests.fixtures.datasets.nifti_ct import (
    CENTRE_XY,
    LESION_SLICES,
    LITS_HU,
    ORGAN_SLICES,
    case_spacing,
    lits_has_tumour,
    save_nifti,
    write_lits,
)

N_VOLUMES = 12


@pytest.fixture(scope="module")
def lits(tmp_path_factory):
    return write_lits(tmp_path_factory.mktemp("lits") / "LITS17", n_volumes=N_VOLUMES)


@pytest.fixture(scope="module")
def seg_cases(lits):
    return list(SEGMENTATION.cases(lits))


def test_specs_are_the_real_data_tasks():
    assert SEGMENTATION.spec.class_names == ["background", "liver", "tumour"]
    assert SEGMENTATION.spec.main_metric == "dice_mean" and SEGMENTATION.spec.training.class_weights == [1, 3, 10]
    assert TUMOUR_PRESENT.spec.kind == "classification" and TUMOUR_PRESENT.spec.main_metric == "auc"
    assert TUMOUR_PRESENT.spec.training.class_weights is None
    assert not SEGMENTATION.spec.embedded and not TUMOUR_PRESENT.spec.embedded


def test_every_liver_slice_of_both_batches_is_a_case(seg_cases):
    assert len(seg_cases) == N_VOLUMES * len(ORGAN_SLICES)  # slices 0 and 4 hold no liver
    assert len({c.patient_id for c in seg_cases}) == N_VOLUMES
    assert seg_cases[0].case_id == "Training Batch 1/volume-0.nii#1" and seg_cases[0].patient_id == "volume-0"
    assert seg_cases[-1].case_id == f"Training Batch 2/volume-{N_VOLUMES - 1}.nii#3"
    for case in seg_cases:
        assert case.image.dtype == np.float32 and case.image.shape == case.label.shape == (32, 32)
        assert case.label.dtype == np.uint8 and (case.label == 1).any()


def test_labels_are_lits_order_liver_then_tumour(seg_cases):
    images = np.stack([c.image for c in seg_cases])
    masks = np.stack([c.label for c in seg_cases])
    assert set(np.unique(masks)) == {0, 1, 2}
    for label, hu in enumerate(LITS_HU):  # the fixture draws liver at 60 HU, tumour at 120 HU
        assert abs(images[masks == label].mean() - hu) < 5


def test_slices_are_rows_y_columns_x_with_their_spacing(seg_cases):
    rows, cols = np.nonzero(seg_cases[0].label)
    assert abs(rows.mean() - CENTRE_XY[1]) < 2 and abs(cols.mean() - CENTRE_XY[0]) < 2
    for case in seg_cases:
        volume = int(case.patient_id.split("-")[1])
        assert case.meta["spacing"] == pytest.approx((case_spacing(volume)[0],) * 2)


def test_tumour_present_labels_the_same_slices(lits, seg_cases):
    present = list(TUMOUR_PRESENT.cases(lits))
    assert [c.case_id for c in present] == [c.case_id for c in seg_cases]
    assert [c.label for c in present] == [int((c.label == 2).any()) for c in seg_cases]
    n_tumour_volumes = sum(lits_has_tumour(i) for i in range(N_VOLUMES))
    assert sum(c.label for c in present) == n_tumour_volumes * len(LESION_SLICES)


def test_compressed_copies_read_the_same(tmp_path):
    plain = list(SEGMENTATION.cases(write_lits(tmp_path / "plain", n_volumes=2)))
    packed = list(SEGMENTATION.cases(write_lits(tmp_path / "packed", n_volumes=2, compress=True)))
    assert [c.case_id.replace(".nii.gz", ".nii") for c in packed] == [c.case_id for c in plain]
    assert all(np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label) for a, b in zip(plain, packed))


def test_neighbours_stack_the_adjacent_slices(lits, seg_cases):
    task = LitsLiverSegmentation()
    task.spec = task.spec.model_copy(update={"preprocessing": Preprocessing(windows=[Window(center=60, width=200)],
                                                                            channels=3, neighbours=1)})
    first = next(iter(task.cases(lits)))  # volume-0, slice 1
    volume = np.asarray(nib.load(lits / "Training Batch 1" / "volume-0.nii").dataobj, dtype=np.float32)
    assert first.image.shape == (3, 32, 32) and first.label.shape == (32, 32)
    for channel, k in enumerate((0, 1, 2)):
        assert np.array_equal(first.image[channel], volume[:, :, k].T)
    assert np.array_equal(first.image[1], seg_cases[0].image)


def test_validate_accepts_the_fixture(lits):
    assert SEGMENTATION.validate(lits) == [] and TUMOUR_PRESENT.validate(lits) == []


@pytest.fixture
def broken(lits, tmp_path):
    """Four broken volumes, one problem each."""
    root = shutil.copytree(lits, tmp_path / "LITS17")
    batch1, batch2 = root / "Training Batch 1", root / "Training Batch 2"
    (batch1 / "segmentation-1.nii").unlink()
    (batch1 / "volume-2.nii").write_bytes(b"not a nifti file")
    affine = nib.load(batch1 / "segmentation-3.nii").affine
    save_nifti(np.zeros((32, 32, 4), np.uint8), affine, batch1 / "segmentation-3.nii")
    mask = nib.load(batch2 / "segmentation-6.nii")
    data = np.asarray(mask.dataobj).copy()
    data[0, 0, 2] = 7
    save_nifti(data, mask.affine, batch2 / "segmentation-6.nii")
    return root


def test_validate_names_each_broken_file_once(broken):
    problems = SEGMENTATION.validate(broken)
    assert len(problems) == 4, problems
    expected = {"volume-1.nii": "has no matching segmentation-1.nii", "volume-2.nii": "not a readable NIfTI",
                "segmentation-3.nii": "mask shape", "segmentation-6.nii": "labels [7]"}
    for name, why in expected.items():
        [line] = [p for p in problems if f"/{name}:" in p]
        assert why in line


def test_cases_stop_at_the_first_broken_file(broken):
    with pytest.raises(DataError, match=r"volume-1\.nii: has no matching segmentation-1\.nii"):
        list(TUMOUR_PRESENT.cases(broken))


def test_a_folder_without_volumes_is_one_problem(tmp_path):
    assert SEGMENTATION.validate(tmp_path) == [f"{tmp_path}: holds no LiTS volume-N.nii files"]
