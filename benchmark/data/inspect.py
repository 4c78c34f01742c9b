"""What is in this file or folder? One JSON-ready summary of a DICOM slice, series or NIfTI volume.

It answers the first questions asked of any new dataset (is it CT, what shape, what voxel
size, is the HU scale sane) before a task is written for it, and it refuses the folders
that would later be read wrongly: mixed series, mixed orientations and uneven slice gaps.
A file that is not a CT image is refused with a description of what it is instead.

An Enhanced CT (multi-frame) file holds a whole series: it is described as a volume, on its own or
as the one file of a folder, from its frames' geometry and HU (``dicom_frames``), with the checks
a classic series folder gets (one series, one orientation, even slice gaps, one frame size).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

from benchmark.core.errors import DataError
from benchmark.data.readers.dicom import has_functional_groups, iter_dicom_files, read_ct_slice, read_header
from benchmark.data.readers.dicom_describe import image_type_values, orientation_label, orientation_of, sop_class_of
from benchmark.data.readers.dicom_frames import even_gaps, read_ct_frames
from benchmark.data.readers.nifti import read_volume


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
    header = read_header(path)
    if has_functional_groups(header):
        return {"path": str(path), "format": "dicom-enhanced", **_frames_volume(path, [path], [header])}
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
    if any(has_functional_groups(h) for h in headers):
        return {"path": str(folder), "format": "dicom-series", **_frames_volume(folder, files, headers)}
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


def _frames_volume(where: Path, files: list[Path], headers: list[pydicom.Dataset]) -> dict:
    """The volume made by the frames of ``files`` (Enhanced CT, possibly beside classic slices of
    the same series), ordered by z as a classic series is: shape, spacing, HU range, frames.

    Each file is read whole (``read_ct_frames``: CT, greyscale, finite HU, decoder installed; a
    non-CT object is refused saying what it is), one file in memory at a time, and each frame is
    rescaled by its own functional groups. ``where`` is what a refusal names: the file, or the
    folder of a series (whose headers ``_inspect_series`` has checked to be one series).
    """
    frames = []  # (z, file name, frame index, geometry, hu_min, hu_max, shape)
    for path in files:
        for hu, geometry in read_ct_frames(path):
            frames.append((geometry.position[2], path.name, geometry.frame, geometry,
                           float(hu.min()), float(hu.max()), hu.shape))
    frames.sort(key=lambda f: f[:3])
    geometries = [f[3] for f in frames]
    labels = {orientation_label(tuple(round(v, 2) for v in g.orientation)) for g in geometries}
    if len(labels) > 1:
        raise DataError(f"mixes {len(labels)} orientations between frames ({', '.join(sorted(labels))})", where)
    shapes = sorted({f[6] for f in frames})
    if len(shapes) > 1:
        raise DataError(f"frames have different sizes {shapes}", where)
    first, header = geometries[0], headers[0]
    return {"modality": header.get("Modality"), "shape": [len(frames), *shapes[0]],
            "spacing": [_even_gap(where, [g.position[2] for g in geometries], first.thickness),
                        *first.pixel_spacing],
            "hu_min": min(f[4] for f in frames), "hu_max": max(f[5] for f in frames),
            "n_slices": len(frames), "n_frames": len(frames), "n_files": len(files),
            "series_uid": str(header.get("SeriesInstanceUID", "")) or None,
            "patient_id": _text(header, "PatientID"), "body_part": _text(header, "BodyPartExamined"),
            "sop_class": getattr(sop_class_of(header), "name", None), "orientation": labels.pop(),
            "slice_thickness": first.thickness, "z_range": [geometries[0].position[2], geometries[-1].position[2]]}


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
    localizers = any("LOCALIZER" in image_type_values(h.get("ImageType")) for h in headers)
    why = "; ImageType LOCALIZER: these are localizer (scout) images, not an axial volume" if localizers else ""
    raise DataError(f"mixes {len(counts)} orientations (ImageOrientationPatient differs between files: "
                    f"{shown}){why}", folder)


def _slice_spacing(folder: Path, ordered: list[pydicom.Dataset]) -> float | None:
    """Gap between slice positions, which is what voxel geometry needs (SliceThickness
    may differ from it for overlapping reconstructions); SliceThickness only as a fallback."""
    if len(ordered) < 2 or any(h.get("ImagePositionPatient") is None for h in ordered):
        thickness = ordered[0].get("SliceThickness")
        return float(thickness) if thickness not in (None, "") else None
    return _even_gap(folder, [slice_position(h) for h in ordered], None)


def _even_gap(folder: Path, positions: list[float], thickness: float | None) -> float | None:
    """The median gap between sorted slice positions, refused when the gaps are uneven;
    ``thickness`` when there is a single slice (no gap to measure)."""
    if len(positions) < 2:
        return thickness
    gaps, median, even = even_gaps(positions)
    if not even:
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
