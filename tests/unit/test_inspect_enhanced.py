"""`ctbench data inspect` describes an Enhanced CT file as the volume it holds (issue 21 leftover).

An Enhanced CT (one multi-frame file) and the single-frame series it was built from
(``tests/fixtures/datasets/dicom_enhanced.py``) must give the same shape, spacing and HU range,
whether the file itself or a folder holding only it is inspected; the checks a classic series
folder gets (even slice gaps, a CT object) apply to its frames.
"""
import json

import pydicom
import pytest

from benchmark.core.errors import DataError
from benchmark.data.inspect import inspect_path
from tests.cli_helpers import run_cli
from tests.fixtures.datasets.dicom_enhanced import (
    enhanced_ct,
    phantom_volume,
    write_enhanced_ct,
    write_single_frame_series,
)

ZS = [0.0, 5.0, 10.0, 15.0]
SAME_AS_CLASSIC = ("modality", "shape", "spacing", "hu_min", "hu_max", "n_slices", "patient_id", "body_part")


@pytest.fixture
def series(tmp_path):
    return write_single_frame_series(tmp_path / "single", phantom_volume(len(ZS)), ZS)


def _classic(files) -> dict:
    return inspect_path(files[0].parent)


def test_an_enhanced_file_is_described_as_the_volume_of_its_single_frame_twin(tmp_path, series):
    path = write_enhanced_ct(tmp_path / "enhanced" / "ct.dcm", series)
    info = inspect_path(path)
    classic = _classic(series)
    assert classic["shape"] == [4, 32, 32] and classic["spacing"][0] == pytest.approx(5.0)
    assert {k: info[k] for k in SAME_AS_CLASSIC} == {k: classic[k] for k in SAME_AS_CLASSIC}
    assert info["format"] == "dicom-enhanced" and info["path"] == str(path)
    assert info["n_frames"] == 4 and info["n_files"] == 1
    assert info["sop_class"] == "Enhanced CT Image Storage"
    assert info["orientation"] == "axial (normal 0,0,1)"
    assert info["slice_thickness"] == pytest.approx(5.0) and info["z_range"] == [0.0, 15.0]
    assert info["series_uid"] == str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)
    assert (info["hu_min"], info["hu_max"]) == (-1000.0, 3071.0)
    json.dumps(info)  # JSON-ready: plain types only


def test_a_folder_holding_one_enhanced_file_is_a_series_of_its_frames(tmp_path, series):
    folder = tmp_path / "export"
    write_enhanced_ct(folder / "ct.dcm", series)
    info = inspect_path(folder)
    classic = _classic(series)
    assert info["format"] == "dicom-series" and info["path"] == str(folder)
    assert {k: info[k] for k in SAME_AS_CLASSIC} == {k: classic[k] for k in SAME_AS_CLASSIC}
    assert info["n_frames"] == 4 and info["n_files"] == 1
    json.dumps(info)


def test_frames_carrying_their_own_rescale_give_the_same_hu_range(tmp_path):
    files = write_single_frame_series(tmp_path / "single", phantom_volume(len(ZS)), ZS,
                                      intercepts=[-1024, -1000, -2048, 0])
    info = inspect_path(write_enhanced_ct(tmp_path / "enhanced.dcm", files, per_frame_rescale=True))
    classic = _classic(files)
    assert (info["hu_min"], info["hu_max"]) == (classic["hu_min"], classic["hu_max"]) == (-1000.0, 3071.0)


def test_frames_stored_against_the_patient_axis_are_ordered_by_position(tmp_path, series):
    path = write_enhanced_ct(tmp_path / "reversed.dcm", list(reversed(series)))
    info = inspect_path(path)
    assert info["spacing"][0] == pytest.approx(5.0) and info["z_range"] == [0.0, 15.0]


def test_a_missing_frame_is_refused_as_uneven_slice_gaps(tmp_path):
    files = write_single_frame_series(tmp_path / "single", phantom_volume(4), [0.0, 5.0, 10.0, 20.0])
    path = write_enhanced_ct(tmp_path / "gap.dcm", files)
    with pytest.raises(DataError, match="slice gaps are inconsistent") as err:
        inspect_path(path)
    assert str(err.value).startswith(f"{path}: ")


def test_an_enhanced_object_of_another_modality_is_refused_saying_what_it_is(tmp_path, series):
    ds = enhanced_ct(series)
    ds.Modality = "MR"
    path = tmp_path / "mr.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(DataError, match="is not usable as CT, it is an MR image"):
        inspect_path(path)


def test_the_cli_prints_the_enhanced_summary(tmp_path, series):
    path = write_enhanced_ct(tmp_path / "enhanced" / "ct.dcm", series)
    proc = run_cli("data", "inspect", str(path))
    info = json.loads(proc.stdout)
    assert info["format"] == "dicom-enhanced" and info["shape"] == [4, 32, 32]
