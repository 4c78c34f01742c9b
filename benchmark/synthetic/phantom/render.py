"""Label map -> Hounsfield image: attenuation, texture, blur, noise, quantisation.

This is the in-memory generator the writers (and the tests) share, so what a
test checks is exactly what lands on disk.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from benchmark.synthetic.phantom.anatomy import label_slice
from benchmark.synthetic.phantom.config import REGIONS, PhantomConfig
from benchmark.synthetic.phantom.hounsfield import GASES, HU_MAX, HU_MIN
from benchmark.synthetic.phantom.noise import ct_noise, texture
from benchmark.synthetic.phantom.patient import Patient, Series, make_patient
from benchmark.synthetic.phantom.shapes import Grid

_TEXTURE_HU = 4.0      # std of the parenchymal texture
_TEXTURE_MM = 5.0      # its correlation length
_PSF_PX = 0.6          # system blur, pixels: partial-volume edges instead of staircases
_GAS_CODES = np.array(sorted(int(t) for t in GASES), dtype=np.uint8)


@dataclass(frozen=True, eq=False)
class RenderedSlice:
    hu: np.ndarray          # int16 Hounsfield units, exactly as written to disk
    labels: np.ndarray      # uint8 Tissue codes, same shape
    patient: Patient
    series: Series
    grid: Grid
    index: int              # 0-based position in the series (InstanceNumber - 1)

    @property
    def z(self) -> float:
        return self.series.z_table(self.index)


def render_slice(config: PhantomConfig, patient_index: int, region: str, slice_index: int, *,
                 cohort: str = "labelled", noise: bool = True) -> RenderedSlice:
    """One slice of one patient's series, without touching the disk."""
    p = make_patient(config, cohort, patient_index)
    return render(p, p.series[region], slice_index, config.matrix, noise=noise)


def render_series(p: Patient, series: Series, matrix: int, noise: bool = True) -> list[RenderedSlice]:
    return [render(p, series, k, matrix, noise=noise) for k in range(series.n_slices)]


def render(p: Patient, series: Series, k: int, matrix: int, noise: bool = True) -> RenderedSlice:
    labels, grid = label_slice(p, series, k, matrix)
    key = 100 + REGIONS.index(series.region)
    image = p.tissue_hu[labels]
    field = texture(p.rng(key, 1), matrix, _TEXTURE_HU, _TEXTURE_MM / grid.spacing)
    image = image + field * ~np.isin(labels, _GAS_CODES)
    image = ndimage.gaussian_filter(image, _PSF_PX, mode="nearest")
    if noise:
        image = image + ct_noise(p.rng(key, 2, k), matrix, p.noise_sigma(series.anatomy), p.kernel_cutoff)
    hu = np.clip(np.rint(image), HU_MIN, HU_MAX).astype(np.int16)
    return RenderedSlice(hu, labels, p, series, grid, k)
