"""Tissue attenuation table: the single place where Hounsfield values live.

Ranges are literature values (unenhanced and contrast-enhanced CT). Each
patient draws one value per tissue from the range of its contrast phase, so
the cohort varies the way real scanners and injection protocols do, while a
test can still check every rendered tissue against its range.
"""
from __future__ import annotations

from enum import IntEnum

import numpy as np

PHASES: tuple[str, ...] = ("non_contrast", "arterial", "portal_venous")

#: Scanner storage range (12-bit CT numbers); rendered values are clipped here.
HU_MIN, HU_MAX = -1024, 3071


class Tissue(IntEnum):
    AIR = 0
    FAT = 1
    SKIN = 2
    MUSCLE = 3
    CORTICAL_BONE = 4
    CANCELLOUS_BONE = 5
    MARROW = 6
    LUNG = 7
    BLOOD = 8
    AORTA = 9
    MYOCARDIUM = 10
    LIVER = 11
    LESION = 12
    SPLEEN = 13
    KIDNEY_CORTEX = 14
    KIDNEY_MEDULLA = 15
    BOWEL = 16
    BOWEL_GAS = 17
    BLADDER = 18
    GREY_MATTER = 19
    WHITE_MATTER = 20
    CSF = 21
    DISC = 22
    THYROID = 23
    AIRWAY = 24


def _same(lo: float, hi: float) -> dict[str, tuple[float, float]]:
    return {phase: (lo, hi) for phase in PHASES}


def _phased(nc: tuple[float, float], art: tuple[float, float],
            pv: tuple[float, float]) -> dict[str, tuple[float, float]]:
    return {"non_contrast": nc, "arterial": art, "portal_venous": pv}


# Lesions are defined relative to the patient's liver: hypovascular metastases and cysts, 40-80 HU
# below the parenchyma in the portal venous phase (30-60 HU left lesion Dice below 0.25 after the demo's
# 240 training steps).
LESION_CONTRAST: tuple[float, float] = (40.0, 80.0)
# White matter relative to the patient's grey matter: the ~10 HU difference of unenhanced head CT,
# which independent draws from the two ranges would sometimes erase.
GREY_WHITE_CONTRAST: tuple[float, float] = (7.0, 12.0)
_RELATIVE = {Tissue.LESION: (Tissue.LIVER, LESION_CONTRAST), Tissue.WHITE_MATTER: (Tissue.GREY_MATTER, GREY_WHITE_CONTRAST)}

HU_RANGES: dict[Tissue, dict[str, tuple[float, float]]] = {
    Tissue.AIR: _same(-1000, -1000),
    Tissue.FAT: _same(-120, -80),
    Tissue.SKIN: _same(30, 60),
    Tissue.MUSCLE: _same(30, 60),
    Tissue.CORTICAL_BONE: _same(800, 1500),
    Tissue.CANCELLOUS_BONE: _same(200, 400),
    Tissue.MARROW: _same(-100, -40),           # fatty (yellow) marrow of long bones
    Tissue.LUNG: _same(-900, -800),
    Tissue.BLOOD: _phased((35, 50), (150, 250), (130, 180)),
    Tissue.AORTA: _phased((35, 50), (250, 350), (140, 190)),
    Tissue.MYOCARDIUM: _phased((35, 50), (100, 140), (90, 120)),
    Tissue.LIVER: _phased((50, 65), (60, 80), (80, 120)),
    Tissue.SPLEEN: _phased((40, 55), (90, 130), (100, 130)),
    Tissue.KIDNEY_CORTEX: _phased((30, 45), (150, 220), (150, 200)),
    Tissue.KIDNEY_MEDULLA: _phased((30, 45), (60, 100), (130, 180)),
    Tissue.BOWEL: _same(20, 50),
    Tissue.BOWEL_GAS: _same(-1000, -950),
    Tissue.BLADDER: _same(0, 15),
    Tissue.GREY_MATTER: _same(35, 45),
    Tissue.CSF: _same(0, 15),
    Tissue.DISC: _same(50, 100),
    Tissue.THYROID: _phased((80, 110), (130, 180), (120, 160)),  # iodine-rich even unenhanced
    Tissue.AIRWAY: _same(-1000, -950),
}

#: Tissues whose intensity is a gas; they get no parenchymal texture.
GASES: frozenset[Tissue] = frozenset({Tissue.AIR, Tissue.BOWEL_GAS, Tissue.AIRWAY})


def hu_range(tissue: Tissue, phase: str) -> tuple[float, float]:
    """Range a patient's value for `tissue` is drawn from (lesions follow the liver, white matter the grey)."""
    if tissue in _RELATIVE:
        reference, (low, high) = _RELATIVE[tissue]
        ref_lo, ref_hi = HU_RANGES[reference][phase]
        return ref_lo - high, ref_hi - low
    return HU_RANGES[tissue][phase]


def draw_tissue_hu(rng: np.random.Generator, phase: str) -> np.ndarray:
    """One patient's look-up table, indexed by Tissue value."""
    lut = np.zeros(len(Tissue), dtype=np.float64)
    for tissue in Tissue:  # fixed order: the draw sequence is part of determinism
        if tissue in _RELATIVE:
            continue
        lo, hi = HU_RANGES[tissue][phase]
        lut[tissue] = rng.uniform(lo, hi)
    for tissue, (reference, contrast) in _RELATIVE.items():
        lut[tissue] = lut[reference] - rng.uniform(*contrast)
    return lut


#: (centre, width) a reader would open the series with.
REGION_WINDOW: dict[str, tuple[int, int]] = {
    "head_neck": (40, 80),
    "thorax": (-600, 1500),
    "abdomen": (40, 400),
    "extremities": (400, 1800),
    "hip_pelvis": (40, 400),
    "spine": (400, 1800),
}
