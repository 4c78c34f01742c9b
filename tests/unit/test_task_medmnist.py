"""MedMNIST v2 organ tasks read MedMNIST's npz files with the official splits."""
import shutil

import numpy as np
import pytest

from benchmark.core.errors import DataError
from tasks.medmnist import TASKS, MedMNISTOrgan
from tests.fixtures.datasets.ct_2d import MEDMNIST_COUNTS, write_medmnist

ORGANA = next(t for t in TASKS if t.spec.name == "organamnist")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_medmnist(tmp_path_factory.mktemp("medmnist") / "data")


def _rewrite(path, **changes):
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    for key in [k for k, v in arrays.items() if v is None]:
        del arrays[key]
    np.savez_compressed(path, **arrays)


def test_class_order_is_medmnist_info():
    # medmnist/info.py INFO["organamnist"]["label"]: pancreas (9) comes before spleen (10).
    expected = ["bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right", "liver",
                "lung-left", "lung-right", "pancreas", "spleen"]
    assert [t.spec.name for t in TASKS] == ["organamnist", "organcmnist", "organsmnist"]
    for task in TASKS:
        assert task.spec.class_names == expected and task.spec.domain == "ct"


def test_every_image_is_read_with_its_label_and_official_split(root):
    for task in TASKS:
        cases = list(task.cases(root))
        assert len(cases) == sum(MEDMNIST_COUNTS.values())
        assert len({c.patient_id for c in cases}) == len(cases)  # no patient ids: one group per image
        assert len({c.case_id for c in cases}) == len(cases)
        for split, n in MEDMNIST_COUNTS.items():
            assert sum(c.meta["split"] == split for c in cases) == n
        with np.load(root / f"{task.spec.name}_64.npz") as npz:
            stored = np.concatenate([npz[f"{s}_labels"][:, 0] for s in ("train", "val", "test")])
            first = npz["train_images"][0]
        assert [c.label for c in cases] == stored.tolist()
        assert cases[0].case_id == f"{task.spec.name}_64.npz/train/0"
        assert cases[0].image.dtype == np.float32 and np.array_equal(cases[0].image, first)  # 64 px beats 28 px


def test_a_size_can_be_pinned_and_a_folder_without_files_is_refused(root, tmp_path):
    small = MedMNISTOrgan("organamnist", size=28)
    assert next(iter(small.cases(root))).image.shape == (28, 28)
    with pytest.raises(DataError, match="holds none of organamnist_224.npz, .*organamnist.npz"):
        ORGANA.units(tmp_path)
    assert len(ORGANA.validate(tmp_path)) == 1


def test_validate_passes_the_fixture(root):
    assert all(task.validate(root) == [] for task in TASKS)


def test_each_broken_split_is_one_line_naming_the_file(root, tmp_path):
    shutil.copytree(root, tmp_path / "d")
    path = tmp_path / "d" / "organamnist_64.npz"
    with np.load(path) as npz:
        labels, val_labels = npz["test_labels"].copy(), npz["val_labels"]
    labels[3] = 11
    _rewrite(path, test_labels=labels, val_labels=val_labels[:-1])
    problems = ORGANA.validate(tmp_path / "d")
    assert len(problems) == 2 and all("organamnist_64.npz" in p for p in problems)
    assert "val_labels has shape (10, 1)" in problems[0] and "test_labels[3] = 11" in problems[1]
    with pytest.raises(DataError, match=r"organamnist_64\.npz: val_labels"):
        list(ORGANA.cases(tmp_path / "d"))


def test_wrong_image_size_missing_array_and_corrupt_archive_are_named(root, tmp_path):
    shutil.copytree(root, tmp_path / "d")
    _rewrite(tmp_path / "d" / "organcmnist_64.npz", train_images=np.zeros((33, 28, 28), np.uint8))
    _rewrite(tmp_path / "d" / "organsmnist_64.npz", val_images=None)
    (tmp_path / "d" / "organamnist_64.npz").write_bytes(b"PK\x03\x04 truncated")
    organc, organs = TASKS[1], TASKS[2]
    assert organc.validate(tmp_path / "d") == [
        f"{tmp_path / 'd' / 'organcmnist_64.npz'}: train_images has shape (33, 28, 28), expected (N, 64, 64)"]
    problems = organs.validate(tmp_path / "d")
    assert len(problems) == 1 and "organsmnist_64.npz: has no array(s) val_images" in problems[0]
    problems = ORGANA.validate(tmp_path / "d")
    assert len(problems) == 1 and "organamnist_64.npz: not a readable npz file" in problems[0]
