import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from benchmark.core.errors import DataError
from benchmark.data.readers.dicom import iter_dicom_files, read_ct_slice

CT_SMALL = get_testdata_file("CT_small.dcm")


def test_real_ct_slice_converts_to_hounsfield_units():
    hu, ds = read_ct_slice(CT_SMALL)
    assert hu.dtype == np.float32 and hu.shape == (128, 128)
    expected = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(hu, expected)
    assert -1024 <= hu.min() < 0 < hu.max() <= 3071  # air/fat below water, bone above


def test_missing_rescale_tags_are_refused_naming_the_file(tmp_path):
    ds = pydicom.dcmread(CT_SMALL)
    del ds.RescaleIntercept
    path = tmp_path / "no-rescale.dcm"
    ds.save_as(path)
    with pytest.raises(DataError, match="no-rescale.dcm.*RescaleSlope/RescaleIntercept"):
        read_ct_slice(path)


def test_non_ct_modality_is_refused(tmp_path):
    ds = pydicom.dcmread(CT_SMALL)
    ds.Modality = "MR"
    path = tmp_path / "mr.dcm"
    ds.save_as(path)
    with pytest.raises(DataError, match="modality is 'MR'"):
        read_ct_slice(path)


def test_truncated_file_is_a_data_error(tmp_path):
    path = tmp_path / "truncated.dcm"
    path.write_bytes(open(CT_SMALL, "rb").read()[:2000])
    with pytest.raises(DataError, match="truncated.dcm"):
        read_ct_slice(path)


def test_resource_forks_are_ignored(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.dcm").write_bytes(b"")
    (tmp_path / "a" / "._x.dcm").write_bytes(b"")
    assert [p.name for p in iter_dicom_files(tmp_path)] == ["x.dcm"]


def test_extensionless_exports_are_found_by_their_preamble(tmp_path):
    (tmp_path / "IM0001").write_bytes(open(CT_SMALL, "rb").read())
    (tmp_path / "notes.txt").write_text("not dicom")
    assert [p.name for p in iter_dicom_files(tmp_path)] == ["IM0001"]
