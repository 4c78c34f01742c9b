"""Enhanced CT (multi-frame CT Image Storage) reads to the same HU and geometry as the
single-frame series it was built from (issue 21, item 3).

The twins come from ``tests/fixtures/datasets/dicom_enhanced.py``; a Legacy Converted
Enhanced CT written by highdicom (a converter ctbench did not write) checks the same where
highdicom is installed.
"""
from dataclasses import replace

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from benchmark.core.errors import DataError
from benchmark.data.readers.dicom import read_ct_slice, read_header
from benchmark.data.readers.dicom_describe import describe
from benchmark.data.readers.dicom_frames import FrameGeometry, frame_geometry, read_ct_frames
from tests.fixtures.datasets.dicom_ct import ct_slice
from tests.fixtures.datasets.dicom_enhanced import (
    enhanced_ct,
    phantom_volume,
    write_enhanced_ct,
    write_single_frame_series,
)

ZS = [0.0, 5.0, 10.0, 15.0]


@pytest.fixture
def series(tmp_path):
    return write_single_frame_series(tmp_path / "single", phantom_volume(len(ZS)), ZS)


def _single_frames(files):
    """(HU, geometry) of each single-frame file, read the classic way."""
    out = []
    for path in files:
        hu, ds = read_ct_slice(path)
        [geometry] = frame_geometry(ds, path)
        out.append((hu, geometry))
    return out


def _assert_twins(frames, singles):
    """Same HU (exactly) and same geometry, frame i against slice i, up to the frame index."""
    assert len(frames) == len(singles)
    for index, ((hu, geometry), (single_hu, single_geometry)) in enumerate(zip(frames, singles)):
        assert hu.dtype == np.float32 and hu.shape == single_hu.shape
        np.testing.assert_array_equal(hu, single_hu)
        assert geometry == replace(single_geometry, frame=index)


def _refused(path, match: str) -> str:
    with pytest.raises(DataError, match=match) as err:
        read_ct_frames(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


def test_single_frame_files_read_as_one_frame_exactly_as_read_ct_slice(series):
    hu, ds = read_ct_slice(series[1])
    [(frame_hu, geometry)] = read_ct_frames(series[1])
    np.testing.assert_array_equal(frame_hu, hu)
    np.testing.assert_array_equal(hu, phantom_volume(len(ZS))[1].astype(np.float32))
    assert geometry == FrameGeometry(position=(-125.0, -125.0, 5.0), orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
                                     pixel_spacing=(0.488281, 0.488281), thickness=5.0, frame=0)


@pytest.mark.parametrize("per_frame_rescale", [False, True])
def test_enhanced_ct_reads_to_the_hu_and_geometry_of_its_single_frame_twin(tmp_path, series, per_frame_rescale):
    path = write_enhanced_ct(tmp_path / "enhanced.dcm", series, per_frame_rescale=per_frame_rescale)
    _assert_twins(read_ct_frames(path), _single_frames(series))


def test_per_frame_rescale_is_applied_frame_by_frame(tmp_path):
    """Each slice stored with its own intercept: one shared rescale would shift all but one frame."""
    files = write_single_frame_series(tmp_path / "single", phantom_volume(len(ZS)), ZS,
                                      intercepts=[-1024, -1000, -2048, 0])
    path = write_enhanced_ct(tmp_path / "enhanced.dcm", files, per_frame_rescale=True)
    frames = read_ct_frames(path)
    _assert_twins(frames, _single_frames(files))
    np.testing.assert_array_equal(np.stack([hu for hu, _ in frames]), phantom_volume(len(ZS)).astype(np.float32))


def test_geometry_comes_from_the_header_alone(tmp_path, series):
    path = write_enhanced_ct(tmp_path / "enhanced.dcm", series)
    header = read_header(path)
    assert "PixelData" not in header
    assert frame_geometry(header, path) == [g for _, g in read_ct_frames(path)]
    assert [g.position[2] for g in frame_geometry(header, path)] == ZS
    assert [g.frame for g in frame_geometry(header, path)] == [0, 1, 2, 3]


def test_per_frame_orientation_and_spacing_override_the_shared_ones(tmp_path, series):
    ds = enhanced_ct(series)
    item = ds.PerFrameFunctionalGroupsSequence[2]
    item.PlaneOrientationSequence = Sequence([_item(ImageOrientationPatient=[0, 1, 0, 0, 0, -1])])
    item.PixelMeasuresSequence = Sequence([_item(PixelSpacing=[0.7, 0.8])])
    geometry = frame_geometry(ds, tmp_path / "x.dcm")
    assert geometry[2].orientation == (0.0, 1.0, 0.0, 0.0, 0.0, -1.0) and geometry[2].pixel_spacing == (0.7, 0.8)
    assert geometry[2].thickness is None  # its own PixelMeasuresSequence has none, and it replaces the shared one
    assert geometry[1].orientation == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0) and geometry[1].thickness == 5.0


def test_highdicom_legacy_converted_enhanced_ct_reads_like_its_source_series(tmp_path, series):
    """A third party's converter (highdicom), its own frame order: matched by position."""
    hd = pytest.importorskip("highdicom")
    legacy = [pydicom.dcmread(p) for p in series]
    converted = hd.legacy.LegacyConvertedEnhancedCTImage(
        legacy_datasets=legacy, series_instance_uid=hd.UID(), series_number=2, sop_instance_uid=hd.UID(),
        instance_number=1)
    path = tmp_path / "legacy-converted.dcm"
    converted.save_as(path, enforce_file_format=True)
    by_z = {g.position[2]: (hu, g) for hu, g in read_ct_frames(path)}
    assert sorted(by_z) == ZS
    for single_hu, single in _single_frames(series):
        hu, geometry = by_z[single.position[2]]
        np.testing.assert_array_equal(hu, single_hu)
        assert (geometry.position, geometry.orientation, geometry.pixel_spacing) == \
            (single.position, single.orientation, single.pixel_spacing)


def test_read_ct_slice_points_an_enhanced_ct_at_the_frame_reader(tmp_path, series):
    path = write_enhanced_ct(tmp_path / "enhanced.dcm", series)
    with pytest.raises(DataError, match="holds 4 frame.s. as SOP class Enhanced CT Image Storage.*read_ct_frames"):
        read_ct_slice(path)


def test_description_counts_the_frames_of_an_enhanced_ct(tmp_path, series):
    ds = enhanced_ct(series)
    assert "4 frame(s) of 32 x 32, orientation axial (normal 0,0,1)" in describe(ds)
    del ds.NumberOfFrames
    assert "4 frame(s) of 32 x 32" in describe(ds)


def test_classic_multi_frame_without_functional_groups_is_refused(tmp_path):
    ds = ct_slice(np.zeros((16, 16)))
    ds.NumberOfFrames = 2
    ds.PixelData = np.zeros((2, 16, 16), "<i2").tobytes()
    path = tmp_path / "frames.dcm"
    ds.save_as(path, enforce_file_format=True)
    _refused(path, "holds 2 frames without per-frame geometry")
    with pytest.raises(DataError, match="holds 2 frames"):
        read_ct_slice(path)


def _broken(tmp_path, series, bend) -> str:
    ds = enhanced_ct(series)
    bend(ds)
    path = tmp_path / "broken.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_frame_without_a_position_is_refused_naming_the_frame(tmp_path, series):
    path = _broken(tmp_path, series, lambda ds: delattr(ds.PerFrameFunctionalGroupsSequence[1], "PlanePositionSequence"))
    _refused(path, "frame 2 of 4: has no ImagePositionPatient .PlanePositionSequence.")
    with pytest.raises(DataError, match="frame 2 of 4"):
        frame_geometry(read_header(path), path)


def test_a_frame_count_that_disagrees_with_the_functional_groups_is_refused(tmp_path, series):
    path = _broken(tmp_path, series, lambda ds: setattr(ds, "NumberOfFrames", 5))
    _refused(path, "has 4 PerFrameFunctionalGroupsSequence item.s. for its 5 frame.s.")


def test_no_rescale_anywhere_is_refused_not_defaulted(tmp_path, series):
    path = _broken(tmp_path, series, lambda ds: delattr(ds.SharedFunctionalGroupsSequence[0],
                                                        "PixelValueTransformationSequence"))
    _refused(path, "frame 1 of 4: has no RescaleSlope/RescaleIntercept")


def test_a_bad_per_frame_rescale_names_its_frame(tmp_path, series):
    def zero_slope(ds):
        ds.PerFrameFunctionalGroupsSequence[3].PixelValueTransformationSequence = Sequence(
            [_item(RescaleSlope="0", RescaleIntercept="0")])
    _refused(_broken(tmp_path, series, zero_slope), "frame 4 of 4: RescaleSlope is 0")


def test_stored_values_wider_than_bits_stored_are_refused_in_enhanced_ct_too(tmp_path, series):
    path = _broken(tmp_path, series, lambda ds: setattr(ds, "BitsStored", 10) or setattr(ds, "HighBit", 9))
    _refused(path, "BitsStored 10 but values up to")


def test_a_colour_enhanced_object_is_refused(tmp_path, series):
    path = _broken(tmp_path, series, lambda ds: setattr(ds, "PhotometricInterpretation", "RGB"))
    _refused(path, "is not greyscale")


def _item(**tags) -> Dataset:
    item = Dataset()
    for keyword, value in tags.items():
        setattr(item, keyword, value)
    return item
