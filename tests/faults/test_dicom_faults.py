"""Fault matrix, DICOM: each broken or unusual CT slice (or series folder) ends in one line that
names the file and the problem, exit code 2 through the CLI, and no silently wrong Hounsfield
units. The slices are 16 x 16, built by ``tests/fixtures/datasets/dicom_ct.py``."""
import csv
import io

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.dataelem import RawDataElement
from pydicom.encaps import encapsulate

from benchmark.cli.main import main
from benchmark.core.errors import DataError
from benchmark.data.inspect import inspect_path
from benchmark.data.readers import dicom
from benchmark.data.readers.dicom import read_ct_slice
from tasks.generic import DicomFolder
from tasks.rsna_ich import needs_correction, read_rsna_slice
from tests.cli_helpers import run_cli
from tests.fixtures.datasets.cross_domain import rsna_hu, rsna_stored
from tests.fixtures.datasets.dicom_ct import ct_slice, write_ct_series, write_ct_slice

# Air, soft tissue, bone and one very dense voxel: negative, positive and large HU.
HU = np.full((16, 16), -1000)
HU[3:13, 3:13] = 40
HU[6:9, 6:9] = 1000
HU[0, 0] = 1800


def _refused(path, match: str, **kwargs) -> str:
    """read_ct_slice's one-line DataError, checked to start with the file's path."""
    with pytest.raises(DataError, match=match) as err:
        read_ct_slice(path, **kwargs)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


def _saved(tmp_path, name: str, ds: pydicom.Dataset):
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True)
    return path


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI in-process (cheap); the subprocess tests below prove the same contract end to end."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------- truncated file

@pytest.mark.parametrize("cut, match", [
    (-100, "cannot decode pixel data: the file is cut short .PixelData"),  # inside the pixels
    (400, "is cut short: .* holds \\d+ of its \\d+ bytes"),  # inside a header element
    (132, "has no PixelData"),  # right after the preamble: nothing but "DICM"
    (64, "not a readable DICOM file"),  # inside the preamble
])
def test_truncated_file_is_refused_with_where_it_was_cut(tmp_path, cut, match):
    whole = write_ct_slice(tmp_path / "whole.dcm", HU).read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(whole[:cut])
    _refused(path, match)


def test_truncated_file_through_the_cli_exits_2_with_one_line_and_no_traceback(tmp_path):
    path = tmp_path / "cut.dcm"
    path.write_bytes(write_ct_slice(tmp_path / "whole.dcm", HU).read_bytes()[:-100])
    proc = run_cli("data", "inspect", str(path), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"ctbench: error: {path}: cannot decode pixel data: the file is "
                                                "cut short (PixelData (7FE0,0010) holds 412 of its 512 bytes)"]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_debug_keeps_the_traceback(tmp_path):
    path = tmp_path / "cut.dcm"
    path.write_bytes(write_ct_slice(tmp_path / "whole.dcm", HU).read_bytes()[:-100])
    with pytest.raises(DataError, match="cut short"):
        main(["--debug", "data", "inspect", str(path)])


# --------------------------------------------------------------------------- missing tags

def test_missing_pixel_data_is_refused(tmp_path):
    ds = ct_slice(HU)
    del ds.PixelData
    _refused(_saved(tmp_path, "no-pixels.dcm", ds), "has no PixelData")


@pytest.mark.parametrize("missing", [("RescaleSlope",), ("RescaleIntercept",), ("RescaleSlope", "RescaleIntercept")])
def test_missing_rescale_tags_are_refused_not_defaulted_for_ct(tmp_path, missing):
    """CT makes both tags mandatory; a default of 1 / 0 would shift HU by the scanner's offset."""
    ds = ct_slice(HU + 1024, intercept="-1024")
    for keyword in missing:
        delattr(ds, keyword)
    _refused(_saved(tmp_path, "no-rescale.dcm", ds), "has no RescaleSlope/RescaleIntercept, so its HU scale is unknown")


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")  # pydicom's, on writing 'nan' / 'inf'
@pytest.mark.parametrize("slope, intercept, match", [
    ("nan", "0", "RescaleSlope is nan"),
    ("1", "inf", "RescaleIntercept is inf"),
    ("0", "0", "RescaleSlope is 0"),
    ("1\\2", "0", "RescaleSlope .* is not one number"),
    ("1e38", "0", "overflow float32 HU"),
])
def test_rescale_values_that_give_no_finite_hu_are_refused(tmp_path, slope, intercept, match):
    _refused(write_ct_slice(tmp_path / "bad-rescale.dcm", HU, slope=slope, intercept=intercept), match)


# --------------------------------------------------------------------------- non-CT modality

def test_non_ct_modality_is_refused_by_the_reader(tmp_path):
    ds = ct_slice(HU)
    ds.Modality = "MR"
    _refused(_saved(tmp_path, "mr.dcm", ds), "modality is 'MR', expected 'CT'")


def test_non_ct_modality_inside_a_ct_task_is_named_by_tasks_validate(tmp_path, capsys):
    root = tmp_path / "data"
    write_ct_series(root / "ct", HU, [0, 5], patient_id="A")
    mr = write_ct_series(root / "mr", HU, [0, 5], patient_id="B")[1]
    ds = pydicom.dcmread(mr)
    ds.Modality = "MR"
    ds.save_as(mr)
    _labels_csv(root, [("ct", "x"), ("mr", "y")])
    code, out, err = _cli(capsys, "tasks", "validate", "dicom-folder", "--data", str(root))
    assert code == 2 and out.splitlines() == [
        f"{mr}: is not usable as CT, it is an MR image: modality is 'MR', expected 'CT' (SOP class CT Image "
        "Storage, Modality MR, 1 frame(s) of 16 x 16, orientation axial (normal 0,0,1))"]
    assert err.strip().splitlines() == [f"1 problem(s) in {root} for task dicom-folder"]


def _labels_csv(root, rows):
    with open(root / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("series", "label"), *rows])


# --------------------------------------------------------------------------- compressed, no decoder

def _compressed(tmp_path, syntax: uid.UID):
    """A slice whose transfer syntax says ``syntax``, with encapsulated bytes that are no valid
    codestream: enough to show what happens when the decoder is missing or fails."""
    ds = ct_slice(HU)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([b"\xff\xd8 not a codestream \xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return _saved(tmp_path, "compressed.dcm", ds)


@pytest.mark.parametrize("syntax, plugin", [
    (uid.JPEGLossless, "pip install pylibjpeg pylibjpeg-libjpeg"),
    (uid.JPEGLSLossless, "pip install pylibjpeg pylibjpeg-libjpeg"),
    (uid.HTJ2KLossless, "pip install pylibjpeg pylibjpeg-openjpeg"),
])
def test_compressed_slice_without_its_decoder_names_the_extra_and_the_plugin(tmp_path, monkeypatch, syntax, plugin):
    """The test extra installs the decoders, so their absence is simulated: the message a user
    without ``ctbench[dicom-codecs]`` sees names that extra first, then the one plugin it needs."""
    monkeypatch.setattr(dicom, "_decoder_available", lambda _syntax: False)
    message = _refused(_compressed(tmp_path, syntax), "no decoder for it is installed")
    assert syntax.name in message
    assert message.endswith(f'install the extra: pip install "ctbench[dicom-codecs]" (or: {plugin})')


def test_compressed_slice_with_no_decoder_anywhere_says_so(tmp_path, monkeypatch):
    """A syntax no pip package decodes for pydicom (MPEG-2 video) gets no command to run."""
    monkeypatch.setattr(dicom, "_decoder_available", lambda _syntax: False)
    message = _refused(_compressed(tmp_path, uid.MPEG2MPML), "no decoder for it is installed")
    assert message.endswith("pydicom has no decoder for it")


def test_undecodable_jpeg2000_names_the_openjpeg_plugin_whichever_decoder_failed(tmp_path):
    """Pillow may decode JPEG 2000 here, and fails on these bytes; the hint still names the fuller decoder."""
    message = _refused(_compressed(tmp_path, uid.JPEG2000Lossless), "decoder")
    assert "pip install pylibjpeg pylibjpeg-openjpeg" in message


# --------------------------------------------------------------------------- series folders

def test_two_series_in_one_folder_are_refused_naming_the_folder_and_both_uids(tmp_path):
    folder = tmp_path / "series"
    write_ct_series(folder, HU, [0, 5, 10], patient_id="A")
    stray = write_ct_slice(folder / "stray.dcm", HU, patient_id="B", z=15)
    uids = {str(pydicom.dcmread(p).SeriesInstanceUID) for p in (folder / "IM-0001.dcm", stray)}
    with pytest.raises(DataError, match="mixes 2 series") as err:
        inspect_path(folder)
    assert str(err.value).startswith(f"{folder}: ") and all(u in str(err.value) for u in uids)
    _labels_csv(tmp_path, [("series", "x")])
    [problem] = DicomFolder().validate(tmp_path)
    assert problem.startswith(f"{folder}: mixes 2 series")


def test_inconsistent_slice_spacing_in_a_series_is_refused(tmp_path):
    folder = tmp_path / "gappy"
    write_ct_series(folder, HU, [0, 5, 10, 17.5])  # a missing slice between 10 and 20, one moved
    with pytest.raises(DataError, match=r"slice gaps are inconsistent \(from 5 to 7.5 mm\)") as err:
        inspect_path(folder)
    assert str(err.value).startswith(f"{folder}: ")
    _labels_csv(tmp_path, [("gappy", "x")])
    [problem] = DicomFolder().validate(tmp_path)
    assert problem.startswith(f"{folder}: slice gaps are inconsistent")


def test_a_slice_position_that_is_not_a_number_is_refused_naming_the_file(tmp_path):
    folder = tmp_path / "series"
    files = write_ct_series(folder, HU, [0, 5, 10])
    ds = pydicom.dcmread(files[1])
    tag = pydicom.tag.Tag("ImagePositionPatient")  # raw bytes: pydicom's setter refuses a non-numeric DS
    ds[tag] = RawDataElement(tag, "DS", 8, b"0\\0\\ten", 0, False, True)
    ds.save_as(files[1])
    with pytest.raises(DataError, match="ImagePositionPatient or InstanceNumber is not a number") as err:
        inspect_path(folder)
    assert str(err.value).startswith(f"{files[1]}: ")


# --------------------------------------------------------------------------- pixel interpretation

def test_monochrome1_gives_the_same_hounsfield_units_as_monochrome2(tmp_path):
    """The rescale (Modality LUT) gives HU whatever the photometric interpretation; inverting
    MONOCHROME1 would turn air into bone."""
    mono1, _ = read_ct_slice(write_ct_slice(tmp_path / "m1.dcm", HU, photometric="MONOCHROME1"))
    mono2, _ = read_ct_slice(write_ct_slice(tmp_path / "m2.dcm", HU, photometric="MONOCHROME2"))
    np.testing.assert_array_equal(mono1, HU.astype(np.float32))
    np.testing.assert_array_equal(mono1, mono2)


@pytest.mark.parametrize("photometric, samples", [("RGB", 3), ("PALETTE COLOR", 1), ("YBR_FULL", 3)])
def test_colour_slices_are_refused(tmp_path, photometric, samples):
    ds = ct_slice(HU)
    ds.PhotometricInterpretation, ds.SamplesPerPixel = photometric, samples
    ds.PixelData = np.zeros((16, 16, samples), "<u2").tobytes()
    _refused(_saved(tmp_path, "colour.dcm", ds), f"is not greyscale .PhotometricInterpretation '{photometric}'")


def test_multi_frame_files_without_functional_groups_are_refused(tmp_path):
    """A classic CT object says nothing of where its second frame lies; Enhanced CT (which does)
    is read by ``dicom_frames.read_ct_frames``, see tests/unit/test_dicom_enhanced.py."""
    ds = ct_slice(HU)
    ds.NumberOfFrames = 2
    ds.PixelData = np.stack([HU, HU]).astype("<i2").tobytes()
    _refused(_saved(tmp_path, "frames.dcm", ds), "holds 2 frames without per-frame geometry")


@pytest.mark.parametrize("signed, bits_stored, offset", [
    (True, 16, 0),  # negative stored values, intercept 0
    (True, 16, 1024),  # the common scanner form: HU + 1024 stored, intercept -1024
    (True, 12, 0),  # 12-bit two's complement in a 16-bit word: needs sign extension
    (False, 16, 1024),
    (False, 12, 1024),
])
def test_signed_and_unsigned_pixel_representation_read_to_the_true_hu(tmp_path, signed, bits_stored, offset):
    path = write_ct_slice(tmp_path / "slice.dcm", HU + offset, signed=signed, bits_stored=bits_stored,
                          intercept=str(-offset))
    hu, ds = read_ct_slice(path)
    assert ds.PixelRepresentation == int(signed) and ds.BitsStored == bits_stored
    np.testing.assert_array_equal(hu, HU.astype(np.float32))


def test_rsna_mis_stored_12_bit_slices_are_put_right_by_the_rsna_reader(tmp_path):
    """RSNA ICH's known quirk (BitsStored 12, unsigned, intercept ~0 instead of -1024): the generic
    reader follows the tags, the rsna-ich task corrects it and leaves the well-stored forms alone."""
    truth = rsna_hu(1, 2)
    for storage in ("corrupted", "signed16", "unsigned12"):
        stored, signed, bits_stored, intercept = rsna_stored(truth, storage)
        path = write_ct_slice(tmp_path / f"{storage}.dcm", stored, signed=signed, bits_stored=bits_stored,
                              intercept=intercept)
        hu, ds = read_rsna_slice(path)
        np.testing.assert_array_equal(hu, truth.astype(np.float32))
        assert needs_correction(ds) == (storage == "corrupted")
    naive, _ = read_ct_slice(tmp_path / "corrupted.dcm")
    assert naive[0, 0] == 4096 - 1000 + 1  # air read by the tags alone: +3097 HU


def test_hu_are_exact_through_a_bytes_round_trip():
    """The fixture writer itself: what it stores is what pydicom reads back (guards every test above)."""
    buffer = io.BytesIO()
    ct_slice(HU + 1024, signed=False, bits_stored=12, intercept="-1024").save_as(buffer, enforce_file_format=True)
    ds = pydicom.dcmread(io.BytesIO(buffer.getvalue()))
    np.testing.assert_array_equal(ds.pixel_array, HU + 1024)
