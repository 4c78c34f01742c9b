"""NIfTI volumes and masks with nibabel, as (X, Y, Z) arrays plus voxel spacing.

Image and mask are checked against each other here, once, because a shape or
affine mismatch would otherwise surface as a silently misaligned mask.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

from ..errors import DataError


@dataclass(frozen=True)
class Volume:
    path: Path
    array: np.ndarray  # (X, Y, Z)
    affine: np.ndarray
    spacing: tuple[float, float, float]


def read_volume(path: Path, dtype=np.float32) -> Volume:
    try:
        image = nib.load(str(path))
        array = np.asarray(image.dataobj, dtype=dtype)
    except (ImageFileError, OSError, EOFError, ValueError, zlib.error) as exc:
        raise DataError(f"not a readable NIfTI file ({type(exc).__name__}: {exc})", path) from None
    if array.ndim != 3:
        raise DataError(f"expected a 3-D volume, found shape {array.shape}", path)
    spacing = tuple(float(s) for s in image.header.get_zooms()[:3])
    return Volume(Path(path), array, image.affine, spacing)  # type: ignore[arg-type]


def read_labelled_pair(image_path: Path, mask_path: Path, labels: set[int]) -> tuple[Volume, Volume]:
    image = read_volume(image_path)
    mask = read_volume(mask_path)
    if image.array.shape != mask.array.shape:
        raise DataError(f"mask shape {mask.array.shape} differs from image {image_path.name} shape "
                        f"{image.array.shape}", mask_path)
    if not np.allclose(image.affine, mask.affine, atol=1e-3):
        raise DataError(f"mask affine differs from image {image_path.name}'s", mask_path)
    if not np.array_equal(mask.array, np.round(mask.array)):
        raise DataError("mask holds non-integer values", mask_path)
    found = set(np.unique(mask.array).astype(int).tolist())
    if not found <= labels:
        raise DataError(f"mask labels {sorted(found - labels)} are outside the label set {sorted(labels)}", mask_path)
    return image, Volume(mask.path, mask.array.astype(np.uint8), mask.affine, mask.spacing)
