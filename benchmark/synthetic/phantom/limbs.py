"""Extremities: both thighs (or both arms) side by side, one long bone each.

Muscle compartments are separated by thin fat septa radiating from the bone,
which gives the texture a radiologist expects of a limb cross-section.
"""
from __future__ import annotations

import numpy as np

from benchmark.synthetic.phantom.hounsfield import Tissue as T
from benchmark.synthetic.phantom.patient import ANATOMY_KEYS, Patient
from benchmark.synthetic.phantom.shapes import Canvas, wobble_params

_LIMBS = {  # anatomy -> (radius range, gap range, bone outer radius, cortex)
    "thighs": ((68.0, 88.0), (8.0, 30.0), 14.0, 6.0),
    "arms": ((40.0, 52.0), (40.0, 110.0), 11.0, 4.0),
}


def paint_limbs(cv: Canvas, p: Patient, z: float, anatomy: str) -> None:
    rng = p.rng(ANATOMY_KEYS[anatomy])
    (r_lo, r_hi), (g_lo, g_hi), bone_r, cortex = _LIMBS[anatomy]
    radius = rng.uniform(r_lo, r_hi) * p.size
    gap = rng.uniform(g_lo, g_hi)
    wob = [wobble_params(rng, 0.05) for _ in range(2)]
    septa = rng.uniform(0, 2 * np.pi, (2, 3))
    fat = 0.6 * p.fat + 3.0
    taper = 1.0 + 0.002 * z  # limbs narrow distally
    for i, side in enumerate((-1, 1)):
        lx = p.offset[0] + side * (radius + gap / 2)
        ly = p.offset[1] * 0.5
        _limb(cv, lx, ly, radius * taper, fat, bone_r * p.size ** 0.5, cortex, wob[i], septa[i], side)


def _limb(cv: Canvas, x: float, y: float, r: float, fat: float, bone_r: float, cortex: float,
          wob: np.ndarray, septa: np.ndarray, side: int) -> None:
    cv.paint(cv.ellipse(x, y, r, r * 0.93, wobble=wob), T.SKIN)
    cv.paint(cv.ellipse(x, y, r - 2, r * 0.93 - 2, wobble=wob), T.FAT)
    muscle = cv.ellipse(x, y, r - 2 - fat, r * 0.93 - 2 - fat, wobble=wob)
    cv.paint(muscle, T.MUSCLE)
    bx, by = x - side * 0.12 * r, y + 0.05 * r
    for angle in septa:  # intermuscular fat planes from the bone outwards
        cv.paint(cv.ellipse(bx + np.cos(angle) * r / 2, by + np.sin(angle) * r / 2, r / 2, 1.2, angle),
                 T.FAT, over=(T.MUSCLE,))
    vx, vy = bx - side * 0.45 * r, by - 0.35 * r  # neurovascular bundle, medial-anterior
    cv.paint(cv.ellipse(vx, vy, 4.0, 4.0), T.AORTA, over=(T.MUSCLE, T.FAT))
    cv.paint(cv.ellipse(vx + side * 6, vy + 2, 5.0, 4.0), T.BLOOD, over=(T.MUSCLE, T.FAT))
    cv.paint(cv.ellipse(bx, by, bone_r, bone_r), T.CORTICAL_BONE)
    cv.paint(cv.ellipse(bx, by + bone_r * 0.9, 3.5, 3.0), T.CORTICAL_BONE)  # linea aspera
    cv.paint(cv.ellipse(bx, by, bone_r - cortex, bone_r - cortex), T.MARROW)
