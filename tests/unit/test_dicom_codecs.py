"""Compressed transfer syntaxes read to exactly the HU of their uncompressed twin (issue 21, item 4).

The decoders come from the optional extra ``ctbench[dicom-codecs]`` (pylibjpeg with its
libjpeg and openjpeg plugins; pyjpegls encodes JPEG-LS), which the ``test`` extra installs too.
Lossless means exact: every comparison is array equality. Where an encoder or decoder is not
installed the test says so and skips; the missing-decoder message itself is tested in
``tests/faults/test_dicom_faults.py``.
"""

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.pixels import get_decoder, get_encoder

from benchmark.core.errors import DataError
from benchmark.data.readers import dicom
from benchmark.data.readers.dicom import read_ct_slice
from benchmark.data.readers.dicom_frames import read_ct_frames
from tests.fixtures.datasets.dicom_enhanced import (
    ENCODERS,
    phantom_volume,
    write_compressed,
    write_enhanced_ct,
    write_single_frame_series,
)
from tests.fixtures.pydicom_testdata import pydicom_testdata

LOSSLESS = [uid.JPEGLSLossless, uid.JPEG2000Lossless]
ZS = [0.0, 5.0, 10.0, 15.0]


def _codec_or_skip(syntax: uid.UID) -> None:
    """Skip, naming what is missing, unless ``syntax`` can be both written and read here."""
    encoder = get_encoder(syntax)
    if not encoder.is_available or ENCODERS[syntax] not in encoder.available_plugins:
        pytest.skip(f"no {ENCODERS[syntax]} encoder for {syntax.name}: pip install \"ctbench[dicom-codecs]\"")
    if not get_decoder(syntax).is_available:
        pytest.skip(f"no decoder for {syntax.name}: pip install \"ctbench[dicom-codecs]\"")


@pytest.mark.parametrize("syntax", LOSSLESS, ids=lambda s: s.name)
def test_lossless_copy_of_a_single_frame_series_reads_to_the_same_hu(tmp_path, syntax):
    _codec_or_skip(syntax)
    files = write_single_frame_series(tmp_path / "plain", phantom_volume(len(ZS)), ZS)
    for path in files:
        copy = write_compressed(path, tmp_path / "compressed" / path.name, syntax)
        assert pydicom.dcmread(copy, stop_before_pixels=True).file_meta.TransferSyntaxUID == syntax
        hu, _ = read_ct_slice(copy)
        plain, _ = read_ct_slice(path)
        np.testing.assert_array_equal(hu, plain)
        [(frame_hu, geometry)] = read_ct_frames(copy)
        np.testing.assert_array_equal(frame_hu, plain)
        assert geometry == read_ct_frames(path)[0][1]


@pytest.mark.parametrize("syntax", LOSSLESS, ids=lambda s: s.name)
def test_lossless_enhanced_ct_reads_to_the_same_hu_frame_by_frame(tmp_path, syntax):
    """Multi-frame compression encodes each frame as its own codestream."""
    _codec_or_skip(syntax)
    files = write_single_frame_series(tmp_path / "plain", phantom_volume(len(ZS)), ZS)
    enhanced = write_enhanced_ct(tmp_path / "enhanced.dcm", files, per_frame_rescale=True)
    copy = write_compressed(enhanced, tmp_path / "enhanced-compressed.dcm", syntax)
    compressed, plain = read_ct_frames(copy), read_ct_frames(enhanced)
    assert [g for _, g in compressed] == [g for _, g in plain]
    for (hu, _), (plain_hu, _), path in zip(compressed, plain, files):
        np.testing.assert_array_equal(hu, plain_hu)
        np.testing.assert_array_equal(hu, read_ct_slice(path)[0])


@pytest.mark.parametrize("syntax", LOSSLESS, ids=lambda s: s.name)
def test_a_real_ct_slice_compressed_losslessly_keeps_its_hu(tmp_path, syntax):
    """pydicom's CT_small.dcm (a real scanner slice, 128 x 128) through each encoder."""
    _codec_or_skip(syntax)
    source = pydicom_testdata("CT_small.dcm")
    copy = write_compressed(source, tmp_path / "ct.dcm", syntax)
    np.testing.assert_array_equal(read_ct_slice(copy)[0], read_ct_slice(source)[0])


@pytest.mark.parametrize("name", ["MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"])
def test_files_compressed_by_other_encoders_read_to_their_uncompressed_twin(tmp_path, name):
    """pydicom's MR_small in lossless syntaxes encoded elsewhere, not by our test encoders.
    MR has no rescale, so slope 1 / intercept 0 is written into both twins (a header edit:
    the pixel data stays the original codestream) and they are read with ``require_ct=False``."""
    twins = []
    for source in (pydicom_testdata("MR_small.dcm"), pydicom_testdata(name)):
        syntax = pydicom.dcmread(source, stop_before_pixels=True).file_meta.TransferSyntaxUID
        if syntax.is_compressed and not get_decoder(syntax).is_available:
            pytest.skip(f"no decoder for {syntax.name}: pip install \"ctbench[dicom-codecs]\"")
        ds = pydicom.dcmread(source)
        ds.RescaleSlope, ds.RescaleIntercept = "1", "0"
        ds.save_as(tmp_path / source.name)
        twins.append(read_ct_slice(tmp_path / source.name, require_ct=False)[0])
    np.testing.assert_array_equal(twins[1], twins[0])


def test_a_compressed_enhanced_ct_without_its_decoder_names_the_extra(tmp_path, monkeypatch):
    syntax = uid.JPEG2000Lossless
    _codec_or_skip(syntax)
    files = write_single_frame_series(tmp_path / "plain", phantom_volume(len(ZS)), ZS)
    copy = write_compressed(write_enhanced_ct(tmp_path / "enhanced.dcm", files), tmp_path / "j2k.dcm", syntax)
    monkeypatch.setattr(dicom, "_decoder_available", lambda _syntax: False)
    with pytest.raises(DataError, match="no decoder for it is installed") as err:
        read_ct_frames(copy)
    assert str(err.value).endswith('install the extra: pip install "ctbench[dicom-codecs]" '
                                   "(or: pip install pylibjpeg pylibjpeg-openjpeg)")
