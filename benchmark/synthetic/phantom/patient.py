"""Per-patient parameters: everything that makes one phantom patient differ from another.

A patient is a pure function of (seed, cohort, index): rendering any single
slice re-derives it, so slices can be produced in any order, in parallel or
alone (for tests), and still agree with each other byte for byte.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from benchmark.synthetic.phantom.config import REGIONS, PhantomConfig
from benchmark.synthetic.phantom.hounsfield import PHASES, draw_tissue_hu

#: cohort -> (PatientID letter, entropy key). Disjoint letters keep IDs disjoint.
COHORTS: dict[str, tuple[str, int]] = {"labelled": ("P", 1), "corpus": ("C", 2), "lits": ("L", 3)}

#: Anatomical models a series can be cut from; the key feeds the detail RNG.
ANATOMY_KEYS: dict[str, int] = {"head": 11, "neck": 12, "thorax": 13, "abdomen": 14,
                                "pelvis": 15, "thighs": 16, "arms": 17}

#: Where each anatomy sits along the table (mm, superior positive), for ImagePositionPatient.
TABLE_Z: dict[str, float] = {"head": -80.0, "neck": -200.0, "thorax": -380.0, "abdomen": -600.0,
                             "pelvis": -850.0, "thighs": -1100.0, "arms": -400.0}

#: Image noise σ (HU) of each anatomy's series: a patient's lowest dose (0) gives the high end.
#: Head protocols run at several times the body's dose: σ ≈ 3–6 HU in brain, which leaves the
#: ~10 HU grey/white matter difference visible at a brain window; body and limbs 10–30 HU.
NOISE_HU: dict[str, tuple[float, float]] = {"head": (3.0, 6.0)}
BODY_NOISE_HU: tuple[float, float] = (10.0, 30.0)

# Local z window (mm) each anatomy's series centre is drawn from.
_Z_WINDOW: dict[str, tuple[float, float]] = {"head": (-25, 30), "neck": (-15, 15),
                                             "thorax": (-65, 45), "abdomen": (-35, 30),
                                             "pelvis": (-35, 15), "thighs": (-40, 40),
                                             "arms": (-30, 30)}


#: The LiTS cohort's field of view (mm): a reconstruction targeted on the liver, as the
#: liver-cropped inputs of LiTS lesion pipelines are, so that a lesion of 8–25 mm radius spans 2–8 px at 64 px.
LIVER_FOV_MM: tuple[float, float] = (190.0, 240.0)
LESION_RADIUS_MM: tuple[float, float] = (8.0, 25.0)


@dataclass(frozen=True)
class Series:
    region: str
    anatomy: str
    fov: float              # mm, square reconstruction field of view
    thickness: float        # mm, slice thickness = spacing between slices
    z_center: float         # mm, local anatomical z of the series centre
    n_slices: int
    jitter: tuple[float, float]  # mm, FOV centring error (targeted reconstructions)
    target: str = ""        # organ a targeted reconstruction is centred on ("liver"), else the body

    def z_local(self, k: int) -> float:
        """Instance 1 is the most superior slice, as scanners number a head-first scan."""
        return self.z_center + ((self.n_slices - 1) / 2 - k) * self.thickness

    def z_table(self, k: int) -> float:
        return round(TABLE_Z[self.anatomy] + self.z_local(k), 4)


@dataclass(frozen=True)
class Lesion:
    u: float       # position in the right liver lobe, units of its semi-axes
    v: float
    z: float       # mm, local abdominal z
    radius: float  # mm


@dataclass(frozen=True, eq=False)
class Patient:
    patient_id: str
    cohort: str
    index: int
    entropy: tuple[int, ...]
    phase: str
    dose: float             # 0 (lowest dose, noisiest) … 1, one per patient across its series
    kernel_cutoff: float    # apodisation cutoff as a fraction of Nyquist (reconstruction kernel)
    size: float             # overall body scale
    aspect: float           # AP depth / width of the trunk
    fat: float              # subcutaneous fat thickness, mm
    offset: tuple[float, float]  # mm, patient off the isocentre
    tissue_hu: np.ndarray
    lesions: tuple[Lesion, ...]
    series: dict[str, Series]

    def rng(self, *key: int) -> np.random.Generator:
        """Detail RNG: same key, same draws, however often a slice is re-rendered."""
        return np.random.default_rng([*self.entropy, *key])

    @property
    def name(self) -> str:
        return "Phantom^" + self.patient_id.split("-")[1]

    def noise_sigma(self, anatomy: str) -> float:
        """σ (HU) of a series: the patient's dose placed within its anatomy's range."""
        lo, hi = NOISE_HU.get(anatomy, BODY_NOISE_HU)
        return hi - self.dose * (hi - lo)


def patient_id(cohort: str, index: int) -> str:
    return f"PHANTOM-{COHORTS[cohort][0]}{index:04d}"


def make_patient(config: PhantomConfig, cohort: str, index: int) -> Patient:
    entropy = (config.seed, COHORTS[cohort][1], index)
    rng = np.random.default_rng([*entropy, 0])
    phase = PHASES[int(rng.integers(len(PHASES)))]
    dose = float(rng.uniform(0.0, 1.0))
    kernel_cutoff = float(rng.uniform(0.55, 1.0))
    size = float(np.clip(rng.normal(1.0, 0.08), 0.82, 1.2))
    aspect = float(rng.uniform(0.66, 0.80))
    fat = float(rng.uniform(6.0, 32.0) * size)
    offset = (float(rng.uniform(-15, 15)), float(rng.uniform(-20, 20)))
    tissue_hu = draw_tissue_hu(rng, phase)
    series = _draw_series(rng, config, cohort)
    lesions = _draw_lesions(rng, index, series["abdomen"])
    return Patient(patient_id(cohort, index), cohort, index, entropy, phase, dose,
                   kernel_cutoff, size, aspect, fat, offset, tissue_hu, lesions, series)


def _draw_series(rng: np.random.Generator, config: PhantomConfig, cohort: str) -> dict[str, Series]:
    # Variants are drawn unconditionally so every cohort consumes the same draw sequence.
    head = "neck" if rng.random() < 0.3 else "head"
    limb = "arms" if rng.random() < 0.25 else "thighs"
    spine = "thorax" if rng.random() < 0.35 else "abdomen"
    anatomy = {"head_neck": head, "thorax": "thorax", "abdomen": "abdomen",
               "extremities": limb, "hip_pelvis": "pelvis", "spine": spine}
    regions = ("abdomen",) if cohort == "lits" else REGIONS
    n = config.lits_slices if cohort == "lits" else config.slices_per_series
    out = {}
    for region in REGIONS:
        fov, thickness, jitter = _draw_fov(rng, region)
        lo, hi = _Z_WINDOW[anatomy[region]]
        z_center = float(rng.uniform(lo, hi))
        if region in regions:
            out[region] = Series(region, anatomy[region], fov, thickness, z_center, n, jitter)
    if cohort == "lits":  # drawn last, so the other cohorts' draw sequence is unchanged
        out["abdomen"] = replace(out["abdomen"], fov=float(rng.uniform(*LIVER_FOV_MM)), target="liver")
    return out


def _draw_fov(rng: np.random.Generator, region: str) -> tuple[float, float, tuple[float, float]]:
    fov = {"head_neck": rng.uniform(230, 270), "spine": rng.uniform(150, 200)}.get(
        region, rng.uniform(360, 450))
    thickness = float(rng.choice([2.0, 2.5, 3.0]) if region == "spine"
                      else rng.choice([2.5, 3.0, 3.75, 5.0]))
    jitter = (float(rng.uniform(-8, 8)), float(rng.uniform(-8, 8)))
    return float(fov), thickness, jitter


def _draw_lesions(rng: np.random.Generator, index: int, abdomen: Series) -> tuple[Lesion, ...]:
    """Every third patient is lesion-free, so any cohort of two or more has both kinds."""
    count = int(rng.integers(1, 6))
    if index % 3 == 1:
        count = 0
    half = abdomen.thickness * (abdomen.n_slices - 1) / 2
    lesions = []
    for _ in range(count):
        radius = float(rng.uniform(*LESION_RADIUS_MM))
        u, v = rng.uniform(-0.45, 0.45, 2)
        z = abdomen.z_center + float(rng.uniform(-0.8, 0.8)) * half
        lesions.append(Lesion(float(u), float(v), z, radius))
    return tuple(lesions)
