"""DICOM CT slices to Hounsfield units, with pydicom.

Every failure names the file: a dataset of thousands of slices is only debuggable
when the one broken file is pointed at. pydicom parses untrusted bytes, so whatever it
raises while reading a file (not only the documented exception types) is that file's
problem, reported as a one-line ``DataError``; ctbench's own checks come after it.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.uid import UID

from benchmark.core.errors import DataError
from benchmark.data.readers.dicom_describe import describe, not_ct_reason
from benchmark.data.readers.failure import one_line

# pip packages that give pydicom a decoder, by transfer syntax family (pydicom's own
# decoders cover RLE and deflate; Pillow decodes only some JPEG and JPEG 2000 files).
_LIBJPEG = "pip install pylibjpeg pylibjpeg-libjpeg"
_OPENJPEG = "pip install pylibjpeg pylibjpeg-openjpeg"
#: The optional extra that installs every decoder above (pyproject.toml; README, "Quick start").
CODECS_EXTRA = 'pip install "ctbench[dicom-codecs]"'
DECODER_PLUGINS = {
    "1.2.840.10008.1.2.4.50": _LIBJPEG, "1.2.840.10008.1.2.4.51": _LIBJPEG,  # JPEG baseline, extended
    "1.2.840.10008.1.2.4.57": _LIBJPEG, "1.2.840.10008.1.2.4.70": _LIBJPEG,  # JPEG lossless
    "1.2.840.10008.1.2.4.80": _LIBJPEG, "1.2.840.10008.1.2.4.81": _LIBJPEG,  # JPEG-LS
    "1.2.840.10008.1.2.4.90": _OPENJPEG, "1.2.840.10008.1.2.4.91": _OPENJPEG,  # JPEG 2000
    "1.2.840.10008.1.2.4.201": _OPENJPEG, "1.2.840.10008.1.2.4.202": _OPENJPEG,  # HTJ2K
    "1.2.840.10008.1.2.4.203": _OPENJPEG,
}
_GREYSCALE = ("MONOCHROME1", "MONOCHROME2")


def iter_dicom_files(root: Path) -> Iterator[Path]:
    """Sorted DICOM files below ``root``: ``*.dcm``, or any file with the DICM preamble
    (scanner exports often have no extension). macOS ``._*`` resource forks are skipped."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if not path.name.startswith("._") and (path.suffix.lower() == ".dcm" or _has_preamble(path)):
            yield path


def _has_preamble(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:] == b"DICM"
    except OSError:
        return False


def read_header(path: Path) -> pydicom.Dataset:
    """The header without the pixels: what series checks need, read fast."""
    return _read(path, stop_before_pixels=True)


def read_ct_slice(path: Path, require_ct: bool = True) -> tuple[np.ndarray, pydicom.Dataset]:
    """The slice in HU (float32, shape (Rows, Columns), all finite) and its header.

    Rescale is applied by hand from the two tags, which the CT Image module makes mandatory
    (type 1): a CT slice without them has no defined HU scale, and silently assuming
    slope 1 / intercept 0 (the default DICOM allows for other modalities) shifts every value
    by the scanner's offset, typically 1024 HU. So a missing tag is an error, never a default.

    MONOCHROME1 slices are not inverted: the rescale (the Modality LUT) gives HU whatever the
    photometric interpretation, which only says how a viewer displays them after windowing.
    Colour, multi-frame and compressed-without-decoder files are refused by name (an Enhanced
    CT multi-frame file with a pointer to ``dicom_frames.read_ct_frames``, which reads it). A
    file that is not a CT image (an MR image, a SEG or SR object...) is refused with what it
    is, checked before its missing pixels or rescale tags, which would only be symptoms of that.
    ``require_ct=False`` reads any modality's image with a rescale as if it were HU.
    """
    path = Path(path)
    ds = open_image(path, require_ct)
    if has_functional_groups(ds):
        raise DataError(f"holds {frame_count(ds, path)} frame(s) as {describe(ds)}; read it frame by frame "
                        "with benchmark.data.readers.dicom_frames.read_ct_frames", path)
    return classic_hu(ds, path), ds


def open_image(path: Path, require_ct: bool) -> pydicom.Dataset:
    """The whole file, checked to be a CT image with pixels before any pixel is touched:
    what every reader (single- or multi-frame) checks first, so all refuse alike."""
    ds = _read(path, stop_before_pixels=False)
    modality = tag_value(ds, "Modality", path)
    reason = not_ct_reason(ds) if require_ct else None
    if reason is not None:
        raise DataError(f"is not usable as CT, it is {reason} ({describe(ds)})", path)
    if "PixelData" not in ds:
        raise DataError("has no PixelData (not an image, or cut short before its pixels)", path)
    if require_ct and modality != "CT":
        raise DataError(f"modality is {modality!r}, expected 'CT'", path)
    return ds


def classic_hu(ds: pydicom.Dataset, path: Path) -> np.ndarray:
    """HU of a classic (top-level rescale) single-frame image: the one definition of the
    slice reading, shared by ``read_ct_slice`` and the multi-frame reader."""
    slope, intercept = rescale(ds, path)
    check_greyscale(ds, path)
    check_single_frame(ds, path)
    return to_hu(pixels(ds, path), slope, intercept, path)


def check_single_frame(ds: pydicom.Dataset, path: Path) -> None:
    """A classic (non-enhanced) object has one position for all its frames, so a second frame
    would land on the first one's place: only single-frame classic files are read."""
    n_frames = frame_count(ds, path)
    if n_frames != 1:
        raise DataError(f"holds {n_frames} frames without per-frame geometry (no functional groups); "
                        "ctbench reads single-frame CT slices and Enhanced CT multi-frame files", path)


def has_functional_groups(ds: pydicom.Dataset) -> bool:
    """An enhanced multi-frame object (Enhanced CT, Legacy Converted Enhanced CT): its rescale
    and geometry live in the functional groups, not in top-level tags."""
    return "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds


def _read(path: Path, stop_before_pixels: bool) -> pydicom.Dataset:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except Exception as exc:  # untrusted bytes: pydicom raises many types, all about this file
        raise DataError(f"not a readable DICOM file ({one_line(exc)})", path) from None
    for part in (ds.file_meta, ds):
        _check_not_truncated(part, path)
    return ds


def _check_not_truncated(ds: pydicom.Dataset, path: Path) -> None:
    """pydicom stops quietly at the end of a cut-short file; its last element then holds fewer
    bytes than its length says, which is the one sign left of the truncation."""
    if not len(ds):
        return
    raw = ds.get_item(max(ds.keys()))
    if isinstance(raw, RawDataElement) and raw.value is not None and raw.length != 0xFFFFFFFF \
            and len(raw.value) < raw.length:
        name = pydicom.datadict.keyword_for_tag(raw.tag) or str(raw.tag)
        cut = f"{name} {raw.tag} holds {len(raw.value)} of its {raw.length} bytes"
        raise DataError(f"cannot decode pixel data: the file is cut short ({cut})" if name == "PixelData"
                        else f"is cut short: {cut}", path)


def tag_value(ds: pydicom.Dataset, keyword: str, path: Path):
    """A tag's value (None when absent); a value pydicom cannot convert is a DataError."""
    try:
        return ds.get(keyword)
    except Exception as exc:  # pydicom converts values lazily, on first access
        raise DataError(f"has a malformed {keyword} ({one_line(exc)})", path) from None


def rescale(ds: pydicom.Dataset, path: Path, where: str = "") -> tuple[float, float]:
    """(RescaleSlope, RescaleIntercept) as finite numbers, a non-zero slope. ``ds`` may be a
    functional group item; ``where`` ("frame 2 of 40") then says which frame's values are bad."""
    lead = f"{where}: " if where else ""
    values = []
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        value = tag_value(ds, keyword, path)
        if value is None:
            raise DataError(f"{lead}has no RescaleSlope/RescaleIntercept, so its HU scale is unknown", path)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise DataError(f"{lead}{keyword} {value!r} is not one number", path) from None
        if not math.isfinite(number):
            raise DataError(f"{lead}{keyword} is {number}, so its HU scale is unknown", path)
        values.append(number)
    if values[0] == 0:
        raise DataError(f"{lead}RescaleSlope is 0, which maps every pixel to one HU value", path)
    return values[0], values[1]


def check_greyscale(ds: pydicom.Dataset, path: Path) -> None:
    """A CT frame is greyscale; anything else would come out as the wrong array."""
    samples = tag_value(ds, "SamplesPerPixel", path)
    photometric = tag_value(ds, "PhotometricInterpretation", path)
    if samples not in (None, 1) or (photometric is not None and photometric not in _GREYSCALE):
        raise DataError(f"is not greyscale (PhotometricInterpretation {photometric!r}, SamplesPerPixel "
                        f"{samples!r}); a CT slice is MONOCHROME1/2 with one sample per pixel", path)


def frame_count(ds: pydicom.Dataset, path: Path) -> int:
    """NumberOfFrames (1 when absent, as DICOM defines it for single-frame objects)."""
    frames = tag_value(ds, "NumberOfFrames", path)
    try:
        n_frames = 1 if frames in (None, "") else int(frames)
    except (TypeError, ValueError):
        raise DataError(f"NumberOfFrames {frames!r} is not a whole number", path) from None
    if n_frames < 1:
        raise DataError(f"NumberOfFrames is {n_frames}, so it holds no image", path)
    return n_frames


def pixels(ds: pydicom.Dataset, path: Path, frames: int = 1) -> np.ndarray:
    """The stored values, (Rows, Columns) or (frames, Rows, Columns), with a compressed
    file's missing decoder named as the pip command that installs one."""
    syntax = UID(str(ds.file_meta.get("TransferSyntaxUID", "")))
    plugin = DECODER_PLUGINS.get(str(syntax))
    if syntax.is_transfer_syntax and syntax.is_compressed and not _decoder_available(syntax):
        how = f"install the extra: {CODECS_EXTRA} (or: {plugin})" if plugin else "pydicom has no decoder for it"
        raise DataError(f"is compressed as {syntax.name} and no decoder for it is installed; {how}", path)
    try:
        stored = ds.pixel_array
    except Exception as exc:  # pydicom raises several types for truncated or undecodable data
        hint = f"; if the file is intact, a fuller decoder may read it: {plugin}" if plugin else ""
        raise DataError(f"cannot decode pixel data ({one_line(exc)}){hint}", path) from None
    rows, columns = tag_value(ds, "Rows", path), tag_value(ds, "Columns", path)
    expected = (rows, columns) if frames == 1 else (frames, rows, columns)
    if stored.shape != expected:
        names = "(Rows, Columns)" if frames == 1 else "(NumberOfFrames, Rows, Columns)"
        raise DataError(f"pixel array has shape {stored.shape}, not {names} = {expected}", path)
    _check_bits_stored(ds, path)
    return stored


def _check_bits_stored(ds: pydicom.Dataset, path: Path) -> None:
    """Refuse stored values wider than BitsStored, which pydicom would mask silently.

    pydicom keeps only the bits up to HighBit, so a file that declares BitsStored 12 but
    holds 16-bit values wraps them into wrong HU without a word. The raw words of an
    uncompressed file are checked before that masking: one min/max per slice, no copy.
    Signed values may come sign-extended or with the high bits left at zero (both are
    written by scanners), so the allowed range is their union. Compressed data is decoded
    by pydicom before it can be seen, so it is not checked here.
    """
    raw = _raw_words(ds)
    if raw is None or not raw.size:
        return
    bits = int(ds.BitsStored)
    low = -(1 << (bits - 1)) if ds.PixelRepresentation == 1 else 0
    high = (1 << bits) - 1
    smallest, largest = int(raw.min()), int(raw.max())
    if largest > high or smallest < low:
        span = f"values up to {largest}" if largest > high else f"values down to {smallest}"
        raise DataError(f"BitsStored {bits} but {span}: the file's pixel data is wider than it declares", path)


def _raw_words(ds: pydicom.Dataset) -> np.ndarray | None:
    """The uncompressed pixel words as stored (signed view for PixelRepresentation 1),
    or None where they cannot be seen without decoding or BitsStored leaves no spare bits."""
    syntax = UID(str(ds.file_meta.get("TransferSyntaxUID", "")))
    try:
        allocated, bits, signed = int(ds.BitsAllocated), int(ds.BitsStored), int(ds.PixelRepresentation) == 1
        count = int(ds.Rows) * int(ds.Columns) * int(ds.get("NumberOfFrames") or 1) * int(ds.get("SamplesPerPixel") or 1)
    except (AttributeError, TypeError, ValueError):
        return None
    if not syntax.is_transfer_syntax or syntax.is_compressed or allocated not in (8, 16, 32) or bits >= allocated:
        return None
    order = "<" if syntax.is_little_endian else ">"
    dtype = np.dtype(f"{order}{'i' if signed else 'u'}{allocated // 8}")
    data = ds.PixelData
    if len(data) < count * dtype.itemsize:
        return None
    return np.frombuffer(data, dtype=dtype, count=count)


def _decoder_available(syntax: UID) -> bool:
    from pydicom.pixels import get_decoder

    try:
        return get_decoder(syntax).is_available
    except NotImplementedError:  # MPEG, JPIP, unknown UIDs: pydicom has no decoder at all
        return False


def to_hu(stored: np.ndarray, slope: float, intercept: float, path: Path) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below, not warned
        hu = stored.astype(np.float32) * slope + intercept
    if not np.isfinite(hu).all():
        raise DataError(f"RescaleSlope {slope:g} / RescaleIntercept {intercept:g} overflow float32 HU", path)
    return hu

