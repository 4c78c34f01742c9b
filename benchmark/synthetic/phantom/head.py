"""Head (brain in skull) and neck cross-sections for the head_neck region.

Nearly a third of head_neck series are neck levels, as in real head-and-neck
imaging: the region label must not be recognisable from one look-alike image.
"""
from __future__ import annotations

import numpy as np

from benchmark.synthetic.phantom.hounsfield import Tissue as T
from benchmark.synthetic.phantom.patient import ANATOMY_KEYS, Patient
from benchmark.synthetic.phantom.shapes import Canvas, section, wobble_params
from benchmark.synthetic.phantom.skeleton import vertebra


def paint_head(cv: Canvas, p: Patient, z: float) -> None:
    rng = p.rng(ANATOMY_KEYS["head"])
    a0, b0 = rng.uniform(68.0, 78.0), rng.uniform(86.0, 98.0)
    wob = wobble_params(rng, 0.03)
    gyri = wobble_params(rng, 0.035, harmonics=(9, 13, 17, 23, 29))
    vent_w, vent_l, vent_angle = rng.uniform([5.0, 22.0, 0.1], [11.0, 32.0, 0.3])
    cz = rng.uniform(-25.0, -10.0)

    s = section(100.0, z - cz)
    cx, cy = 0.4 * p.offset[0], 0.4 * p.offset[1]
    a, b = a0 * s, b0 * s
    layers = ((0.0, T.SKIN), (2.5, T.FAT), (5.0, T.CORTICAL_BONE), (6.8, T.CANCELLOUS_BONE),
              (9.5, T.CORTICAL_BONE), (11.3, T.CSF), (13.0, T.GREY_MATTER))
    for inset, tissue in layers:
        cv.paint(cv.ellipse(cx, cy, a - inset, b - inset, wobble=wob), tissue)
    white = cv.ellipse(cx, cy, a - 17.0, b - 17.0, wobble=np.concatenate([wob, gyri]))
    cv.paint(white, T.WHITE_MATTER, over=(T.GREY_MATTER,))
    cv.paint(cv.ellipse(cx, cy, 4.0, b - 13.0), T.GREY_MATTER, over=(T.WHITE_MATTER,))
    cv.paint(cv.ellipse(cx, cy, 1.2, b - 11.3), T.CSF, over=(T.GREY_MATTER, T.WHITE_MATTER))
    _deep_structures(cv, cx, cy, z, vent_w, vent_l, vent_angle)


def _deep_structures(cv: Canvas, cx: float, cy: float, z: float, vw: float, vl: float,
                     angle: float) -> None:
    sv = section(24.0, z - 5.0)
    for side in (-1, 1):
        caudate = section(18.0, z) * 8.0
        cv.paint(cv.ellipse(cx + side * (2 * vw + 5), cy - 0.55 * vl, caudate, caudate * 1.2),
                 T.GREY_MATTER)
        thal = section(16.0, z + 12.0)
        cv.paint(cv.ellipse(cx + side * 12, cy + 8, 10 * thal, 14 * thal), T.GREY_MATTER)
        cv.paint(cv.ellipse(cx + side * (vw * sv + 2.5), cy - 4, vw * sv, vl * sv,
                            angle=side * angle), T.CSF)
    if z < -4:  # third ventricle between the thalami
        cv.paint(cv.ellipse(cx, cy + 6, 2.0, 10.0), T.CSF)


def paint_neck(cv: Canvas, p: Patient, z: float) -> None:
    rng = p.rng(ANATOMY_KEYS["neck"])
    a, b = rng.uniform(55.0, 68.0) * p.size, rng.uniform(50.0, 62.0) * p.size
    thyroid_z, thyroid_size = rng.uniform(-10.0, 10.0), rng.uniform(0.8, 1.25)
    z_phase = rng.uniform(0, 30)
    wob = wobble_params(rng, 0.04)

    cx, cy = 0.5 * p.offset[0], 0.5 * p.offset[1]
    fat = 0.3 * p.fat + 3.0
    cv.paint(cv.ellipse(cx, cy, a, b, wobble=wob), T.SKIN)
    cv.paint(cv.ellipse(cx, cy, a - 2, b - 2, wobble=wob), T.FAT)
    cv.paint(cv.ellipse(cx, cy, a - 2 - fat, b - 2 - fat, wobble=wob), T.MUSCLE)
    ty = cy - 0.45 * b
    cv.paint(cv.ellipse(cx, ty + 6, 0.62 * a, 0.3 * b), T.FAT)  # visceral space
    for side in (-1, 1):
        cv.paint(cv.ellipse(cx + side * 0.62 * a, ty + 2, 15, 7, angle=side * 0.9), T.MUSCLE)  # SCM
        s = section(25.0 * thyroid_size, z - thyroid_z)
        cv.paint(cv.ellipse(cx + side * 15, ty + 3, 8 * s * thyroid_size, 14 * s * thyroid_size,
                            angle=-side * 0.35), T.THYROID)
        cv.paint(cv.ellipse(cx + side * 27, ty + 10, 4.5, 4.5), T.AORTA)   # common carotid
        cv.paint(cv.ellipse(cx + side * 35, ty + 8, 7.0, 5.5), T.BLOOD)    # internal jugular
    cv.paint(cv.ellipse(cx, ty, 11, 10), T.MUSCLE)
    cv.paint(cv.ellipse(cx, ty, 8.5, 7.5), T.AIRWAY)
    cv.paint(cv.ellipse(cx + 3, ty + 15, 6, 4.5), T.BOWEL)  # oesophagus
    vertebra(cv, cx, ty + 31, 0.6 * p.size, z, z_phase)
