"""Axial slices out of (X, Y, Z) volumes, the way every volume-based adapter takes them."""
from __future__ import annotations

import numpy as np


def axial_image(array_xyz: np.ndarray, k: int, neighbours: int = 0) -> np.ndarray:
    """Slice ``k`` as (rows, cols) = (Y, X), the radiological view of a NIfTI volume.

    With ``neighbours`` n > 0, the 2n + 1 slices k - n … k + n (repeated at the volume's
    ends) are stacked as channels: the 2.5-D input of ``Preprocessing.neighbours``.
    """
    if neighbours == 0:
        return np.ascontiguousarray(array_xyz[:, :, k].T)
    depth = array_xyz.shape[2]
    picks = [min(max(k + d, 0), depth - 1) for d in range(-neighbours, neighbours + 1)]
    return np.ascontiguousarray(np.stack([array_xyz[:, :, j].T for j in picks]))
