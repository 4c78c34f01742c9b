"""DICOM CT frames to Hounsfield units, each with where it lies: classic slices and Enhanced CT.

A classic CT series is one file per slice, its geometry and rescale in top-level tags. An
Enhanced CT (multi-frame CT Image Storage, and its Legacy Converted form) holds the whole
series in one file and keeps those facts in functional groups: per frame, or shared by all
frames. Reading both into the same (HU, geometry) pairs lets every consumer (series checks,
slice indexes, tasks) treat a series the same way whichever way the scanner wrote it, and the
single-frame checks of ``dicom.py`` (greyscale, finite HU, BitsStored, decoder) apply unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from benchmark.core.errors import DataError
from benchmark.data.readers.dicom import (
    check_greyscale,
    check_single_frame,
    classic_hu,
    frame_count,
    has_functional_groups,
    open_image,
    pixels,
    rescale,
    tag_value,
    to_hu,
)

#: Relative tolerance on slice gaps; scanners write positions rounded to ~0.01 mm.
GAP_TOLERANCE = 0.01


def even_gaps(positions: list[float]) -> tuple[np.ndarray, float, bool]:
    """The gaps between sorted slice positions, their median, and whether every gap is within
    ``GAP_TOLERANCE`` of it: the one rule for "a missing or duplicated slice", which ``data
    inspect`` refuses and the series index classes as irregular."""
    gaps = np.diff(positions)
    median = float(np.median(gaps))
    return gaps, median, bool(median > 0 and np.all(np.abs(gaps - median) <= GAP_TOLERANCE * median))


@dataclass(frozen=True)
class FrameGeometry:
    """Where one frame lies in the patient: what slice ordering, spacing and orientation checks need."""

    position: tuple[float, float, float]  # ImagePositionPatient of the frame
    orientation: tuple[float, ...]  # 6 numbers, ImageOrientationPatient
    pixel_spacing: tuple[float, float]  # (row, col) mm
    thickness: float | None  # SliceThickness mm
    frame: int  # 0-based frame index within the file (0 for single-frame)


def frame_geometry(ds: pydicom.Dataset, path: Path) -> list[FrameGeometry]:
    """One entry per frame, from the header only (works on a ``stop_before_pixels`` dataset).

    A classic single-frame file gives one entry from its top-level tags; an Enhanced CT gives
    one per frame from its per-frame functional groups, falling back to the shared ones (where
    writers put what all frames have in common, typically orientation and pixel spacing).
    Missing or malformed geometry is a DataError naming the file (and the frame): a frame
    without a position cannot be put in its place in the volume.
    """
    path = Path(path)
    if not has_functional_groups(ds):
        check_single_frame(ds, path)
        return [_classic_geometry(ds, path)]
    n_frames = frame_count(ds, path)
    per_frame = _items(ds, "PerFrameFunctionalGroupsSequence", path)
    if len(per_frame) != n_frames:
        raise DataError(f"has {len(per_frame)} PerFrameFunctionalGroupsSequence item(s) for its "
                        f"{n_frames} frame(s)", path)
    shared = _items(ds, "SharedFunctionalGroupsSequence", path)[:1]
    return [_enhanced_geometry(item, shared, index, n_frames, path) for index, item in enumerate(per_frame)]


def read_ct_frames(path: Path, require_ct: bool = True) -> list[tuple[np.ndarray, FrameGeometry]]:
    """HU (float32, (Rows, Columns), all finite) per frame, with its geometry, in file order.

    A classic single-frame file gives exactly what ``read_ct_slice`` gives, and one geometry.
    An Enhanced CT gives every frame, each rescaled by its own PixelValueTransformationSequence
    (per-frame or shared): frames of one file may carry different rescales. The checks are
    those of ``read_ct_slice`` (CT, greyscale, finite HU, BitsStored, decoder installed).
    """
    path = Path(path)
    ds = open_image(path, require_ct)
    if not has_functional_groups(ds):
        hu = classic_hu(ds, path)
        return [(hu, frame_geometry(ds, path)[0])]
    geometry = frame_geometry(ds, path)
    rescales = _frame_rescales(ds, len(geometry), path)
    check_greyscale(ds, path)
    stored = pixels(ds, path, frames=len(geometry))
    stored = stored.reshape(len(geometry), *stored.shape[-2:])  # one frame comes back as (Rows, Columns)
    return [(to_hu(stored[g.frame], *rescales[g.frame], path), g) for g in geometry]


def _frame_rescales(ds: pydicom.Dataset, n_frames: int, path: Path) -> list[tuple[float, float]]:
    """Each frame's (slope, intercept): its PixelValueTransformationSequence, per-frame first,
    then shared, then top-level tags (some converters copy them there); never a default."""
    shared = _items(ds, "SharedFunctionalGroupsSequence", path)[:1]
    per_frame = _items(ds, "PerFrameFunctionalGroupsSequence", path)
    rescales = []
    for index, item in enumerate(per_frame[:n_frames]):
        macro = _macro([item, *shared], "PixelValueTransformationSequence", path)
        rescales.append(rescale(macro if macro is not None else ds, path, where=_where(index, n_frames)))
    return rescales


def _classic_geometry(ds: pydicom.Dataset, path: Path) -> FrameGeometry:
    """Geometry from a single-frame file's top-level Image Plane tags."""
    return FrameGeometry(
        position=_numbers(tag_value(ds, "ImagePositionPatient", path), 3, "ImagePositionPatient", "", path),
        orientation=_numbers(tag_value(ds, "ImageOrientationPatient", path), 6, "ImageOrientationPatient", "",
                             path),
        pixel_spacing=_numbers(tag_value(ds, "PixelSpacing", path), 2, "PixelSpacing", "", path),
        thickness=_thickness(tag_value(ds, "SliceThickness", path), "", path),
        frame=0)


def _enhanced_geometry(item: pydicom.Dataset, shared: list[pydicom.Dataset], index: int, n_frames: int,
                       path: Path) -> FrameGeometry:
    """One frame's geometry from its functional groups (per-frame item first, then shared)."""
    groups, where = [item, *shared], _where(index, n_frames)

    def value(sequence: str, keyword: str):
        macro = _macro(groups, sequence, path)
        return None if macro is None else tag_value(macro, keyword, path)

    return FrameGeometry(
        position=_numbers(value("PlanePositionSequence", "ImagePositionPatient"), 3,
                          "ImagePositionPatient (PlanePositionSequence)", where, path),
        orientation=_numbers(value("PlaneOrientationSequence", "ImageOrientationPatient"), 6,
                             "ImageOrientationPatient (PlaneOrientationSequence)", where, path),
        pixel_spacing=_numbers(value("PixelMeasuresSequence", "PixelSpacing"), 2,
                               "PixelSpacing (PixelMeasuresSequence)", where, path),
        thickness=_thickness(value("PixelMeasuresSequence", "SliceThickness"), where, path),
        frame=index)


def _macro(groups: list[pydicom.Dataset], sequence: str, path: Path) -> pydicom.Dataset | None:
    """The first item of ``sequence`` in the first group that has one: a per-frame value
    overrides the shared one, as the standard defines functional groups."""
    for group in groups:
        items = _items(group, sequence, path)
        if items:
            return items[0]
    return None


def _items(ds: pydicom.Dataset, sequence: str, path: Path) -> list[pydicom.Dataset]:
    """A sequence's items ([] when absent); anything but a sequence is a DataError."""
    value = tag_value(ds, sequence, path)
    if value is None:
        return []
    if not isinstance(value, pydicom.Sequence):
        raise DataError(f"has a malformed {sequence} (not a sequence)", path)
    return list(value)


def _numbers(value, count: int, name: str, where: str, path: Path) -> tuple[float, ...]:
    """``count`` finite numbers from a multi-valued DS, or a DataError saying which tag and frame."""
    lead = f"{where}: " if where else ""
    if value is None:
        raise DataError(f"{lead}has no {name}, so where its pixels lie is unknown", path)
    values = list(value) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise DataError(f"{lead}{name} {values!r} is not {count} numbers", path) from None
    if len(numbers) != count or not all(math.isfinite(n) for n in numbers):
        raise DataError(f"{lead}{name} {values!r} is not {count} finite numbers", path)
    return numbers


def _thickness(value, where: str, path: Path) -> float | None:
    """SliceThickness is optional in the Image Plane module (type 2): absent or empty is None."""
    if value in (None, ""):
        return None
    return _numbers(value, 1, "SliceThickness", where, path)[0]


def _where(index: int, n_frames: int) -> str:
    """'frame 3 of 40': 1-based, as DICOM numbers frames, so a viewer's frame number matches."""
    return f"frame {index + 1} of {n_frames}"
