"""DICOM CT slices to Hounsfield units, with pydicom.

Every failure names the file: a dataset of thousands of slices is only debuggable
when the one broken file is pointed at.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from ..errors import DataError


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
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError, ValueError) as exc:
        raise DataError(f"not a readable DICOM file ({type(exc).__name__}: {exc})", path) from None


def read_ct_slice(path: Path, require_ct: bool = True) -> tuple[np.ndarray, pydicom.Dataset]:
    """The slice in HU (float32) and its header.

    Rescale is applied by hand from the two tags because a CT slice without them has
    no defined HU scale, and silently assuming slope 1 / intercept 0 shifts every value.
    """
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError) as exc:
        raise DataError(f"not a readable DICOM file ({type(exc).__name__}: {exc})", path) from None
    modality = getattr(ds, "Modality", None)
    if require_ct and modality != "CT":
        raise DataError(f"modality is {modality!r}, expected 'CT'", path)
    if "PixelData" not in ds:
        raise DataError("has no PixelData", path)
    if "RescaleSlope" not in ds or "RescaleIntercept" not in ds:
        raise DataError("has no RescaleSlope/RescaleIntercept, so its HU scale is unknown", path)
    try:
        stored = ds.pixel_array
    except Exception as exc:  # pydicom raises several types for truncated or undecodable data
        raise DataError(f"cannot decode pixel data ({type(exc).__name__}: {exc})", path) from None
    hu = stored.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return hu, ds
