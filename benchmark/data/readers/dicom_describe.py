"""What a DICOM object is, in words: for the files that are not CT slices.

A refusal that only says "no RescaleSlope" leaves the user guessing; one that says
"an MR image" or "a Segmentation Storage object" tells them they pointed at the wrong
file. Everything here reads header tags only and never raises on odd values: a
description is best-effort, the reader's own checks stay the authority.
"""
from __future__ import annotations

import numpy as np
import pydicom
from pydicom.uid import UID

#: Letters whose spoken name starts with a vowel sound ("an MR", "an RTDOSE", "a CT").
_VOWEL_SOUND_LETTERS = set("AEFHILMNORSX")


def not_ct_reason(ds: pydicom.Dataset) -> str | None:
    """Why this object cannot be read as a CT slice, or None when it claims to be one
    (or its header is too bare to say: the reader then refuses it for what is missing).

    A known non-image SOP class (SEG, SR, RT structure/dose...) is named first: its
    Modality alone (e.g. SEG) would not say that it holds no image to take HU from.
    """
    sop_class = sop_class_of(ds)
    if sop_class is not None and sop_class.name != str(sop_class) and "Image Storage" not in sop_class.name:
        return f"{_article(sop_class.name)} {sop_class.name} object, not an image"
    modality = _get(ds, "Modality")
    if modality and modality != "CT":  # a missing Modality says nothing of what the object is
        return f"{_article(str(modality))} {modality} image: modality is {modality!r}, expected 'CT'"
    return None


def describe(ds: pydicom.Dataset) -> str:
    """One line: SOP class, modality, frames, rows x columns, orientation and ImageType."""
    sop_class = sop_class_of(ds)
    parts = [f"SOP class {sop_class.name if sop_class is not None else 'missing'}",
             f"Modality {_get(ds, 'Modality') or 'missing'}",
             f"{frames_of(ds)} frame(s) of {_get(ds, 'Rows')} x {_get(ds, 'Columns')}"]
    orientation = orientation_of(ds)
    if orientation is not None:
        parts.append(f"orientation {orientation_label(orientation)}")
    image_type = image_type_values(_get(ds, "ImageType"))
    if image_type:
        parts.append("ImageType " + "\\".join(image_type))
    return ", ".join(parts)


def frames_of(ds: pydicom.Dataset) -> int | str:
    """How many frames: NumberOfFrames, else (an enhanced object that left it out) one per
    PerFrameFunctionalGroupsSequence item, else 1; an unreadable count is shown as written."""
    frames = _get(ds, "NumberOfFrames")
    if frames not in (None, ""):
        return frames
    per_frame = _get(ds, "PerFrameFunctionalGroupsSequence")
    return len(per_frame) if isinstance(per_frame, pydicom.Sequence) and len(per_frame) else 1


def orientation_of(ds: pydicom.Dataset) -> tuple[float, ...] | None:
    """ImageOrientationPatient (6 numbers), from the top level or, for enhanced multi-frame
    objects such as Enhanced CT or SEG, the shared functional groups, else the first frame's
    (Enhanced CT may keep it per frame); None when absent or malformed."""
    value = _get(ds, "ImageOrientationPatient")
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        if value is not None:
            break
        try:
            value = getattr(ds, groups)[0].PlaneOrientationSequence[0].ImageOrientationPatient
        except Exception:  # absent or malformed: look further, or an object without an orientation
            value = None
    if value is None:
        return None
    try:
        numbers = tuple(float(v) for v in _as_list(value))
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == 6 and all(np.isfinite(numbers)) else None


def orientation_label(orientation: tuple[float, ...]) -> str:
    """'axial (normal 0,0,1)': the plane a reader recognises, and the normal that defines it."""
    normal = np.cross(orientation[:3], orientation[3:])
    axis = int(np.argmax(np.abs(normal)))
    plane = ("sagittal", "coronal", "axial")[axis] if abs(normal[axis]) > 0.9 else "oblique"
    shown = ",".join(f"{v:.3g}" for v in np.round(normal, 3) + 0.0)  # + 0.0 turns -0 into 0
    return f"{plane} (normal {shown})"


def image_type_values(value) -> list[str]:
    """ImageType's values, stripped and upper-cased (ORIGINAL, PRIMARY, LOCALIZER...); [] when absent.
    Callers read the tag their own way: strictly where a malformed value is the file's problem."""
    if value is None:
        return []
    return [str(v).strip().upper() for v in _as_list(value) if str(v).strip()]


def sop_class_of(ds: pydicom.Dataset) -> UID | None:
    """SOPClassUID, or the file meta's MediaStorageSOPClassUID; None when neither is there."""
    value = _get(ds, "SOPClassUID") or _get(getattr(ds, "file_meta", pydicom.Dataset()), "MediaStorageSOPClassUID")
    return UID(str(value)) if value else None


def _get(ds: pydicom.Dataset, keyword: str):
    try:
        return ds.get(keyword)
    except Exception:  # pydicom converts lazily; a malformed value is reported elsewhere
        return None


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]


def _article(word: str) -> str:
    return "an" if word[:1].upper() in _VOWEL_SOUND_LETTERS and (word[:2].isupper() or word[:1] in "AEIO") \
        else "a"
