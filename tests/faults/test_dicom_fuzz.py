"""Fuzzing the DICOM reader: a valid 16 x 16 CT slice, then random tag values, deleted tags,
truncations and flipped bytes. Whatever the bytes, ``read_ct_slice`` (and ``read_header``) give
either a finite float32 array of the declared (Rows, Columns) or a one-line ``DataError`` that
starts with the file's path; any other exception is a reader bug. Bounded and derandomised
(``tests/faults/conftest.py``), a few seconds in all."""
import io
import struct

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.tag import BaseTag

from benchmark.core.errors import DataError
from benchmark.data.readers.dicom import read_ct_slice, read_header
from tests.fixtures.datasets.dicom_ct import ct_slice

HU = np.arange(-1024, -1024 + 256 * 12, 12).reshape(16, 16)

NUMBERS = st.sampled_from(["1", "0", "-1", "0.5", "1e38", "-1e38", "1e-45", "nan", "inf", "", "abc", "1\\2", "  2 "])
TAG_VALUES = {
    "Rows": st.integers(0, 65535), "Columns": st.integers(0, 65535),
    "BitsAllocated": st.sampled_from([0, 1, 8, 12, 16, 24, 32, 64, 65535]),
    "BitsStored": st.integers(0, 70), "HighBit": st.integers(0, 70),
    "PixelRepresentation": st.integers(0, 3), "SamplesPerPixel": st.integers(0, 4),
    "PlanarConfiguration": st.integers(0, 2),
    "PhotometricInterpretation": st.sampled_from(["MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR",
                                                  "YBR_FULL_422", "", "XYZ"]),
    "NumberOfFrames": st.sampled_from(["1", "2", "0", "-3", "x", ""]),
    "RescaleSlope": NUMBERS, "RescaleIntercept": NUMBERS,
    "Modality": st.sampled_from(["CT", "MR", "", "ct"]),
}
TRANSFER_SYNTAXES = st.sampled_from(["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
                                     "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.70",
                                     "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.1.99", "1.2.3.4", ""])

set_tag = st.tuples(st.just("set"), st.sampled_from(sorted(TAG_VALUES))).flatmap(
    lambda op: st.tuples(st.just(op[0]), st.just(op[1]), TAG_VALUES[op[1]]))
delete_tag = st.tuples(st.just("delete"), st.sampled_from([*sorted(TAG_VALUES), "PixelData"]), st.none())
set_syntax = st.tuples(st.just("syntax"), st.just("TransferSyntaxUID"), TRANSFER_SYNTAXES)
tag_edits = st.lists(st.one_of(set_tag, delete_tag, set_syntax), max_size=4)

byte_edits = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=8)),
    st.none(),
)


def _dataset_bytes(edits) -> bytes:
    ds = ct_slice(HU, signed=True, bits_stored=16, intercept="0")
    for op, keyword, value in edits:
        if op == "set":
            _set_raw(ds, keyword, value)
        elif op == "syntax":
            ds.file_meta.TransferSyntaxUID = value
        elif keyword in ds:
            delattr(ds, keyword)
    buffer = io.BytesIO()
    try:
        ds.save_as(buffer, enforce_file_format=True)
    except Exception:  # pydicom will not write some combinations (e.g. an unknown transfer syntax)
        assume(False)
    return buffer.getvalue()


def _set_raw(ds, keyword: str, value) -> None:
    """The value's bytes as they would be on disk, unchecked: pydicom's setters refuse invalid
    values (a non-numeric IS), but a file can hold anything."""
    tag = BaseTag(tag_for_keyword(keyword))
    vr = dictionary_VR(tag)
    if vr == "US":
        data = struct.pack("<H", value)
    else:
        data = value.encode("ascii")
        data += b" " * (len(data) % 2)
    ds[tag] = RawDataElement(tag, vr, len(data), data, 0, False, True)


def _apply(raw: bytes, edit) -> bytes:
    if edit is None:
        return raw
    if edit[0] == "truncate":
        return raw[:int(edit[1] * len(raw))]
    data = bytearray(raw)
    for where, value in edit[1]:
        data[min(int(where * len(data)), len(data) - 1)] = value
    return bytes(data)


def _check(path) -> None:
    """The reader's contract on any bytes."""
    try:
        hu, ds = read_ct_slice(path)
    except DataError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: ") and "\n" not in message, message
    else:
        assert hu.dtype == np.float32 and hu.shape == (ds.Rows, ds.Columns)
        assert np.isfinite(hu).all()
    try:
        read_header(path)
    except DataError as exc:
        assert str(exc).startswith(f"{path}: ")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about every invalid value it meets
@settings(max_examples=250)
@given(edits=tag_edits, byte_edit=byte_edits)
def test_any_mangled_slice_reads_as_finite_hu_or_a_one_line_data_error(folder, edits, byte_edit):
    path = folder / "slice.dcm"
    path.write_bytes(_apply(_dataset_bytes(edits), byte_edit))
    _check(path)


def _valid_slice() -> bytes:
    buffer = io.BytesIO()
    ct_slice(HU, signed=True, bits_stored=16, intercept="0").save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


VALID = _valid_slice()


@settings(max_examples=80)
@given(cut=st.integers(0, len(VALID) - 1))
def test_every_truncation_of_a_valid_slice_is_a_one_line_data_error(folder, cut):
    path = folder / "cut.dcm"
    path.write_bytes(VALID[:cut])
    with pytest.raises(DataError) as err:
        read_ct_slice(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)
