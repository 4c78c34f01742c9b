"""LUNA16 candidates: world mm to voxels through origin, spacing and direction, 2-D patches."""
import random
import shutil
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from benchmark.core.errors import DataError
from benchmark.core.specs import Preprocessing, Window
from tasks.luna16 import (
    NEGATIVES_PER_NODULE,
    TASK,
    Luna16NodulePatch,
    _parse_candidates,
    read_scan,
    subsample,
    world_to_voxel,
)
from tests.fixtures.datasets.ct_2d import FLIPPED, luna_origin, luna_uid, write_luna16


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_luna16(tmp_path_factory.mktemp("luna16") / "data")


def _scan(root, n):
    return root / f"subset{n % 3}" / f"{luna_uid(n)}.mhd"


def test_candidates_become_patches_with_subsampled_negatives(root):
    cases = list(TASK.cases(root))
    nodules = [c for c in cases if c.label == 1]
    assert len(nodules) == 12 and len(cases) - len(nodules) == 160  # scan n: n % 3 nodules, 10 or 20 negatives
    assert len({c.patient_id for c in cases}) == 12 and len({c.case_id for c in cases}) == len(cases)
    per_scan = Counter((c.patient_id, c.label) for c in cases)
    for n in range(12):
        assert per_scan[(luna_uid(n), 1)] == n % 3
        assert per_scan[(luna_uid(n), 0)] == NEGATIVES_PER_NODULE * max(1, n % 3)
    for case in cases:
        assert case.image.shape == (20, 20) and case.meta == {"spacing": (2.5, 2.5)}  # 50 mm at 2.5 mm
        centre = case.image[10, 10]
        assert (centre > -100) if case.label else (centre < -700)  # a ball of 60 HU in -850 HU lung


def test_world_to_voxel_uses_origin_spacing_and_direction(root):
    scan = _scan(root, 1)  # a flipped direction, origin far from zero
    image = read_scan(scan)
    assert image.GetDirection() == FLIPPED and image.GetOrigin() == luna_origin(1)
    table = pd.read_csv(root / "candidates_V2.csv")
    row = table[(table.seriesuid == luna_uid(1)) & (table["class"] == 1)].iloc[0]
    world = np.array([row.coordX, row.coordY, row.coordZ])
    direction = np.array(FLIPPED).reshape(3, 3)
    explicit = np.linalg.solve(direction, world - np.array(luna_origin(1))) / np.array(image.GetSpacing())
    assert world_to_voxel(image, tuple(world), scan, 2) == tuple(np.rint(explicit).astype(int)) == (8, 10, 2)
    naive = (world - np.array(luna_origin(1))) / np.array(image.GetSpacing())
    assert naive[0] < 0  # ignoring the direction would put the nodule outside the scan


def test_negative_subsampling_ignores_row_order(root):
    candidates = _parse_candidates(root / "candidates_V2.csv", 0, 0)[luna_uid(2)]
    shuffled = candidates[:]
    random.Random(0).shuffle(shuffled)
    assert subsample(shuffled) == subsample(candidates)
    assert len(subsample(candidates)) == 2 + 2 * NEGATIVES_PER_NODULE


def test_validate_passes_the_fixture(root):
    assert TASK.validate(root) == []


def test_neighbouring_slices_become_channels(root):
    task = Luna16NodulePatch()
    task.spec = TASK.spec.model_copy(update={"preprocessing": Preprocessing(
        windows=[Window(center=-600, width=1500)], neighbours=1)})
    case = next(iter(task.cases(root)))
    assert case.image.shape == (3, 20, 20)
    assert np.array_equal(case.image[1], next(iter(TASK.cases(root))).image)


def test_each_broken_scan_is_one_line_naming_it(root, tmp_path):
    data = shutil.copytree(root, tmp_path / "d")
    _scan(data, 0).with_suffix(".raw").unlink()
    short = _scan(data, 5).with_suffix(".raw")
    short.write_bytes(short.read_bytes()[:100])
    oblique = sitk.ReadImage(str(_scan(data, 3)))
    oblique.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, 1))
    sitk.WriteImage(oblique, str(_scan(data, 3)))
    with open(data / "candidates_V2.csv", "a") as handle:
        handle.write(f"{luna_uid(4)},900.5,-100.0,-300.0,0\n")  # beyond scan 4's x extent
    problems = TASK.validate(data)
    assert len(problems) == 4
    assert problems[0] == f"{_scan(data, 0)}: its data file {luna_uid(0)}.raw is missing"
    assert problems[1].startswith(f"{_scan(data, 3)}: direction [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]")
    assert problems[2].startswith(f"{_scan(data, 4)}: candidate on line 314 at (900.5, -100.0, -300.0) mm")
    assert problems[3] == f"{short}: is 100 bytes, the header's (40, 36, 8) voxels need 23040"
    with pytest.raises(DataError, match=r"\.mhd: its data file .*\.raw is missing"):
        list(TASK.cases(data))


def test_candidate_list_problems_are_named(root, tmp_path):
    data = shutil.copytree(root, tmp_path / "d")
    table = (data / "candidates_V2.csv").read_text().replace(",1\n", ",2\n", 1)
    (data / "candidates_V2.csv").write_text(table)
    problems = TASK.validate(data)
    assert len(problems) == 1 and "candidates_V2.csv: line " in problems[0] and "class '2' is not 0 or 1" in problems[0]
    (data / "candidates_V2.csv").unlink()
    with pytest.raises(DataError, match="has no candidates_V2.csv or candidates_V2/candidates_V2.csv"):
        TASK.units(data)
    nested = data / "candidates_V2"
    nested.mkdir()
    shutil.copy(root / "candidates_V2.csv", nested / "candidates_V2.csv")
    assert len(TASK.units(data)) == 12
