"""Bones shared by several body regions: vertebrae and ribs.

Both are periodic along z (vertebral bodies alternate with discs, ribs slope
downwards), which is what makes consecutive slices of a series differ the way
a real stack does.
"""
from __future__ import annotations

import numpy as np

from benchmark.synthetic.phantom.hounsfield import Tissue
from benchmark.synthetic.phantom.shapes import Canvas

_SOFT = (Tissue.FAT, Tissue.MUSCLE, Tissue.SKIN)


def vertebra(cv: Canvas, cx: float, cy: float, s: float, z: float, z_phase: float) -> None:
    """One vertebra level: body or disc, posterior arch by height within the level."""
    body_h, disc_h = 25.0 * s, 8.0 * s
    pos = (z - z_phase) % (body_h + disc_h)
    frac = (pos - disc_h) / body_h  # < 0 inside the disc, 0..1 along the body
    if frac < 0:
        cv.paint(cv.ellipse(cx, cy, 21 * s, 16 * s), Tissue.DISC)
    elif frac * body_h < 1.5 or (1 - frac) * body_h < 1.5:
        cv.paint(cv.ellipse(cx, cy, 21 * s, 16 * s), Tissue.CORTICAL_BONE)  # endplate
    else:
        cv.bone(cx, cy, 21 * s, 16 * s, cortex=1.8)
    canal_y = cy + 25 * s
    if 0.35 < frac < 0.95:
        for side in (-1, 1):
            cv.bone(cx + side * 11 * s, cy + 19 * s, 4.5 * s, 8 * s, cortex=1.2)
    if frac > 0.15 or frac < 0:
        cv.bone(cx, canal_y + 8 * s, 15 * s, 5 * s, cortex=1.5)           # lamina
        cv.bone(cx, canal_y + 22 * s, 4 * s, 13 * s, cortex=1.2)          # spinous process
    if 0.45 < frac < 0.8:
        for side in (-1, 1):
            cv.bone(cx + side * 24 * s, cy + 21 * s, 13 * s, 4.5 * s, angle=side * 0.25, cortex=1.2)
    cv.paint(cv.ellipse(cx, canal_y, 10 * s, 8 * s), Tissue.CSF)
    cv.paint(cv.ellipse(cx, canal_y, 5 * s, 4 * s), Tissue.WHITE_MATTER)  # cord


def ribs(cv: Canvas, cx: float, cy: float, ca: float, cb: float, z: float,
         phase: float, arc: tuple[float, float], n: int = 9) -> None:
    """Rib cross-sections around the cavity outline; they drift along it as z changes.

    `arc` bounds the angle (radians from the patient's left, through posterior)
    on the left side; the right side mirrors it.
    """
    lo, hi = arc
    step = (hi - lo) / n
    drift = (z / 20.0 + phase) % 1.0
    for k in range(n):
        phi = lo + (k + drift) * step
        for side in (1, -1):
            angle = phi if side == 1 else np.pi - phi
            x = cx + (ca + 3.0) * np.cos(angle)
            y = cy + (cb + 3.0) * np.sin(angle)
            tangent = np.arctan2(cb * np.cos(angle), -ca * np.sin(angle))
            cv.bone(x, y, 7.5, 4.5, angle=tangent, cortex=1.5, over=_SOFT)
