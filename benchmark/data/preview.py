"""Contact sheet of a dataset folder on disk: a few slices per body part, plus LiTS masks.

It reads the files, not the phantom's memory, so it shows what a task will actually load
(orientation, HU scale, mask alignment) for any folder, real or generated.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.core.atomic import atomic_open
from benchmark.core.errors import ConfigError, DataError
from benchmark.data.inspect import slice_position
from benchmark.data.readers.dicom import iter_dicom_files, read_ct_slice, read_header
from benchmark.data.readers.nifti import read_labelled_pair, read_volume

#: Head to toe, so the sheet reads like a body; unknown parts follow alphabetically.
ANATOMICAL_ORDER = ("HEADNECK", "CHEST", "ABDOMEN", "PELVIS", "SPINE", "EXTREMITY")
SOFT_TISSUE = ("soft tissue", 40, 400)
WINDOWS = {"HEADNECK": ("brain", 40, 80), "CHEST": ("lung", -600, 1500), "SPINE": ("bone", 400, 1800)}
LITS_ROW = "LiTS (NIfTI)"
LITS_LABELS = {1, 2}  # 1 liver, 2 lesion; 0 background
_DPI, _TILE_INCHES = 100, 2.4


@dataclass(frozen=True)
class Tile:
    """One picture: a DICOM slice, or axial slice `k` of a NIfTI volume with its mask."""
    path: Path
    mask: Path | None = None
    k: int | None = None


@dataclass(frozen=True)
class Row:
    label: str
    window: tuple[str, int, int]  # name, centre, width
    tiles: tuple[Tile, ...]


def contact_sheet(root: Path, out: Path, per_region: int = 3) -> Path:
    """Renders `plan_sheet(root, per_region)` to a PNG at `out`, atomically; same input, same bytes."""
    rows = plan_sheet(root, per_region)
    figure = _draw(rows, per_region)
    with atomic_open(Path(out), "wb") as handle:
        figure.savefig(handle, format="png", dpi=_DPI, metadata={"Software": None})
    return Path(out)


def plan_sheet(root: Path, per_region: int = 3) -> list[Row]:
    """Which slices go where, decided from headers only, so it is cheap and testable."""
    root = Path(root)
    if per_region < 1:
        raise ConfigError(f"per_region must be at least 1, got {per_region}")
    if not root.is_dir():
        raise DataError("is not a folder", root)
    dicom_root = root / "dicom" if (root / "dicom").is_dir() else root
    rows = _dicom_rows(dicom_root, per_region)
    lits = _lits_row(root / "lits", per_region)
    rows += [lits] if lits else []
    if not rows:
        raise DataError("holds no CT DICOM (*.dcm) directly or under dicom/, and no lits/ NIfTI pairs", root)
    return rows


def _dicom_rows(dicom_root: Path, per_region: int) -> list[Row]:
    series: dict[str, dict[str, dict[str, list]]] = defaultdict(lambda: defaultdict(dict))
    for path in iter_dicom_files(dicom_root):
        ds = read_header(path)
        if ds.get("Modality") != "CT":
            continue  # SEG, SR, RTSTRUCT objects: nothing to look at
        part = str(ds.get("BodyPartExamined") or "UNKNOWN").upper()
        by_uid = series[part][str(ds.get("PatientID") or "")]
        by_uid.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((slice_position(ds), path))
    return [Row(part, WINDOWS.get(part, SOFT_TISSUE), _sample(series[part], per_region))
            for part in sorted(series, key=_anatomical_key)]


def _sample(patients: dict[str, dict[str, list]], per_region: int) -> tuple[Tile, ...]:
    """Middle slice of the first series of each of the first patients: deterministic and
    spread over patients, which shows more variety than several slices of one scan."""
    tiles = []
    for patient in sorted(patients)[:per_region]:
        first = min(patients[patient].values(), key=lambda s: min(p for _, p in s))
        ordered = sorted(first)
        tiles.append(Tile(ordered[len(ordered) // 2][1]))
    return tuple(tiles)


def _anatomical_key(part: str) -> tuple[int, str]:
    return (ANATOMICAL_ORDER.index(part) if part in ANATOMICAL_ORDER else len(ANATOMICAL_ORDER), part)


def _lits_row(folder: Path, per_region: int) -> Row | None:
    pairs = []
    for volume in sorted(folder.glob("volume-*.nii*"), key=_case_number):
        mask = volume.with_name(volume.name.replace("volume-", "segmentation-", 1))
        if mask.exists():
            pairs.append((volume, mask))
    tiles = tuple(Tile(v, m, _lits_slice(m)) for v, m in pairs[:per_region])
    return Row(LITS_ROW, SOFT_TISSUE, tiles) if tiles else None


def _case_number(path: Path) -> tuple[int, str]:
    """volume-10 after volume-9, as a person would expect."""
    match = re.search(r"(\d+)", path.name)
    return (int(match.group(1)) if match else -1, path.name)


def _lits_slice(mask_path: Path) -> int:
    """The axial slice with most lesion, ties (and lesion-free volumes) broken by most liver:
    the largest liver section is often lesion-free, and the lesion is what needs checking."""
    mask = read_volume(mask_path).array
    lesion, liver = (mask == 2).sum(axis=(0, 1)), (mask > 0).sum(axis=(0, 1))
    return int(np.lexsort((-np.arange(len(liver)), liver, lesion))[-1])


def _draw(rows: list[Row], per_region: int):
    # Figure without pyplot: no global backend switch, no figure registry to leak into.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(per_region * _TILE_INCHES, len(rows) * (_TILE_INCHES + 0.3)),
                    facecolor="black", layout="constrained")
    axes = figure.subplots(len(rows), per_region, squeeze=False)
    for row, row_axes in zip(rows, axes):
        for i, ax in enumerate(row_axes):
            ax.set_axis_off()
            if i < len(row.tiles):
                _draw_tile(ax, row, row.tiles[i])
    return figure


def _draw_tile(ax, row: Row, tile: Tile) -> None:
    name, centre, width = row.window
    window = dict(cmap="gray", vmin=centre - width / 2, vmax=centre + width / 2, interpolation="nearest")
    if tile.mask is None:
        hu, ds = read_ct_slice(tile.path)
        ax.imshow(hu, **window)
        title = f"{ds.get('PatientID', '?')} {row.label}"
    else:
        image, mask = read_labelled_pair(tile.path, tile.mask, {0, *LITS_LABELS})
        ax.imshow(image.array[:, :, tile.k].T, **window)
        _overlay(ax, mask.array[:, :, tile.k].T)
        title = f"{tile.path.name} slice {tile.k}\nliver green, lesion red"
    ax.set_title(f"{title}\n{name} L{centre} W{width}", color="white", fontsize=8)


def _overlay(ax, labels: np.ndarray) -> None:
    """Translucent fills show extent; the lesion contour stays visible over the liver fill."""
    rgba = np.zeros((*labels.shape, 4))
    rgba[labels == 1] = (0.1, 0.9, 0.2, 0.3)
    rgba[labels == 2] = (1.0, 0.15, 0.1, 0.45)
    ax.imshow(rgba, interpolation="nearest")
    if (labels == 2).any():
        ax.contour(labels == 2, levels=[0.5], colors=["yellow"], linewidths=0.8)
