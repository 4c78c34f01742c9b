"""``luna16-nodule-patch``: is a LUNA16 candidate a nodule? 2-D axial patches around each
candidate of ``candidates_V2.csv``, class 1 (nodule) against class 0 (not a nodule).

Data: https://luna16.grand-challenge.org/Data/ (Zenodo records 3723295 and 4121926:
``subset0.zip`` … ``subset9.zip``, ``annotations.csv``, ``candidates_V2.zip``); license
CC BY 4.0, the scans being LIDC-IDRI's (TCIA, CC BY 3.0). ``--data luna16-nodule-patch=DIR``
points at the folder holding ``subset*/<seriesuid>.mhd`` (+ ``.raw``) and
``candidates_V2.csv`` (also found as ``candidates_V2/candidates_V2.csv``, as the zip unpacks).
Any subset of the ten folders will do; ``annotations.csv`` is not needed.

Quirks handled here:

* Candidates are in world millimetres. They become voxel indices through the image's
  origin, spacing and direction (SimpleITK's ``TransformPhysicalPointToContinuousIndex``),
  never origin and spacing alone, which would put a candidate of a flipped scan on the
  wrong side of the body. A candidate that falls outside its scan is an error.
* ~750k candidates are 99.8 % negative. Per scan every nodule candidate is kept with at
  most NEGATIVES_PER_NODULE non-nodule candidates per nodule candidate, at least
  NEGATIVES_PER_NODULE per scan: those whose CSV row has the smallest SHA-1, which does not
  depend on the row order or a seed (roughly ten to one on the full set).
* The patch covers PATCH_MM x PATCH_MM millimetres (as in Setio et al., IEEE TMI 2016), so
  one patch shows the same anatomy at any in-plane spacing; beyond the scan it is air.
* No official test split: the ten subsets are folds, and the scan (seriesuid) is the patient.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np

from benchmark.core.errors import ConfigError, DataError
from benchmark.core.specs import Preprocessing, TaskSpec, Window
from benchmark.data.readers.table import read_index
from benchmark.data.readers.volume import axial_image
from benchmark.data.task import Case, Task
from benchmark.evaluation.recipes import study_recipe

CANDIDATES = ("candidates_V2.csv", "candidates_V2/candidates_V2.csv")
COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "class")
NEGATIVES_PER_NODULE = 10
PATCH_MM = 50.0
AIR_HU = -1024.0


@dataclass(frozen=True)
class Candidate:
    line: int  # the CSV line, which names the case
    world: tuple[float, float, float]  # x, y, z in mm
    label: int
    digest: str  # SHA-1 of the CSV row: the order-free subsampling key


class Luna16NodulePatch(Task):
    spec = TaskSpec(
        name="luna16-nodule-patch",
        version="1",
        description="Nodule or not, for LUNA16 candidates (candidates_V2), as 50 mm axial patches; "
                    f"non-nodules subsampled to {NEGATIVES_PER_NODULE} per nodule per scan.",
        domain="ct",
        kind="classification",
        class_names=["non_nodule", "nodule"],
        metrics=["auc", "balanced_accuracy", "accuracy", "f1_macro"],
        main_metric="auc",
        default_scales=[1.0, 0.5, 0.1],  # 1 % of ~700 pool scans is too few nodule scans per stratum
        license="CC BY 4.0 (the scans are LIDC-IDRI's, TCIA, CC BY 3.0)",
        reference="https://luna16.grand-challenge.org/Data/",
        citation="Setio A. A. A., Traverso A., de Bel T., et al. Validation, comparison, and combination of algorithms "
                 "for automatic detection of pulmonary nodules in computed tomography images: the LUNA16 challenge. "
                 "Medical Image Analysis 42:1-13, 2017.",
        preprocessing=Preprocessing(
            windows=[Window(center=-600, width=1500), Window(center=40, width=400), Window(center=400, width=1800)],
            channels=3, size=64),
        data_layout="DIR/subset0..9/<seriesuid>.mhd + .raw and DIR/candidates_V2.csv "
                    "(seriesuid, coordX, coordY, coordZ in mm, class)",
        training=study_recipe("chestxray8", class_weights=None),  # the study's recipe for a 2-D classification of this size
    )

    def units(self, root: Path) -> list[Path]:
        _candidates(root)  # a missing or malformed index is the folder's problem, reported once
        scans = sorted(p for p in root.glob("subset*/*.mhd") if not p.name.startswith("._"))
        if not scans:
            raise DataError("holds no subset*/<seriesuid>.mhd scans", root)
        return scans

    def read(self, root: Path, unit: Path) -> Iterator[Case]:
        candidates = _candidates(root).get(unit.stem)
        if not candidates:
            raise DataError(f"has no candidates in {_candidates_file(root).name}", unit)
        image = read_scan(unit)
        volume = _xyz(image)
        spacing = image.GetSpacing()
        half = [max(1, round(PATCH_MM / s)) // 2 for s in spacing[:2]]  # voxels either side, x then y
        for candidate in subsample(candidates):
            i, j, k = world_to_voxel(image, candidate.world, unit, candidate.line)
            plane = axial_image(volume, k, self.spec.preprocessing.neighbours)
            yield Case(f"{unit.relative_to(root).as_posix()}#{candidate.line}", unit.stem,
                       _patch(plane, j, i, half[1], half[0]), candidate.label,
                       {"spacing": (float(spacing[1]), float(spacing[0]))})


def read_scan(path: Path):
    """The scan as a SimpleITK image, which keeps the header's origin, spacing and direction."""
    sitk = _sitk()
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise DataError(f"not a readable MetaImage header ({_itk_reason(exc)})", path) from None
    _check_data_file(path, reader)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise DataError(f"not a readable MetaImage scan ({_itk_reason(exc)})", path) from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise DataError(f"is not a 3-D greyscale scan ({image.GetDimension()}-D, "
                        f"{image.GetNumberOfComponentsPerPixel()} components)", path)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    if not np.allclose(np.abs(direction), np.eye(3), atol=1e-3):
        raise DataError(f"direction {np.round(direction, 3).tolist()} is not axis-aligned, so its array "
                        "slices are not axial", path)
    return image


def _check_data_file(path: Path, reader) -> None:
    """ITK's own message for a missing or short .raw names neither file nor cause, so check first."""
    sitk = _sitk()
    with open(path, "rb") as handle:  # the header is text; an .mha would carry its data after it
        text = handle.read(1 << 16).decode("latin-1")
    header = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    header = {k.strip(): v.strip() for k, v in header.items()}
    name = header.get("ElementDataFile", "")
    if name in ("", "LOCAL", "LIST") or name.startswith("LIST") or "%" in name:
        return  # data inside the header file, or a slice list: left to ITK
    data = path.parent / name
    if not data.is_file():
        raise DataError(f"its data file {name} is missing", path)
    if header.get("CompressedData", "False").lower() != "true":
        pixel_bytes = sitk.Image([1] * 3, reader.GetPixelID(), reader.GetNumberOfComponents()).GetSizeOfPixelComponent()
        expected = int(np.prod(reader.GetSize())) * reader.GetNumberOfComponents() * pixel_bytes
        if data.stat().st_size < expected:
            raise DataError(f"is {data.stat().st_size} bytes, the header's {reader.GetSize()} voxels need {expected}",
                            data)


def _sitk():
    """SimpleITK, imported when a scan is read, so that the task list loads without it."""
    try:
        import SimpleITK
    except ImportError:
        raise ConfigError("task luna16-nodule-patch reads MetaImage scans with SimpleITK: "
                          "pip install SimpleITK") from None
    return SimpleITK


def _itk_reason(exc: RuntimeError) -> str:
    """The line of an ITK exception that says what went wrong, without the C++ source location."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith("Exception thrown")]
    return (useful or lines or ["unknown error"])[-1]


def world_to_voxel(image, world: tuple[float, float, float], path: Path, line: int) -> tuple[int, int, int]:
    """Nearest voxel (i, j, k) = (x, y, z) of a point in mm: D^-1 (p - origin) / spacing."""
    index = np.rint(image.TransformPhysicalPointToContinuousIndex([float(c) for c in world])).astype(int)
    size = image.GetSize()
    if not all(0 <= n < s for n, s in zip(index, size)):
        raise DataError(f"candidate on line {line} at {tuple(world)} mm maps to voxel {tuple(index.tolist())}, "
                        f"outside the scan's {size}", path)
    return int(index[0]), int(index[1]), int(index[2])


def subsample(candidates: list[Candidate]) -> list[Candidate]:
    """Every nodule candidate, and the non-nodules with the smallest row digests, in CSV order."""
    nodules = [c for c in candidates if c.label == 1]
    keep = NEGATIVES_PER_NODULE * max(1, len(nodules))
    negatives = sorted((c for c in candidates if c.label == 0), key=lambda c: c.digest)[:keep]
    return sorted(nodules + negatives, key=lambda c: c.line)


def _xyz(image) -> np.ndarray:
    return _sitk().GetArrayViewFromImage(image).astype(np.float32).transpose(2, 1, 0)  # (z, y, x) -> (x, y, z)


def _patch(plane: np.ndarray, row: int, col: int, half_rows: int, half_cols: int) -> np.ndarray:
    """(2 half_rows, 2 half_cols) around (row, col) of a (rows, cols) or (C, rows, cols) plane, air outside."""
    pad = [(0, 0)] * (plane.ndim - 2) + [(half_rows, half_rows), (half_cols, half_cols)]
    padded = np.pad(plane, pad, constant_values=AIR_HU)
    return np.ascontiguousarray(padded[..., row:row + 2 * half_rows, col:col + 2 * half_cols])


def _candidates_file(root: Path) -> Path:
    for name in CANDIDATES:
        if (root / name).is_file():
            return root / name
    raise DataError(f"has no {' or '.join(CANDIDATES)} (LUNA16's candidate list)", root)


def _candidates(root: Path) -> dict[str, list[Candidate]]:
    path = _candidates_file(root)
    stat = os.stat(path)
    return _parse_candidates(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=2)
def _parse_candidates(path: Path, mtime_ns: int, size: int) -> dict[str, list[Candidate]]:
    """Candidates by seriesuid; cached, as every scan needs the 750k-row table."""
    table = read_index(path, COLUMNS)
    try:
        world = table[["coordX", "coordY", "coordZ"]].astype(float).to_numpy()
    except ValueError as exc:
        raise DataError(f"has a coordinate that is not a number ({exc})", path) from None
    labels = table["class"].str.strip()
    bad = np.flatnonzero(~labels.isin(["0", "1"]).to_numpy())
    if bad.size:
        raise DataError(f"line {bad[0] + 2}: class {labels.iloc[bad[0]]!r} is not 0 or 1 ({bad.size} such rows)", path)
    by_scan: dict[str, list[Candidate]] = {}
    rows = table[list(COLUMNS)].itertuples(index=False)
    for line, row, xyz, label in zip(range(2, len(table) + 2), rows, world, labels.astype(int)):
        digest = hashlib.sha1(",".join(row).encode()).hexdigest()
        by_scan.setdefault(row[0], []).append(Candidate(line, tuple(xyz.tolist()), int(label), digest))
    return by_scan


TASK = Luna16NodulePatch()
