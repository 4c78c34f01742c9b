"""The LiTS 2017 layout: ``volume-N.nii[.gz]`` beside ``segmentation-N.nii[.gz]``,
labels 0 background, 1 liver, 2 tumour. The phantom writes the same layout, so the
embedded liver tasks and the real dataset share this reader.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import DataError
from .nifti import read_labelled_pair

LITS_LABELS = {0, 1, 2}
_VOLUME = re.compile(r"^volume-(\d+)\.nii(\.gz)?$")


@dataclass(frozen=True)
class AxialSlice:
    patient_id: str
    index: int
    image: np.ndarray  # (rows, cols) HU
    mask: np.ndarray  # (rows, cols) uint8 labels
    source: Path


def lits_pairs(root: Path) -> list[tuple[str, Path, Path]]:
    """(patient id, volume, segmentation) sorted by case number; a volume without its mask is an error."""
    pairs = []
    for path in root.rglob("volume-*.nii*"):
        match = _VOLUME.match(path.name)
        if not match or path.name.startswith("._"):
            continue
        mask = path.with_name(f"segmentation-{match.group(1)}.nii{match.group(2) or ''}")
        if not mask.is_file():
            raise DataError(f"has no matching {mask.name}", path)
        pairs.append((int(match.group(1)), f"volume-{match.group(1)}", path, mask))
    if not pairs:
        raise DataError("holds no LiTS volume-N.nii files", root)
    return [(patient, volume, mask) for _, patient, volume, mask in sorted(pairs)]


def liver_slices(root: Path) -> Iterator[AxialSlice]:
    """Axial slices that contain liver, as 2-D LiTS pipelines train on."""
    for patient, volume_path, mask_path in lits_pairs(root):
        volume, mask = read_labelled_pair(volume_path, mask_path, LITS_LABELS)
        for k in np.flatnonzero(mask.array.any(axis=(0, 1))):
            yield AxialSlice(patient, int(k), volume.array[:, :, k].T, mask.array[:, :, k].T, volume_path)
