"""LiTS-2017-style NIfTI pairs: volume-N.nii (HU) and segmentation-N.nii (0/1/2).

Axes are (X, Y, Z) with Z increasing superiorly, and the affine carries the
voxel size on its diagonal, so readers that trust the header get millimetres.
"""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from benchmark.synthetic.phantom.hounsfield import Tissue
from benchmark.synthetic.phantom.render import RenderedSlice

LITS_LABELS = {"background": 0, "liver": 1, "lesion": 2}


def _affine(slices: list[RenderedSlice]) -> np.ndarray:
    """RAS+ voxel-to-world, the same points as the DICOM's LPS ImagePositionPatient.

    Array axis 0 runs along DICOM columns (towards the patient's left) and axis 1 along
    rows (posterior), so both flip sign when LPS becomes RAS.
    """
    g, s = slices[0].grid, slices[0].series
    affine = np.diag([-g.spacing, -g.spacing, s.thickness, 1.0])
    affine[:3, 3] = [-g.xs[0], -g.ys[0], min(sl.z for sl in slices)]
    return affine


def _volume_arrays(slices: list[RenderedSlice]) -> tuple[np.ndarray, np.ndarray]:
    ordered = sorted(slices, key=lambda sl: sl.z)  # inferior -> superior
    hu = np.stack([sl.hu.T for sl in ordered], axis=-1).astype(np.int16)
    labels = np.stack([sl.labels.T for sl in ordered], axis=-1)
    seg = np.zeros(labels.shape, dtype=np.uint8)
    seg[labels == Tissue.LIVER] = LITS_LABELS["liver"]
    seg[labels == Tissue.LESION] = LITS_LABELS["lesion"]
    return hu, seg


def save_nifti(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """A NIfTI-1 file as scanners' converters write it: mm units, qform and sform both set."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(array, affine)
    image.header.set_data_dtype(array.dtype)
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, str(path))


def write_lits_case(directory: Path, n: int, slices: list[RenderedSlice]) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    hu, seg = _volume_arrays(slices)
    affine = _affine(slices)
    save_nifti(hu, affine, directory / f"volume-{n}.nii")
    save_nifti(seg, affine, directory / f"segmentation-{n}.nii")
    return {"volume": f"lits/volume-{n}.nii", "segmentation": f"lits/segmentation-{n}.nii",
            "shape": list(hu.shape), "liver_voxels": int((seg == 1).sum() + (seg == 2).sum()),
            "lesion_voxels": int((seg == 2).sum())}
