"""Thorax, abdomen and pelvis: a body wall around a cavity, organs inside it.

Organs are ellipsoids in local z (mm), so their cross-sections grow and shrink
smoothly through a series. All random draws of a painter happen before any
z-dependent branch: the draw sequence must not depend on which slice is drawn.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.synthetic.phantom.hounsfield import Tissue as T
from benchmark.synthetic.phantom.patient import ANATOMY_KEYS, Patient
from benchmark.synthetic.phantom.shapes import Canvas, section, wobble_params
from benchmark.synthetic.phantom.skeleton import ribs, vertebra


@dataclass(frozen=True)
class Frame:
    cx: float
    cy: float
    a: float        # outer half width
    b: float        # outer half depth
    fat: float
    muscle: float
    s: float        # vertebra scale
    wobble: np.ndarray

    @property
    def ca(self) -> float:
        return self.a - 2 - self.fat - self.muscle

    @property
    def cb(self) -> float:
        return self.b - 2 - self.fat - self.muscle

    @property
    def ccy(self) -> float:
        return self.cy

    @property
    def vy(self) -> float:
        """Vertebral body centre: the spinous process tip ends just under the back fat."""
        return self.cy + self.b - 2 - self.fat - 55 * self.s - 10


_FRAMES = {  # anatomy -> (width, depth factor, fat factor, muscle, vertebra scale)
    "thorax": (160.0, 1.02, 0.7, 10.0, 0.8),
    "abdomen": (160.0, 1.0, 1.0, 9.0, 1.0),
    "pelvis": (178.0, 0.92, 1.1, 9.0, 1.0),
}


def trunk_frame(p: Patient, anatomy: str) -> Frame:
    width, depth, fat_f, muscle, s = _FRAMES[anatomy]
    a = width * p.size
    wobble = wobble_params(p.rng(ANATOMY_KEYS[anatomy], 1), 0.025)
    return Frame(p.offset[0], p.offset[1], a, a * p.aspect * depth, p.fat * fat_f,
                 muscle * p.size, s * p.size, wobble)


def paraspinal(cv: Canvas, f: Frame) -> None:
    """Erector spinae either side of the spinous process, indenting the cavity."""
    for side in (-1, 1):
        cv.paint(cv.ellipse(f.cx + side * 30 * f.s, f.vy + 36 * f.s, 22 * f.s, 30 * f.s,
                            angle=side * 0.15), T.MUSCLE)


def body_wall(cv: Canvas, f: Frame) -> None:
    cv.paint(cv.ellipse(f.cx, f.cy, f.a, f.b, wobble=f.wobble), T.SKIN)
    cv.paint(cv.ellipse(f.cx, f.cy, f.a - 2, f.b - 2, wobble=f.wobble), T.FAT)
    cv.paint(cv.ellipse(f.cx, f.cy, f.a - 2 - f.fat, f.b - 2 - f.fat, wobble=f.wobble), T.MUSCLE)
    cv.paint(cv.ellipse(f.cx, f.ccy, f.ca, f.cb, wobble=f.wobble), T.FAT)


# ---------------------------------------------------------------- thorax
def paint_thorax(cv: Canvas, p: Patient, z: float) -> None:
    rng = p.rng(ANATOMY_KEYS["thorax"])
    f = trunk_frame(p, "thorax")
    lung_w = rng.uniform(0.46, 0.52, 2)
    lung_wob = [wobble_params(rng, 0.05) for _ in range(2)]
    heart = rng.uniform([0.42, 0.38, -0.7, -55.0], [0.52, 0.48, -0.4, -35.0])
    vessels = rng.uniform(-1, 1, (60, 4))  # u, v, du/dz, dv/dz in lung units
    vessel_r = rng.uniform(0.8, 2.5, 60)
    aorta_r = rng.uniform(10.0, 14.0)
    rib_phase, z_phase = rng.uniform(0, 1), rng.uniform(0, 40)

    body_wall(cv, f)
    paraspinal(cv, f)
    for side in (-1, 1):  # pectoralis sits in the anterior subcutaneous fat
        cv.paint(cv.ellipse(f.cx + side * 0.42 * f.a, f.cy - 0.62 * f.b, 0.3 * f.a, 0.12 * f.b,
                            angle=side * 0.35), T.MUSCLE, over=(T.FAT,))
    scale = section(170.0, z + 45.0)  # lungs widen towards the bases
    lungs = []
    for i, side in enumerate((-1, 1)):
        lx = f.cx + side * 0.48 * f.ca
        lung = cv.ellipse(lx, f.ccy + 0.02 * f.cb, lung_w[i] * f.ca * scale, 0.9 * f.cb * scale,
                          wobble=lung_wob[i])
        cv.paint(lung, T.LUNG, over=(T.FAT,))
        lungs.append((lx, lung_w[i] * f.ca * scale, 0.9 * f.cb * scale))
    _lung_vessels(cv, f, lungs, vessels, vessel_r, z)
    cv.paint(cv.ellipse(f.cx + 0.03 * f.ca, f.ccy - 0.1 * f.cb, 0.15 * f.ca, 0.8 * f.cb), T.FAT)
    _heart(cv, f, heart, z)
    _great_vessels(cv, f, aorta_r, z)
    ribs(cv, f.cx, f.ccy, f.ca, f.cb, z, rib_phase, arc=(-1.0, 1.25))
    cv.bone(f.cx, f.ccy - f.cb - 4, 14, 5.5, cortex=1.5)  # sternum
    if z > -20:  # scapulae behind the upper ribcage
        for side in (-1, 1):
            cv.bone(f.cx + side * 0.6 * f.ca, f.ccy + f.cb + 8, 38, 3, angle=-side * 0.4,
                    cortex=1.2, over=(T.MUSCLE, T.FAT))
    vertebra(cv, f.cx, f.vy, f.s, z, z_phase)


def _lung_vessels(cv: Canvas, f: Frame, lungs, vessels: np.ndarray, radii: np.ndarray,
                  z: float) -> None:
    """Vessels are tubes that wander slowly with z; bigger near the hilum."""
    for k, (u, v, du, dv) in enumerate(vessels):
        lx, la, lb = lungs[k % 2]
        if la <= 0:
            continue
        uu, vv = u * 0.8 + 0.004 * du * z, v * 0.85 + 0.004 * dv * z
        hilum = 1.0 - min(1.0, np.hypot(uu + (0.5 if k % 2 else -0.5), vv))
        r = radii[k] * (1.0 + 1.5 * hilum)
        cv.paint(cv.ellipse(lx + uu * la, f.ccy + vv * lb, r, r), T.BLOOD, over=(T.LUNG,))


def _heart(cv: Canvas, f: Frame, params: np.ndarray, z: float) -> None:
    wa, wb, angle, cz = params
    s = section(65.0, z - cz)
    if s <= 0:
        return
    hx, hy = f.cx + 0.12 * f.ca, f.ccy - 0.2 * f.cb
    ha, hb = wa * f.ca * s, min(wb * f.ca * 0.85, 0.55 * f.cb) * s
    cv.paint(cv.ellipse(hx, hy, ha + 6, hb + 6, angle), T.FAT, over=(T.LUNG, T.BLOOD))
    cv.paint(cv.ellipse(hx, hy, ha, hb, angle), T.MYOCARDIUM)
    c, sn = np.cos(angle), np.sin(angle)
    for du, dv, ra, rb, tissue in ((0.35, 0.1, 0.45, 0.55, T.BLOOD), (-0.4, -0.05, 0.42, 0.6, T.BLOOD)):
        x = hx + du * ha * c - dv * hb * sn
        y = hy + du * ha * sn + dv * hb * c
        cv.paint(cv.ellipse(x, y, ra * ha, rb * hb, angle), tissue)


def _great_vessels(cv: Canvas, f: Frame, aorta_r: float, z: float) -> None:
    vy = f.vy
    cv.paint(cv.ellipse(f.cx + 4, vy - 20 * f.s - 8, 7, 6), T.BOWEL)                # oesophagus
    cv.paint(cv.ellipse(f.cx + 20 * f.s + 10, vy - 12 * f.s - 8, aorta_r, aorta_r), T.AORTA)
    if z > -25:  # ascending aorta and pulmonary trunk above the heart
        cv.paint(cv.ellipse(f.cx - 0.06 * f.ca, f.ccy - 0.3 * f.cb, aorta_r + 3, aorta_r + 3), T.AORTA)
        cv.paint(cv.ellipse(f.cx + 0.12 * f.ca, f.ccy - 0.38 * f.cb, 13, 13), T.BLOOD)
    trachea_y = vy - 20 * f.s - 26
    if z > 15:
        cv.paint(cv.ellipse(f.cx, trachea_y, 11, 10), T.MUSCLE)
        cv.paint(cv.ellipse(f.cx, trachea_y, 9, 8), T.AIRWAY)
    elif z > -15:
        for side in (-1, 1):
            cv.paint(cv.ellipse(f.cx + side * 18, trachea_y, 8, 7), T.MUSCLE, over=(T.FAT, T.LUNG))
            cv.paint(cv.ellipse(f.cx + side * 18, trachea_y, 6, 5), T.AIRWAY)


# ---------------------------------------------------------------- abdomen
def paint_abdomen(cv: Canvas, p: Patient, z: float) -> None:
    rng = p.rng(ANATOMY_KEYS["abdomen"])
    f = trunk_frame(p, "abdomen")
    liver = _liver_params(rng)
    liver_wob = wobble_params(rng, 0.06)
    spleen = rng.uniform([0.15, 0.28, 20.0], [0.22, 0.38, 45.0])
    kidney = rng.uniform([22.0, 30.0, -60.0], [28.0, 38.0, -40.0])
    loops = rng.uniform(0, 1, (16, 6))
    aorta_r, rib_phase, z_phase = rng.uniform(9.0, 12.0), rng.uniform(0, 1), rng.uniform(0, 40)

    body_wall(cv, f)
    paraspinal(cv, f)
    for side in (-1, 1):  # psoas appears and grows caudally
        r = 8 + min(18.0, max(0.0, -z - 10) * 0.25)
        cv.paint(cv.ellipse(f.cx + side * (24 * f.s + r * 0.6), f.vy - 6, r, r * 1.1), T.MUSCLE)
    _kidneys(cv, f, kidney, z)
    _liver(cv, p, f, liver, liver_wob, z)
    s = section(55.0, z - spleen[2])
    cv.paint(cv.ellipse(f.cx + 0.6 * f.ca, f.ccy + 0.35 * f.cb, spleen[0] * f.ca * s,
                        spleen[1] * f.cb * s, angle=0.6), T.SPLEEN, over=(T.FAT,))
    _stomach(cv, f, z)
    _bowel(cv, f, loops, z)
    cv.paint(cv.ellipse(f.cx + 8 * f.s + 6, f.vy - 16 * f.s - aorta_r - 2, aorta_r, aorta_r), T.AORTA)
    cv.paint(cv.ellipse(f.cx - 22 * f.s - 6, f.vy - 16 * f.s - 11, 13, 9), T.BLOOD)   # IVC
    if z > 0:
        ribs(cv, f.cx, f.ccy, f.ca, f.cb, z, rib_phase, arc=(-0.2, 0.9), n=4)
    vertebra(cv, f.cx, f.vy, f.s, z, z_phase)


def _liver_params(rng: np.random.Generator) -> np.ndarray:
    """Right-lobe semi-axes (fractions of the cavity) and z offset: the abdomen's first draw."""
    return rng.uniform([0.46, 0.72, -10.0], [0.56, 0.86, 10.0])


def liver_centre(p: Patient) -> tuple[float, float]:
    """Where a liver-targeted reconstruction is centred: the right lobe of ``paint_abdomen``."""
    lx, ly, _, _ = liver_frame(trunk_frame(p, "abdomen"), _liver_params(p.rng(ANATOMY_KEYS["abdomen"])))
    return lx, ly


def liver_frame(f: Frame, liver: np.ndarray) -> tuple[float, float, float, float]:
    """Centre and semi-axes of the right lobe, where lesions are placed."""
    return f.cx - 0.42 * f.ca, f.ccy - 0.05 * f.cb, liver[0] * f.ca, liver[1] * f.cb


def _liver(cv: Canvas, p: Patient, f: Frame, liver: np.ndarray, wob: np.ndarray, z: float) -> None:
    lx, ly, la, lb = liver_frame(f, liver)
    s = section(95.0, z - liver[2])
    cv.paint(cv.ellipse(lx, ly, la * s, lb * s, wobble=wob), T.LIVER, over=(T.FAT,))
    s_left = section(55.0, z - liver[2] - 30)
    cv.paint(cv.ellipse(f.cx + 0.02 * f.ca, f.ccy - 0.5 * f.cb, 0.36 * f.ca * s_left,
                        0.28 * f.cb * s_left, angle=-0.25), T.LIVER, over=(T.FAT,))
    for lesion in p.lesions:
        r = lesion.radius * section(lesion.radius, z - lesion.z) if abs(z - lesion.z) < lesion.radius else 0
        cv.paint(cv.ellipse(lx + lesion.u * la * s, ly + lesion.v * lb * s, r, r * 0.9), T.LESION,
                 over=(T.LIVER,))


def _kidneys(cv: Canvas, f: Frame, params: np.ndarray, z: float) -> None:
    ka, kb, cz = params
    for side in (-1, 1):
        s = section(55.0, z - cz - (0 if side > 0 else -10))  # the right kidney sits lower
        if s <= 0:
            continue
        kx, ky = f.cx + side * (38 * f.s + ka), f.vy - 4
        angle = side * 0.5
        cv.paint(cv.ellipse(kx, ky, ka * s, kb * s, angle), T.KIDNEY_CORTEX)
        cv.paint(cv.ellipse(kx, ky, ka * s - 6, kb * s - 6, angle), T.KIDNEY_MEDULLA)
        cv.paint(cv.ellipse(kx - side * 0.5 * ka * s, ky - 4, 0.35 * ka * s, 0.3 * kb * s), T.FAT)


def _stomach(cv: Canvas, f: Frame, z: float) -> None:
    s = section(45.0, z - 45.0)
    if s <= 0:
        return
    x, y, a, b = f.cx + 0.35 * f.ca, f.ccy - 0.3 * f.cb, 0.26 * f.ca * s, 0.3 * f.cb * s
    cv.paint(cv.ellipse(x, y, a, b, 0.5), T.BOWEL, over=(T.FAT,))
    gas = cv.ellipse(x, y, a - 4, b - 4, 0.5).above(cv.grid.ys, y - 0.3 * b)
    cv.paint(gas, T.BOWEL_GAS, over=(T.BOWEL,))


def _bowel(cv: Canvas, f: Frame, loops: np.ndarray, z: float) -> None:
    """Loops in the anterior cavity; gas floats to the anterior (non-dependent) side."""
    for u, v, r, cz, has_gas, level in loops:
        s = section(35.0, z - (cz - 0.5) * 120)
        radius = (7 + 10 * r) * s
        if radius < 2:
            continue
        x = f.cx + (u * 1.5 - 0.75) * f.ca
        y = f.ccy + (v * 1.1 - 0.85) * f.cb
        cv.paint(cv.ellipse(x, y, radius, radius), T.BOWEL, over=(T.FAT,))
        if has_gas < 0.45:
            gas = cv.ellipse(x, y, radius - 2.5, radius - 2.5).above(cv.grid.ys, y + (level - 0.6) * radius)
            cv.paint(gas, T.BOWEL_GAS, over=(T.BOWEL,))


# ---------------------------------------------------------------- pelvis
def paint_pelvis(cv: Canvas, p: Patient, z: float) -> None:
    rng = p.rng(ANATOMY_KEYS["pelvis"])
    f = trunk_frame(p, "pelvis")
    head_r = rng.uniform(22.0, 26.0)
    bladder = rng.uniform([35.0, 25.0, -30.0, 30.0], [60.0, 45.0, -15.0, 45.0])
    rectum_r, gas_level = rng.uniform(11.0, 17.0), rng.uniform(0, 1)
    loops = rng.uniform(0, 1, (8, 6))

    cv.paint(cv.ellipse(f.cx, f.cy, f.a, f.b, wobble=f.wobble), T.SKIN)
    cv.paint(cv.ellipse(f.cx, f.cy, f.a - 2, f.b - 2, wobble=f.wobble), T.FAT)
    ia, ib = f.a - 2 - f.fat, f.b - 2 - f.fat
    cv.paint(cv.ellipse(f.cx, f.cy, ia, ib, wobble=f.wobble), T.MUSCLE)
    pa, pb, pcy = 0.4 * ia, 0.55 * ib, f.cy - 0.08 * ib
    cv.paint(cv.ellipse(f.cx, pcy, pa, pb), T.FAT)  # pelvic cavity
    s = section(bladder[3], z - bladder[2])
    if s > 0:  # urine inside a thin wall
        cv.paint(cv.ellipse(f.cx, pcy - 0.35 * pb, bladder[0] * s + 3, bladder[1] * s + 3), T.MUSCLE,
                 over=(T.FAT,))
        cv.paint(cv.ellipse(f.cx, pcy - 0.35 * pb, bladder[0] * s, bladder[1] * s), T.BLADDER)
    ry = pcy + 0.55 * pb
    cv.paint(cv.ellipse(f.cx, ry, rectum_r, rectum_r * 0.85), T.BOWEL)
    gas = cv.ellipse(f.cx, ry, rectum_r - 3, rectum_r * 0.85 - 3).above(cv.grid.ys, ry - gas_level * 5)
    cv.paint(gas, T.BOWEL_GAS, over=(T.BOWEL,))
    if z > 0:
        _bowel(cv, Frame(f.cx, pcy, pa, pb, 0.0, -2.0, 1.0, f.wobble), loops, z)
    for side in (-1, 1):
        cv.paint(cv.ellipse(f.cx + side * 0.9 * pa, pcy - 0.55 * pb, 6, 6), T.AORTA)   # ext. iliac artery
        cv.paint(cv.ellipse(f.cx + side * 0.82 * pa, pcy - 0.4 * pb, 8, 7), T.BLOOD)   # ext. iliac vein
        _hip(cv, f, side, ia, ib, head_r, z)
    _sacrum(cv, f, ib, z)


def _hip(cv: Canvas, f: Frame, side: int, ia: float, ib: float, head_r: float, z: float) -> None:
    hx, hy, hz = f.cx + side * 0.58 * ia, f.cy - 0.05 * ib, -20.0
    if z > -5:  # iliac wing: runs from the sacrum forwards and outwards, widening upwards
        length = min(75.0, 35.0 + 0.9 * (z + 5))
        cv.bone(hx - side * 8 + side * 0.15 * (z + 5), hy + 12, length, 8.0, angle=-side * 0.75,
                cortex=2.0)
    if -50 < z < 8:  # acetabulum cupping the medial side of the femoral head
        rim = section(head_r + 10, z - hz) * (head_r + 10)
        cv.bone(hx - side * 4, hy, rim, rim, cortex=2.0)
    r = section(head_r, z - hz) * head_r
    if r > 0:
        cv.paint(cv.ellipse(hx, hy, r + 2, r + 2), T.MUSCLE)  # joint space / cartilage
        cv.bone(hx, hy, r, r, cortex=1.5)
    if z < -30:  # femoral neck and greater trochanter
        cv.bone(hx + side * 28, hy + 6, 26, 14, angle=side * 0.2, cortex=2.0)
    if z < -35:  # pubis in front, ischium behind
        cv.bone(f.cx + side * 28, f.cy - 0.45 * ib, 22, 8, angle=side * 0.4, cortex=1.5)
        cv.bone(hx - side * 14, hy + 30, 10, 16, cortex=1.5)


def _sacrum(cv: Canvas, f: Frame, ib: float, z: float) -> None:
    sy = f.cy + 0.5 * ib
    if z > -15:
        w = 30 + 0.6 * min(z + 15, 40)
        cv.bone(f.cx, sy, w, 17, cortex=2.0)
        cv.paint(cv.ellipse(f.cx, sy + 4, 10, 5), T.CSF)
    else:
        cv.bone(f.cx, sy + 6, 9, 7, cortex=1.5)  # coccyx
