"""`data inspect` says what a DICOM object is when it is not a CT slice (issue 21, item 5).

pydicom's own test files are real objects from real devices (an MR image, a DICOM-SEG, two
CT localizers in different planes); they are used where installed and skipped otherwise.
"""
from pathlib import Path

import numpy as np
import pydicom
import pytest

from benchmark.cli.main import main
from benchmark.core.errors import DataError
from benchmark.data.inspect import inspect_path
from benchmark.data.readers.dicom import read_ct_slice
from tests.cli_helpers import run_cli
from tests.fixtures.datasets.dicom_ct import write_ct_series, write_ct_slice
from tests.fixtures.pydicom_testdata import pydicom_testdata


def _localizers() -> Path:
    folder = pydicom_testdata("CT_small.dcm").parent / "dicomdirtests" / "98892001" / "CT2N"
    if not folder.is_dir():
        pytest.skip("pydicom's dicomdirtests/98892001/CT2N folder is not installed")
    return folder


def _refused_by_inspect(path: Path, match: str) -> str:
    with pytest.raises(DataError, match=match) as err:
        inspect_path(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


def test_an_mr_image_is_described_not_blamed_for_its_rescale():
    path = pydicom_testdata("MR_small.dcm")
    message = _refused_by_inspect(path, "is not usable as CT, it is an MR image: modality is 'MR', expected 'CT'")
    for part in ("SOP class MR Image Storage", "Modality MR", "1 frame(s) of 64 x 64", "orientation axial",
                 "ImageType DERIVED\\SECONDARY\\OTHER"):
        assert part in message
    assert "RescaleSlope" not in message


def test_a_segmentation_is_named_as_a_non_image_object():
    path = pydicom_testdata("liver_1frame.dcm")
    message = _refused_by_inspect(path, "it is a Segmentation Storage object, not an image")
    assert "Modality SEG" in message and "512 x 512" in message


def test_a_ct_task_still_refuses_a_non_ct_object_saying_what_it_is():
    path = pydicom_testdata("liver_1frame.dcm")
    with pytest.raises(DataError, match="Segmentation Storage object, not an image"):
        read_ct_slice(path)


def test_localizers_in_two_planes_are_named_as_mixed_orientations_not_slice_gaps():
    folder = _localizers()
    message = _refused_by_inspect(folder, "mixes 2 orientations")
    assert "sagittal (normal 1,0,0) in 1 file(s)" in message and "coronal (normal 0,1,0) in 1 file(s)" in message
    assert "ImageType LOCALIZER" in message and "not an axial volume" in message
    assert "slice gaps" not in message


def test_mixed_orientations_without_localizers_do_not_mention_them(tmp_path):
    files = write_ct_series(tmp_path / "series", np.zeros((16, 16)), [0, 5])
    ds = pydicom.dcmread(files[1])
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "0", "-1"]
    ds.save_as(files[1])
    message = _refused_by_inspect(tmp_path / "series", "mixes 2 orientations")
    assert "axial (normal 0,0,1) in 1 file(s)" in message and "coronal" in message
    assert "LOCALIZER" not in message


def test_a_real_ct_slice_still_inspects():
    summary = inspect_path(pydicom_testdata("CT_small.dcm"))
    assert summary["modality"] == "CT" and summary["shape"] == [128, 128]


def _widened(tmp_path, value: int) -> Path:
    """CT_small declaring BitsStored 12 while one stored value needs more bits."""
    ds = pydicom.dcmread(pydicom_testdata("CT_small.dcm"))
    words = np.frombuffer(ds.PixelData, dtype="<i2").copy()
    words[0] = value
    ds.BitsStored, ds.HighBit = 12, 11
    ds.PixelData = words.tobytes()
    path = tmp_path / "wide.dcm"
    ds.save_as(path)
    return path


@pytest.mark.parametrize("value, span", [(5000, "values up to 5000"), (-3000, "values down to -3000")])
def test_values_wider_than_bits_stored_are_refused_naming_the_file(tmp_path, value, span):
    path = _widened(tmp_path, value)
    with pytest.raises(DataError, match=f"BitsStored 12 but {span}: the file's pixel data is wider than it declares"
                       ) as err:
        read_ct_slice(path)
    assert str(err.value).startswith(f"{path}: ")


@pytest.mark.parametrize("signed", [True, False])
def test_twelve_bit_values_within_their_bits_still_read(tmp_path, signed):
    """Signed 12-bit values with the high bits left at zero (as some scanners write) are valid."""
    stored = np.full((16, 16), -1000 if signed else 3000)
    hu, _ = read_ct_slice(write_ct_slice(tmp_path / "ok.dcm", stored, signed=signed, bits_stored=12))
    assert np.all(hu == stored)


def test_the_cli_prints_one_line_and_exits_2_for_an_mr_image():
    path = pydicom_testdata("MR_small.dcm")
    proc = run_cli("data", "inspect", str(path), check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"ctbench: error: {path}: is not usable as CT, it is an MR image")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("which", ["seg", "localizers", "wide"])
def test_the_cli_refusals_are_one_line_in_process(tmp_path, capsys, which):
    path = {"seg": lambda: pydicom_testdata("liver_1frame.dcm"), "localizers": _localizers,
            "wide": lambda: _widened(tmp_path, 5000)}[which]()
    code = main(["data", "inspect", str(path)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    [line] = captured.err.strip().splitlines()
    assert line.startswith(f"ctbench: error: {path}: ") and "Traceback" not in captured.err
