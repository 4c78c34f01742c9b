"""Fault matrix, NIfTI: broken volume/mask pairs in the LiTS, MSD, KiTS and BraTS layouts end in one
line that names the file and the problem (exit code 2 through the CLI); none is dropped silently.
The datasets come from ``tests/fixtures/datasets`` (32 x 32 x 5 volumes, a case or two each)."""
import gzip
import re
import zlib

import nibabel as nib
import numpy as np
import pytest

from benchmark.cli.main import main
from benchmark.core.errors import DataError
from benchmark.data.readers.nifti import read_volume
from tasks.brats import TASK as BRATS
from tasks.generic import NiftiFolder
from tasks.kits import KITS19
from tasks.lits import SEGMENTATION as LITS
from tasks.msd import TASKS as MSD_TASKS
from tests.fixtures.datasets.cross_domain import write_brats2020
from tests.fixtures.datasets.nifti_ct import save_nifti, write_kits19, write_lits, write_msd

MSD_COLON = next(t for t in MSD_TASKS if t.spec.name == "msd-colon")  # float32 label files


def _one_problem(task, root, path, why: str) -> str:
    """``task.validate`` reports exactly one line, for ``path``, saying ``why``."""
    problems = task.validate(root)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}: ") and why in problems[0], problems
    with pytest.raises(DataError, match=re.escape(why)):  # and reading the cases stops on it
        list(task.cases(root))
    return problems[0]


def _rewrite(path, array):
    """Same affine, new voxels (and dtype)."""
    save_nifti(array, nib.load(path).affine, path)


def _lits(tmp_path, compress=False):
    root = write_lits(tmp_path / "lits", n_volumes=1, compress=compress)
    suffix = ".nii.gz" if compress else ".nii"
    batch = root / "Training Batch 1"
    return root, batch / f"volume-0{suffix}", batch / f"segmentation-0{suffix}"


# --------------------------------------------------------------------------- shapes that disagree

def test_image_and_mask_shapes_that_disagree_are_refused(tmp_path):
    root, _, mask = _lits(tmp_path)
    _rewrite(mask, np.zeros((32, 32, 4), np.uint8))
    _one_problem(LITS, root, mask, "mask shape (32, 32, 4) differs from image volume-0.nii shape (32, 32, 5)")


# --------------------------------------------------------------------------- mask labels

def test_non_integer_mask_labels_are_refused(tmp_path):
    folder = write_msd(tmp_path, "Task10_Colon", n_cases=1, n_test=0)
    [label] = (folder / "labelsTr").glob("colon_*.nii.gz")
    data = np.asarray(nib.load(label).dataobj, dtype=np.float32)
    data[data > 0] = 0.5  # a resampled (interpolated) mask
    _rewrite(label, data)
    _one_problem(MSD_COLON, folder, label, "mask holds non-integer values")


def test_mask_labels_outside_the_task_label_set_are_refused(tmp_path):
    data_dir = write_kits19(tmp_path, n_cases=1, n_test=0)
    mask = data_dir / "case_00000" / "segmentation.nii.gz"
    data = np.asarray(nib.load(mask).dataobj).copy()
    data[0, 0, 0] = 3  # a KiTS21 cyst in a KiTS19 folder
    _rewrite(mask, data)
    _one_problem(KITS19, data_dir, mask, "mask labels [3] are outside the label set [0, 1, 2]")


# --------------------------------------------------------------------------- empty masks

def _empty_lits(tmp_path):
    root, _, mask = _lits(tmp_path)
    return LITS, root, mask


def _empty_msd(tmp_path):
    folder = write_msd(tmp_path, "Task10_Colon", n_cases=1, n_test=0)
    return MSD_COLON, folder, next((folder / "labelsTr").glob("colon_*.nii.gz"))


def _empty_kits(tmp_path):
    data_dir = write_kits19(tmp_path, n_cases=1, n_test=0)
    return KITS19, data_dir, data_dir / "case_00000" / "segmentation.nii.gz"


def _empty_brats(tmp_path):
    root = write_brats2020(tmp_path, n_patients=1)
    return BRATS, root, root / "BraTS20_Training_001" / "BraTS20_Training_001_seg.nii.gz"


@pytest.mark.parametrize("make", [_empty_lits, _empty_msd, _empty_kits, _empty_brats],
                         ids=["lits", "msd", "kits19", "brats"])
def test_an_empty_mask_is_refused_where_every_case_has_foreground(tmp_path, make):
    """Slice tasks keep the slices with foreground: an all-zero mask would make its volume vanish."""
    task, root, mask = make(tmp_path)
    _rewrite(mask, np.zeros(nib.load(mask).shape, np.uint8))
    _one_problem(task, root, mask, f"mask holds no foreground (every voxel is 0), but every {task.spec.name} "
                                   "case has some")


def test_an_empty_mask_in_a_generic_nifti_folder_is_not_silent(tmp_path):
    foreground = np.zeros((8, 8, 3), np.uint8)
    foreground[2:5, 2:5, 1] = 1
    for case, mask in (("a", foreground), ("b", np.zeros_like(foreground))):
        save_nifti(np.zeros((8, 8, 3), np.int16), np.eye(4), tmp_path / "images" / f"{case}.nii.gz")
        save_nifti(mask, np.eye(4), tmp_path / "masks" / f"{case}.nii.gz")
    assert any("b.nii.gz" in problem for problem in NiftiFolder().validate(tmp_path))


# --------------------------------------------------------------------------- corrupt gzip

def _flip_mid_stream(raw: bytes) -> bytes:
    """Bytes changed inside the deflate stream: zlib may not notice, only gzip's CRC does."""
    middle = len(raw) // 2
    return raw[:middle] + bytes(b ^ 0x55 for b in raw[middle:middle + 4]) + raw[middle + 4:]


CORRUPTIONS = {
    "flipped_bytes": _flip_mid_stream,
    "wrong_crc": lambda raw: raw[:-8] + bytes(4) + raw[-4:],
    "no_trailer": lambda raw: raw[:-8],
    "cut_in_half": lambda raw: raw[:len(raw) // 2],
    "not_gzip": lambda raw: gzip.decompress(raw),  # a plain .nii named .nii.gz
    "empty": lambda raw: b"",
}


@pytest.mark.parametrize("corrupt", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_a_corrupt_gzip_is_refused_naming_the_file(tmp_path, corrupt):
    root, volume, _ = _lits(tmp_path, compress=True)
    volume.write_bytes(corrupt(volume.read_bytes()))
    with pytest.raises(DataError, match="not a readable NIfTI file") as err:
        read_volume(volume)
    assert str(err.value).startswith(f"{volume}: ") and "\n" not in str(err.value)
    _one_problem(LITS, root, volume, "not a readable NIfTI file")


def test_an_intact_gzip_reads_the_same_as_the_plain_file(tmp_path):
    """The CRC check reads the stream to its end; it must not change what is read."""
    _, gz_volume, _ = _lits(tmp_path / "gz", compress=True)
    _, plain_volume, _ = _lits(tmp_path / "plain")
    gz, plain = read_volume(gz_volume), read_volume(plain_volume)
    np.testing.assert_array_equal(gz.array, plain.array)
    assert gz.spacing == plain.spacing and np.array_equal(gz.affine, plain.affine)


def test_a_corrupt_gzip_through_the_cli_exits_2_with_one_line(tmp_path, capsys):
    _, volume, _ = _lits(tmp_path, compress=True)
    raw = volume.read_bytes()
    volume.write_bytes(CORRUPTIONS["wrong_crc"](raw))
    assert main(["data", "inspect", str(volume)]) == 2
    captured = capsys.readouterr()
    true_crc = hex(zlib.crc32(gzip.decompress(raw)))
    assert captured.err.splitlines() == [f"ctbench: error: {volume}: not a readable NIfTI file: corrupt or "
                                         f"cut-short gzip (BadGzipFile: CRC check failed 0x0 != {true_crc})"]
    assert captured.out == ""
