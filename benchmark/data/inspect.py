"""What is in this file or folder? One JSON-ready summary of a DICOM slice, series or NIfTI volume.

It answers the first questions asked of any new dataset (is it CT, what shape, what voxel
size, is the HU scale sane) before a task is written for it, and it refuses the folders
that would later be read wrongly: mixed series, mixed orientations and uneven slice gaps.
A file that is not a CT image is refused with a description of what it is instead.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

from benchmark.core.errors import DataError
from benchmark.data.readers.dicom import iter_dicom_files, read_ct_slice, read_header
from benchmark.data.readers.dicom_describe import orientation_label, orientation_of
from benchmark.data.readers.nifti import read_volume

#: Relative tolerance on slice gaps; scanners write positions rounded to ~0.01 mm.
GAP_TOLERANCE = 0.01


def inspect_path(path: Path) -> dict:
    """Summary of a DICOM file, a one-series DICOM folder, or a .nii/.nii.gz volume."""
    path = Path(path)
    if not path.exists():
        raise DataError("does not exist", path)
    if path.is_dir():
        return _inspect_series(path)
    if path.name.endswith((".nii", ".nii.gz")):
        return _inspect_nifti(path)
    return _inspect_dicom_file(path)


def slice_position(ds: pydicom.Dataset) -> float:
    """Sort key along the patient axis: z of ImagePositionPatient, else InstanceNumber.

    File names and InstanceNumber are not reliably in anatomical order; position is.
    """
    try:
        position = ds.get("ImagePositionPatient")
        if position is not None and len(position) == 3:
            return float(position[2])
        return float(ds.get("InstanceNumber") or 0)
    except (TypeError, ValueError) as exc:
        raise DataError(f"ImagePositionPatient or InstanceNumber is not a number ({exc})",
                        getattr(ds, "filename", None)) from None


def _inspect_dicom_file(path: Path) -> dict:
    hu, ds = read_ct_slice(path)
    thickness = ds.get("SliceThickness")
    return {"path": str(path), "format": "dicom", "modality": ds.get("Modality"),
            "shape": list(hu.shape),
            "spacing": [float(thickness) if thickness not in (None, "") else None, *_pixel_spacing(ds)],
            "hu_min": float(hu.min()), "hu_max": float(hu.max())}


def _inspect_series(folder: Path) -> dict:
    files = list(iter_dicom_files(folder))
    if not files:
        raise DataError("holds no DICOM files (*.dcm)", folder)
    headers = [read_header(f) for f in files]
    _check_one_series(folder, headers)
    order = sorted(range(len(files)), key=lambda i: (slice_position(headers[i]), files[i].name))
    hu_min, hu_max, shapes = np.inf, -np.inf, set()
    for i in order:  # one slice in memory at a time: a series can be gigabytes
        hu, _ = read_ct_slice(files[i])
        hu_min, hu_max = min(hu_min, float(hu.min())), max(hu_max, float(hu.max()))
        shapes.add(hu.shape)
    if len(shapes) > 1:
        raise DataError(f"slices have different sizes {sorted(shapes)}", folder)
    first = headers[order[0]]
    return {"path": str(folder), "format": "dicom-series", "modality": first.get("Modality"),
            "shape": [len(files), *shapes.pop()],
            "spacing": [_slice_spacing(folder, [headers[i] for i in order]), *_pixel_spacing(first)],
            "hu_min": hu_min, "hu_max": hu_max, "n_slices": len(files),
            "series_uid": str(first.SeriesInstanceUID), "patient_id": _text(first, "PatientID"),
            "body_part": _text(first, "BodyPartExamined")}


def check_series(folder: Path, files: list[Path]) -> None:
    """One series with even slice gaps, from the headers alone: what a series-level task needs."""
    headers = [read_header(f) for f in files]
    _check_one_series(folder, headers)
    if all(h.get("ImagePositionPatient") is not None for h in headers):
        _slice_spacing(folder, sorted(headers, key=slice_position))


def _check_one_series(folder: Path, headers: list[pydicom.Dataset]) -> None:
    uids = sorted({str(h.get("SeriesInstanceUID", "")) for h in headers})
    if len(uids) > 1:
        shown = ", ".join(uids[:3]) + (f" and {len(uids) - 3} more" if len(uids) > 3 else "")
        raise DataError(f"mixes {len(uids)} series (SeriesInstanceUID {shown}); "
                        "point at one series folder", folder)
    _check_one_orientation(folder, headers)


def _check_one_orientation(folder: Path, headers: list[pydicom.Dataset]) -> None:
    """Slices of one volume share ImageOrientationPatient. Without this check a sagittal and a
    coronal localizer at one position come out as "inconsistent slice gaps", hiding the cause."""
    counts: dict[str, int] = {}
    for header in headers:
        orientation = orientation_of(header)
        if orientation is not None:
            label = orientation_label(tuple(round(v, 2) for v in orientation))
            counts[label] = counts.get(label, 0) + 1
    if len(counts) < 2:
        return
    shown = ", ".join(f"{label} in {n} file(s)" for label, n in counts.items())
    localizers = any("LOCALIZER" in _image_type(h) for h in headers)
    why = "; ImageType LOCALIZER: these are localizer (scout) images, not an axial volume" if localizers else ""
    raise DataError(f"mixes {len(counts)} orientations (ImageOrientationPatient differs between files: "
                    f"{shown}){why}", folder)


def _image_type(ds: pydicom.Dataset) -> list[str]:
    value = ds.get("ImageType")
    if value is None or isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value]


def _slice_spacing(folder: Path, ordered: list[pydicom.Dataset]) -> float | None:
    """Gap between slice positions, which is what voxel geometry needs (SliceThickness
    may differ from it for overlapping reconstructions); SliceThickness only as a fallback."""
    if len(ordered) < 2 or any(h.get("ImagePositionPatient") is None for h in ordered):
        thickness = ordered[0].get("SliceThickness")
        return float(thickness) if thickness not in (None, "") else None
    gaps = np.diff([slice_position(h) for h in ordered])
    median = float(np.median(gaps))
    if median <= 0 or np.any(np.abs(gaps - median) > GAP_TOLERANCE * median):
        raise DataError(f"slice gaps are inconsistent (from {gaps.min():g} to {gaps.max():g} mm); "
                        "missing or duplicated slices?", folder)
    return median


def _pixel_spacing(ds: pydicom.Dataset) -> list[float | None]:
    spacing = ds.get("PixelSpacing")
    return [float(spacing[0]), float(spacing[1])] if spacing else [None, None]


def _text(ds: pydicom.Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    return str(value) if value not in (None, "") else None


def _inspect_nifti(path: Path) -> dict:
    volume = read_volume(path)
    return {"path": str(path), "format": "nifti", "modality": None,
            "shape": list(volume.array.shape), "spacing": list(volume.spacing),
            "hu_min": float(volume.array.min()), "hu_max": float(volume.array.max())}
