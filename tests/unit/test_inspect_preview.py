import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from benchmark.core.errors import DataError
from benchmark.data.inspect import inspect_path
from benchmark.data.preview import ANATOMICAL_ORDER, LITS_ROW, contact_sheet, plan_sheet

CT_SMALL = Path(get_testdata_file("CT_small.dcm"))


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    from benchmark.synthetic.phantom import PhantomConfig, generate_dataset

    out = tmp_path_factory.mktemp("inspect") / "ds"
    return generate_dataset(out, PhantomConfig(seed=1, n_patients=3, n_corpus_patients=1, matrix=64,
                                               slices_per_series=2, n_lits_volumes=2, lits_slices=4))


def _series(phantom: Path, part: str = "CHEST") -> Path:
    return sorted((phantom / "dicom").iterdir())[0] / part


def _copy_series(phantom: Path, dest: Path, part: str = "CHEST") -> Path:
    return Path(shutil.copytree(_series(phantom, part), dest))


# --- inspect_path -----------------------------------------------------------------------------

def test_phantom_dicom_file_is_ct_with_hu_from_air_to_bone(phantom):
    info = inspect_path(_series(phantom, "SPINE") / "IM-0001.dcm")
    assert info["format"] == "dicom" and info["modality"] == "CT"
    assert info["shape"] == [64, 64] and info["hu_min"] >= -1024 and info["hu_max"] > 300
    json.dumps(info)  # JSON-ready: plain types only


def test_phantom_series_folder_counts_slices_and_matches_header_spacing(phantom):
    folder = _series(phantom)
    info = inspect_path(folder)
    first = pydicom.dcmread(folder / "IM-0001.dcm", stop_before_pixels=True)
    assert info["format"] == "dicom-series" and info["n_slices"] == 2 and info["shape"] == [2, 64, 64]
    assert info["spacing"] == pytest.approx([float(first.SliceThickness), *map(float, first.PixelSpacing)])
    assert info["series_uid"] == first.SeriesInstanceUID and info["body_part"] == "CHEST"
    assert info["patient_id"] == first.PatientID
    json.dumps(info)


def test_phantom_nifti_volume_reports_shape_and_affine_spacing(phantom):
    import nibabel as nib

    path = phantom / "lits" / "volume-0.nii"
    info = inspect_path(path)
    assert info["format"] == "nifti" and info["modality"] is None and info["shape"] == [64, 64, 4]
    assert info["spacing"] == pytest.approx(np.abs(np.diag(nib.load(path).affine)[:3]).tolist(), rel=1e-6)
    json.dumps(info)


def test_real_ct_slice_hu_range_is_rescaled_pixel_range():
    info = inspect_path(CT_SMALL)
    ds = pydicom.dcmread(CT_SMALL)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert info["modality"] == "CT" and info["shape"] == [128, 128]
    assert (info["hu_min"], info["hu_max"]) == (float(hu.min()), float(hu.max()))


def test_two_series_in_one_folder_are_refused_naming_both(phantom, tmp_path):
    folder = _copy_series(phantom, tmp_path / "mixed")
    shutil.copy(_series(phantom, "ABDOMEN") / "IM-0001.dcm", folder / "other.dcm")
    uids = {pydicom.dcmread(f, stop_before_pixels=True).SeriesInstanceUID for f in folder.iterdir()}
    with pytest.raises(DataError, match="mixed.*2 series") as err:
        inspect_path(folder)
    assert all(uid in str(err.value) for uid in uids)


def test_uneven_slice_gaps_are_refused(phantom, tmp_path):
    folder = _copy_series(phantom, tmp_path / "gappy", "ABDOMEN")
    ds = pydicom.dcmread(folder / "IM-0001.dcm")
    zs = sorted(float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in folder.iterdir())
    ds.ImagePositionPatient[2] = zs[-1] + (zs[1] - zs[0])  # a third slice on the grid is fine
    ds.save_as(folder / "IM-0003.dcm")
    assert inspect_path(folder)["spacing"][0] == pytest.approx(zs[1] - zs[0])
    ds.ImagePositionPatient[2] = zs[-1] + 1.5 * (zs[1] - zs[0])  # moved off the grid
    ds.save_as(folder / "IM-0003.dcm")
    with pytest.raises(DataError, match="gappy.*inconsistent"):
        inspect_path(folder)


def test_missing_path_and_empty_folder_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="nope.*does not exist"):
        inspect_path(tmp_path / "nope")
    with pytest.raises(DataError, match="no DICOM"):
        inspect_path(tmp_path)


# --- contact_sheet ----------------------------------------------------------------------------

def test_plan_has_one_row_per_body_part_in_anatomical_order_plus_lits(phantom):
    rows = plan_sheet(phantom, per_region=2)
    assert [r.label for r in rows] == [*ANATOMICAL_ORDER, LITS_ROW]
    assert all(len(r.tiles) == 2 for r in rows)
    assert [r.window[1:] for r in rows[:3]] == [(40, 80), (-600, 1500), (40, 400)]
    assert {t.path.parts[-3] for t in rows[0].tiles} == {"PHANTOM-P0000", "PHANTOM-P0001"}
    assert all(t.mask is not None and 0 <= t.k < 4 for t in rows[-1].tiles)


def test_plan_of_one_series_folder_has_one_row(phantom):
    rows = plan_sheet(_series(phantom, "PELVIS"))
    assert [(r.label, len(r.tiles)) for r in rows] == [("PELVIS", 1)]


def test_contact_sheet_writes_a_deterministic_png(phantom, tmp_path):
    from PIL import Image

    first = contact_sheet(phantom, tmp_path / "a.png", per_region=2)
    second = contact_sheet(phantom, tmp_path / "b.png", per_region=2)
    assert first.read_bytes() == second.read_bytes()
    with Image.open(first) as image:
        width, height = image.size
    assert 300 < width < 1000 and height > 1000  # 2 columns, 7 rows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]  # no temp files left


def test_empty_folder_has_no_contact_sheet(tmp_path):
    with pytest.raises(DataError, match="no CT DICOM"):
        contact_sheet(tmp_path, tmp_path / "sheet.png")
    assert not (tmp_path / "sheet.png").exists()
