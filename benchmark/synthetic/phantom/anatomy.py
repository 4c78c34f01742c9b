"""Tissue label maps: which anatomy a series shows and where its field of view sits.

The spine region is not a separate body: it is a targeted, small-FOV
reconstruction of the patient's own thorax or abdomen centred on a vertebra,
exactly as a spine CT is reconstructed from a trunk acquisition. The LiTS
cohort's series are targeted the same way, on the liver.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from benchmark.synthetic.phantom.head import paint_head, paint_neck
from benchmark.synthetic.phantom.limbs import paint_limbs
from benchmark.synthetic.phantom.patient import Patient, Series
from benchmark.synthetic.phantom.shapes import Canvas, Grid
from benchmark.synthetic.phantom.trunk import liver_centre, paint_abdomen, paint_pelvis, paint_thorax, trunk_frame

Painter = Callable[[Canvas, Patient, float], None]

PAINTERS: dict[str, Painter] = {
    "head": paint_head,
    "neck": paint_neck,
    "thorax": paint_thorax,
    "abdomen": paint_abdomen,
    "pelvis": paint_pelvis,
    "thighs": lambda cv, p, z: paint_limbs(cv, p, z, "thighs"),
    "arms": lambda cv, p, z: paint_limbs(cv, p, z, "arms"),
}


def series_grid(p: Patient, series: Series, matrix: int) -> Grid:
    if series.target == "liver":
        x, y = liver_centre(p)
        return Grid.square(matrix, series.fov, (x + series.jitter[0], y + series.jitter[1]))
    if series.region != "spine":
        return Grid.square(matrix, series.fov)
    f = trunk_frame(p, series.anatomy)
    centre = (f.cx + series.jitter[0], f.vy + 12 * f.s + series.jitter[1])
    return Grid.square(matrix, series.fov, centre)


def label_slice(p: Patient, series: Series, k: int, matrix: int) -> tuple[np.ndarray, Grid]:
    """Tissue labels (uint8, Tissue values) of slice `k` and the grid they live on."""
    grid = series_grid(p, series, matrix)
    canvas = Canvas(grid)
    PAINTERS[series.anatomy](canvas, p, series.z_local(k))
    return canvas.labels, grid
