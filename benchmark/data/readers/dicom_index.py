"""An index of the DICOM series in an export tree: what each series is, from the headers alone.

A scanner or PACS export holds, per study, the axial volumes a CT task wants beside localizers,
reformats, screenshots, dose reports and other modalities. Before a task can pick its series,
each one is named for what it is, one row per SeriesInstanceUID, in one of these classes:

* ``axial-ct``: CT slices (or Enhanced CT frames) with one orientation whose normal is within
  ~25 degrees of the patient's z axis, at least two of them, evenly spaced along that normal;
* ``localizer``: ImageType LOCALIZER, a non-axial or mixed orientation, or a single slice (scout);
* ``derived``: ImageType DERIVED or SECONDARY (reformats, MIPs), or a Secondary Capture object;
* ``non-image``: an object without an image (SR, RT, SEG, dose, KO, PR), as ``not_ct_reason`` names it;
* ``other-modality``: an image of another modality (MR, CR, PT...);
* ``irregular``: axial CT that is not one even volume (a missing or duplicated slice, a slice
  without a position, slices of different sizes), so it cannot be read as a volume as it is.

Reading and grouping are pydicom's, header only (``read_header``, ``stop_before_pixels``), with the
frame geometry of ``dicom_frames`` so that an Enhanced CT file is one series of N frames. Not
SimpleITK's GDCM series sorting: it groups files by UID and geometry but cannot say which series
are localizers, derived or non-image objects, and it would be a second DICOM reader beside pydicom.

A DICOMDIR at the root of the tree names the files (its records' ReferencedFileID); without one the
tree is walked (``iter_dicom_files``). A file that cannot be read is a problem line naming it;
the others are still indexed. Indexes are cached by the tree's identity (see ``tree_key``).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pydicom

from benchmark.core.atomic import write_json
from benchmark.core.errors import DataError
from benchmark.data.readers.dicom import has_functional_groups, iter_dicom_files, read_header, tag_value
from benchmark.data.readers.dicom_describe import (
    image_type_values,
    not_ct_reason,
    orientation_label,
    orientation_of,
    sop_class_of,
)
from benchmark.data.readers.dicom_frames import even_gaps, frame_geometry
from benchmark.data.readers.failure import one_line

INDEX_VERSION = 1  # part of the cache key: a new classification never reuses an old index
CLASSES = ("axial-ct", "localizer", "derived", "non-image", "other-modality", "irregular")
AXIAL_MIN_NORMAL_Z = 0.9  # |n_z| of the orientation normal: what dicom_describe also calls axial
_DICOMDIR_SOP = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage
_SECONDARY_CAPTURE = "Secondary Capture"


def tree_listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root``: relative path -> (size, mtime_ns). One ``stat`` per file."""
    root = Path(root)
    stats = {p: p.stat() for p in sorted(root.rglob("*")) if p.is_file()}
    return {p.relative_to(root).as_posix(): (st.st_size, st.st_mtime_ns) for p, st in stats.items()}


def tree_key(listing: dict[str, tuple[int, int]]) -> str:
    """The tree's identity for the cache: relative paths, sizes and mtimes, hashed.

    Cheap (no byte of a file is read) and sure to change when a file is added, removed,
    rewritten or touched; unlike the dataset fingerprint it does not follow a copy of the tree
    (new mtimes), which then costs one more header pass, not a wrong index.
    """
    digest = hashlib.sha256(f"dicom-index-v{INDEX_VERSION}\n".encode())
    for rel, (size, mtime) in listing.items():
        digest.update(f"{rel}\0{size}\0{mtime}\n".encode())
    return digest.hexdigest()


def index_tree(root: Path, cache_dir: Path | None = None) -> dict:
    """The index of ``root``: ``{"root", "source", "series", "problems", "notes"}``.

    ``series`` holds one row per series (see ``_series_row``), ``problems`` one line per file
    that could not be read, ``notes`` what was left out on purpose. With ``cache_dir`` the index
    is kept there as ``<tree_key>.json`` (written atomically) and read back while the tree is
    unchanged, so a second call reads no header.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError("is not a directory", root)
    key = tree_key(tree_listing(root))
    cached = cache_dir / f"{key}.json" if cache_dir is not None else None
    if cached is not None and cached.is_file():
        try:
            return {**json.loads(cached.read_text()), "root": str(root)}
        except (OSError, ValueError):  # a damaged cache file is rebuilt, never trusted
            pass
    index = _build(root)
    if cached is not None:
        write_json(cached, index)
    return {**index, "root": str(root)}


def public_row(row: dict) -> dict:
    """A series row without its per-frame list: what ``ctbench data index --json`` prints."""
    return {k: v for k, v in row.items() if k != "instances"}


def _build(root: Path) -> dict:
    files, source, problems, notes = _files(root)
    groups: dict[str, list[dict]] = {}
    for path in files:
        try:
            facts = _facts(root, path)
        except DataError as exc:
            problems.append(str(exc))
            continue
        if facts is None:
            notes.append(f"{path}: is a DICOMDIR (a directory of files), not a series; not indexed")
        else:
            groups.setdefault(facts["series"], []).append(facts)
    series = sorted((_series_row(uid, facts) for uid, facts in groups.items()),
                    key=lambda r: (r["patient"] or "", r["study"] or "", r["series"]))
    return {"version": INDEX_VERSION, "source": source, "series": series, "problems": problems, "notes": notes}


def _files(root: Path) -> tuple[list[Path], str, list[str], list[str]]:
    """The files to index, where their list came from, and problems and notes about it."""
    dicomdir = root / "DICOMDIR"
    walked = [p for p in iter_dicom_files(root) if p != dicomdir]
    if not dicomdir.is_file():
        return walked, "walk", [], []
    try:
        named = _dicomdir_files(root, pydicom.dcmread(dicomdir))
    except Exception as exc:  # untrusted bytes: whatever pydicom raises is about this file
        return walked, "walk", [], [f"{dicomdir}: not a readable DICOMDIR ({one_line(exc)}); the tree was "
                                    "walked instead"]
    problems = [f"{p}: named by the DICOMDIR but absent" for p in named if not p.is_file()]
    left_out = sorted(set(walked) - set(named))
    notes = [f"{root}: {len(left_out)} DICOM file(s) not named by its DICOMDIR were not indexed, e.g. "
             f"{left_out[0].relative_to(root).as_posix()}"] if left_out else []
    return [p for p in named if p.is_file()], "DICOMDIR", problems, notes


def _dicomdir_files(root: Path, ds: pydicom.Dataset) -> list[Path]:
    """Every file a DICOMDIR's records reference (ReferencedFileID, relative to its folder),
    present or not: pydicom's ``FileSet`` drops an absent one with a warning, which the index
    must report instead."""
    named = set()
    for record in ds.DirectoryRecordSequence:
        parts = record.get("ReferencedFileID")
        if parts:
            named.add(root.joinpath(*([parts] if isinstance(parts, str) else list(parts))))
    return sorted(named)


def _facts(root: Path, path: Path) -> dict | None:
    """What the series rows need from one file's header (None for a DICOMDIR)."""
    ds = read_header(path)
    sop = sop_class_of(ds)
    if sop == _DICOMDIR_SOP:
        return None
    uid = tag_value(ds, "SeriesInstanceUID", path)
    if not uid:
        raise DataError("has no SeriesInstanceUID, so it belongs to no series", path)
    reason = not_ct_reason(ds)
    facts = {"path": path.relative_to(root).as_posix(), "series": str(uid),
             "patient": _text(ds, "PatientID", path), "study": _text(ds, "StudyInstanceUID", path),
             "description": _text(ds, "SeriesDescription", path), "kernel": _kernel(ds, path),
             "modality": _text(ds, "Modality", path), "sop_class": sop.name if sop else None,
             "image": sop is None or sop.name == str(sop) or "Image Storage" in sop.name,
             "reason": reason, "image_type": image_type_values(tag_value(ds, "ImageType", path)),
             "thickness": _number(ds, "SliceThickness"),
             "size": [tag_value(ds, "Rows", path), tag_value(ds, "Columns", path)], "frames": [], "error": None,
             "orientation": orientation_of(ds)}
    if reason is None and facts["image"]:
        try:
            geometry = frame_geometry(ds, path)
        except DataError as exc:
            facts["error"] = str(exc)
        else:
            multi = len(geometry) > 1 or has_functional_groups(ds)
            facts["frames"] = [{"frame": g.frame if multi else None, "position": list(g.position),
                                "orientation": list(g.orientation), "thickness": g.thickness} for g in geometry]
    return facts


def _series_row(uid: str, facts: list[dict]) -> dict:
    """One row of the index: who, what, how many slices, and its class with the reason."""
    facts = sorted(facts, key=lambda f: f["path"])
    first = facts[0]
    frames = [(f, frame) for f in facts for frame in f["frames"]]
    cls, why, normal, spacing, order = _classify(facts, frames)
    thickness = frames[0][1]["thickness"] if frames else first["thickness"]
    orientations = {tuple(round(v, 2) for v in frame["orientation"]) for _, frame in frames} or \
        {tuple(round(v, 2) for v in f["orientation"]) for f in facts if f["orientation"]}
    if order is None:  # not a volume: file order
        order = [(f, frame) for f, frame in frames] or [(f, None) for f in facts]
    n_slices = len(frames) if frames else len(facts)
    return {
        "patient": first["patient"], "study": first["study"], "series": uid, "description": first["description"],
        "kernel": first["kernel"], "modality": first["modality"], "thickness_mm": thickness,
        "slices": n_slices, "files": len(facts), "shape": [n_slices, *first["size"]],
        "orientation": (orientation_label(orientations.pop()) if len(orientations) == 1
                        else "mixed" if orientations else None),
        "normal": normal, "spacing_mm": spacing, "class": cls, "why": why,
        "instances": [{"path": f["path"], "frame": None if frame is None else frame["frame"]} for f, frame in order],
    }


def _classify(facts: list[dict], frames: list[tuple[dict, dict]]):
    """(class, why, normal, spacing, frames sorted along the normal): the first rule that holds."""
    first = facts[0]
    if not first["image"]:
        return "non-image", first["reason"] or f"{first['sop_class']} object, not an image", None, None, None
    if first["sop_class"] and _SECONDARY_CAPTURE in first["sop_class"]:
        return "derived", f"a {first['sop_class']} object (a captured picture, not slices)", None, None, None
    if first["reason"]:
        return "other-modality", first["reason"], None, None, None
    types = {t for f in facts for t in f["image_type"]}
    if "LOCALIZER" in types:
        return "localizer", "ImageType LOCALIZER (a scout image)", None, None, None
    if types & {"DERIVED", "SECONDARY"}:
        shown = "\\".join(first["image_type"])
        return "derived", f"ImageType {shown} (a reformat or derived image, not acquired slices)", None, None, None
    return _classify_geometry(facts, frames)


def _classify_geometry(facts: list[dict], frames: list[tuple[dict, dict]]):
    """The classes an image's geometry decides: localizer, irregular or axial-ct."""
    errors = [f["error"] for f in facts if f["error"]]
    if errors:
        more = f" (and {len(errors) - 1} more file(s))" if len(errors) > 1 else ""
        return "irregular", errors[0] + more, None, None, None
    orientations = {tuple(round(v, 2) for v in frame["orientation"]) for _, frame in frames}
    if len(orientations) > 1:
        labels = sorted({orientation_label(o) for o in orientations})
        return "localizer", f"mixes {len(orientations)} orientations ({'; '.join(labels)})", None, None, None
    orientation = np.array(frames[0][1]["orientation"])
    normal = np.cross(orientation[:3], orientation[3:])
    normal = normal / (np.linalg.norm(normal) or 1.0)
    shown = [round(float(v), 3) + 0.0 for v in normal]
    if abs(normal[2]) < AXIAL_MIN_NORMAL_Z:
        return "localizer", f"{orientation_label(tuple(orientation))}: not axial", shown, None, None
    if len(frames) == 1:
        return "localizer", "a single slice: a scout or key image, not a volume", shown, None, None
    if len({tuple(f["size"]) for f in facts}) > 1:
        return "irregular", f"slices have different sizes {sorted({tuple(f['size']) for f in facts})}", \
            shown, None, None
    along = sorted(frames, key=lambda item: (float(np.dot(item[1]["position"], normal)), item[0]["path"]))
    gaps, median, even = even_gaps([float(np.dot(frame["position"], normal)) for _, frame in along])
    if not even:
        return "irregular", (f"slice gaps along the normal are uneven (from {gaps.min():.4g} to {gaps.max():.4g} "
                             "mm): missing or duplicated slices?"), shown, None, None
    spacing = round(median, 4)
    return "axial-ct", f"{len(frames)} slices every {spacing:g} mm along the normal", shown, spacing, along


def _text(ds: pydicom.Dataset, keyword: str, path: Path) -> str | None:
    value = tag_value(ds, keyword, path)
    return str(value).strip() or None if value is not None else None


def _number(ds: pydicom.Dataset, keyword: str) -> float | None:
    """A header number for display (None when absent or not a finite number): the frame
    geometry, which is checked, wins wherever there is one."""
    try:
        value = float(ds.get(keyword))
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def _kernel(ds: pydicom.Dataset, path: Path) -> str | None:
    """ConvolutionKernel, top-level or (Enhanced CT) in the CT Reconstruction functional group."""
    value = tag_value(ds, "ConvolutionKernel", path)
    if value is None:
        for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
            try:
                value = getattr(ds, groups)[0].CTReconstructionSequence[0].ConvolutionKernel
                break
            except Exception:  # absent or malformed: the kernel is then unknown, which is allowed
                continue
    if value is None:
        return None
    values = [value] if isinstance(value, str) else list(value)
    return "\\".join(str(v).strip() for v in values) or None
