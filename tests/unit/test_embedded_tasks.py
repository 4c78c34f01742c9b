"""The embedded tasks read their generated files through the real-data readers."""
import shutil

import nibabel as nib
import numpy as np
import pytest

from benchmark.core.errors import DataError
from benchmark.data.readers.lits import lits_volumes, mask_of
from benchmark.synthetic.natural import NaturalConfig, generate_natural
from benchmark.synthetic.natural.photos import TASK_CLASSES
from tasks.natural_photos import TASK as NATURAL
from tasks.phantom_liver import LESION_PRESENT, SEGMENTATION
from tasks.phantom_region import TASK as BODY_REGION


def test_body_region_labels_come_from_the_dicom_tag(tiny_phantom):
    cases = list(BODY_REGION.cases(tiny_phantom / "dicom"))
    assert len(cases) == 12 * 6 * 3  # patients x regions x slices
    assert {c.label for c in cases} == set(range(6))
    for case in cases[:20]:
        assert case.image.dtype == np.float32 and case.image.min() >= -1024
        assert case.case_id.split("/")[0] == case.patient_id  # the phantom layout puts PatientID first


def test_liver_tasks_share_slices_and_agree_on_lesions(tiny_phantom):
    seg = list(SEGMENTATION.cases(tiny_phantom / "lits"))
    present = list(LESION_PRESENT.cases(tiny_phantom / "lits"))
    assert [c.case_id for c in seg] == [c.case_id for c in present] and seg
    for s, p in zip(seg, present):
        assert s.label.shape == s.image.shape
        assert set(np.unique(s.label)) <= {0, 1, 2} and (s.label > 0).any()  # liver slices only
        assert p.label == int((s.label == 2).any())


def test_a_volume_without_its_mask_is_named(tiny_phantom, tmp_path):
    shutil.copytree(tiny_phantom / "lits", tmp_path / "lits")
    next((tmp_path / "lits").glob("segmentation-*.nii")).unlink()
    with pytest.raises(DataError, match=r"volume-\d+\.nii.*has no matching segmentation"):
        [mask_of(volume) for volume in lits_volumes(tmp_path / "lits")]


def test_a_mask_with_foreign_labels_is_refused(tiny_phantom, tmp_path):
    shutil.copytree(tiny_phantom / "lits", tmp_path / "lits")
    mask_path = next((tmp_path / "lits").glob("segmentation-*.nii"))
    mask = nib.load(mask_path)
    data = np.asarray(mask.dataobj).copy()
    data[0, 0, 0] = 7
    nib.save(nib.Nifti1Image(data, mask.affine), mask_path)
    with pytest.raises(DataError, match=r"labels \[7\]"):
        list(SEGMENTATION.cases(tmp_path / "lits"))


@pytest.fixture(scope="module")
def natural(tmp_path_factory):
    return generate_natural(tmp_path_factory.mktemp("natural") / "ds", NaturalConfig(grid=2, crops_per_block=2,
                                                                                      crop_px=32, n_corpus=5))


def test_natural_images_are_an_image_folder_grouped_by_block(natural):
    cases = list(NATURAL.cases(natural / "images"))
    assert len(cases) == len(TASK_CLASSES) * 4 * 2
    assert {c.label for c in cases} == set(range(len(TASK_CLASSES)))
    assert len({c.patient_id for c in cases}) == len(TASK_CLASSES) * 4  # crops of one block share a group
    assert cases[0].image.shape == (3, 32, 32) and cases[0].image.max() <= 255
    assert len(list((natural / "corpus").glob("*.png"))) == 5


def test_natural_generation_is_byte_identical(natural, tmp_path):
    again = generate_natural(tmp_path / "again", NaturalConfig(grid=2, crops_per_block=2, crop_px=32, n_corpus=5))
    files = sorted(p.relative_to(natural) for p in natural.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((natural / f).read_bytes() == (again / f).read_bytes() for f in files)


def test_an_unknown_class_folder_is_named(natural, tmp_path):
    shutil.copytree(natural / "images", tmp_path / "images")
    (tmp_path / "images" / "cat").rename(tmp_path / "images" / "dog")
    with pytest.raises(DataError, match="'dog' is not a class"):
        list(NATURAL.cases(tmp_path / "images"))
