"""DeepLesion key slices: 16-bit PNGs to HU, coarse lesion types from DL_info.csv."""
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from benchmark.core.errors import DataError
from benchmark.core.specs import Preprocessing, Window
from tasks.deeplesion import TASK, DeepLesionLesionType
from tests.fixtures.datasets.ct_2d import deeplesion_plan, write_deeplesion


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_deeplesion(tmp_path_factory.mktemp("deeplesion") / "data")


def test_class_order_follows_the_coarse_lesion_type_codes():
    # DeepLesion README / Yan et al. 2018: 1 bone, 2 abdomen, 3 mediastinum, 4 liver, 5 lung,
    # 6 kidney, 7 soft tissue, 8 pelvis; the label is the code minus one.
    assert TASK.spec.class_names == ["bone", "abdomen", "mediastinum", "liver", "lung", "kidney", "soft_tissue",
                                     "pelvis"]


def test_labelled_key_slices_become_cases(root):
    cases = list(TASK.cases(root))
    # patients 3-14, two key slices each; the unlabelled train patients 1-2 and patient 10's
    # slice with disagreeing types are left out, patient 4's two same-type lesions are one case
    assert len(cases) == 24 and len({c.case_id for c in cases}) == 24
    assert sorted({c.patient_id for c in cases}) == [f"{p:06d}" for p in range(3, 15)]
    assert "Images_png/000010_01_01/006.png" not in {c.case_id for c in cases}
    assert np.bincount([c.label for c in cases]).tolist() == [3] * 8
    splits = {c.patient_id: c.meta["split"] for c in cases}
    assert [p for p, s in splits.items() if s == "test"] == ["000011", "000012", "000013", "000014"]
    assert set(splits.values()) == {"val", "test"}
    codes = {(r["patient"], r["key"]): r["code"] for r in deeplesion_plan() if r["lesion"] == 0}
    for case in cases:
        patient, key = int(case.patient_id), int(case.case_id[-7:-4])
        assert case.label == codes[(patient, key)] - 1
        assert case.image.shape == (32, 32) and case.image.dtype == np.float32
        assert case.image.min() < -950  # air: pixel - 32768, not the raw 16-bit value
        assert abs(case.image[19, 14] - (-700 + 180 * (case.label + 1))) < 60  # the lesion's HU encodes its type
        assert case.meta["spacing"] == (0.7, 0.8)  # Spacing_mm_px_ is x, y; spacing is rows, cols


def test_validate_passes_the_fixture(root):
    assert TASK.validate(root) == []


def test_neighbouring_slices_become_channels(root):
    task = DeepLesionLesionType()
    task.spec = TASK.spec.model_copy(update={"preprocessing": Preprocessing(
        windows=[Window(center=40, width=400)], neighbours=1)})
    case = next(iter(task.cases(root)))
    assert case.image.shape == (3, 32, 32)
    assert np.array_equal(case.image[1], next(iter(TASK.cases(root))).image)


def test_each_broken_png_is_one_line_naming_it(root, tmp_path):
    data = shutil.copytree(root, tmp_path / "d")
    png = data / "Images_png"
    (png / "000003_01_01" / "005.png").unlink()
    hu8 = np.asarray(Image.open(png / "000005_01_01" / "005.png")) // 256
    Image.fromarray(hu8.astype(np.uint8)).save(png / "000005_01_01" / "005.png")
    (png / "000007_01_01" / "007.png").write_bytes((png / "000007_01_01" / "007.png").read_bytes()[:60])
    Image.fromarray(np.full((30, 32), 32768, np.uint16)).save(png / "000012_01_01" / "005.png")
    problems = TASK.validate(data)
    assert len(problems) == 4
    assert problems[0].startswith(f"{png / '000003_01_01' / '005.png'}: is missing")
    assert problems[1].startswith(f"{png / '000005_01_01' / '005.png'}: is a PNG image of mode 'L'")
    assert problems[2].startswith(f"{png / '000007_01_01' / '007.png'}: not a readable PNG")
    assert problems[3] == f"{png / '000012_01_01' / '005.png'}: is 32x30 pixels, DL_info.csv says 32x32"
    with pytest.raises(DataError, match=r"000003_01_01/005\.png: is missing"):
        list(TASK.cases(data))


def test_index_problems_are_named(root, tmp_path):
    data = shutil.copytree(root, tmp_path / "d")
    index = data / "DL_info.csv"
    lines = index.read_text().splitlines()
    lines[5] = re.sub(r'0\.5",\d,0,', '0.5",9,0,', lines[5])  # Coarse_lesion_type 9 on line 6
    index.write_text("\n".join(lines) + "\n")
    assert TASK.validate(data) == [f"{index}: line 6: Coarse_lesion_type 9 is not -1 or 1..8"]
    index.unlink()
    with pytest.raises(DataError, match="has no DL_info.csv"):
        list(TASK.cases(data))
