"""``brats2020-segmentation``: glioma sub-regions in multi-parametric brain MRI (BraTS 2020).

Data: the MICCAI BraTS 2020 training data, https://www.med.upenn.edu/cbica/brats2020/data.html
(free registration with CBICA; a copy is mirrored on Kaggle as
``awsaf49/brats20-dataset-training-validation``). License: the BraTS data-usage terms, research
use with citation of Menze et al. 2015 (IEEE TMI), Bakas et al. 2017 (Sci. Data) and Bakas et
al. 2018 (arXiv:1811.02629); check them on the download page.

Layout: ``MICCAI_BraTS2020_TrainingData/BraTS20_Training_NNN/BraTS20_Training_NNN_{t1,t1ce,t2,
flair,seg}.nii[.gz]`` (the official archive has ``.nii.gz``, the Kaggle copy ``.nii``). The
validation folders have no masks and are not read.

Labels on disk, as the BraTS 2020 data page documents them: 0 background, 1 necrotic and
non-enhancing tumour core (NCR/NET), 2 peritumoral edema (ED), 4 GD-enhancing tumour (ET). There
is no label 3 in 2020, so 4 becomes class 3 here. A mask that already holds a 3 (BraTS 2021
renamed NCR/NET, or a file someone remapped) is refused rather than guessed at. Dice is reported
over the challenge's regions: whole tumour WT = {1, 2, 4}, tumour core TC = {1, 4}, enhancing
tumour ET = {4}, i.e. classes {1, 2, 3}, {1, 3}, {3}. Every training case has a tumour, so an
all-background mask is refused by name rather than letting its case drop out silently.

Input: t1, t1ce and flair as the three channels (t2 is read and checked, but three channels is
what an ImageNet-shaped network takes, and t1ce + flair carry the enhancing and edema contrast).
MRI has no absolute scale, so each modality is scaled per volume: its brain voxels (non-zero;
BraTS volumes are skull-stripped with a zero background) map the 0.5th..99.5th percentile to
0..1, clipped, background stays 0. The task's one 0..1 window then passes that through.

Quirk: in BraTS20_Training_355 the mask is named ``W39_1998.09.19_Segm.nii``; a case folder
without ``<case>_seg`` but with exactly one ``*_Segm.nii[.gz]`` uses that file.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import numpy as np

from benchmark.core.errors import DataError
from benchmark.core.specs import Preprocessing, TaskSpec, Window
from benchmark.data.readers.nifti import Volume, read_volume, require_foreground
from benchmark.data.readers.volume import axial_image
from benchmark.data.task import Case, Task
from benchmark.evaluation.recipes import study_recipe

MODALITIES = ("t1", "t1ce", "t2", "flair")
CHANNELS = ("t1", "t1ce", "flair")
DISK_TO_CLASS = {0: 0, 1: 1, 2: 2, 4: 3}
PERCENTILES = (0.5, 99.5)
_CASE = re.compile(r"BraTS20_Training_\d+")


class Brats2020Segmentation(Task):
    spec = TaskSpec(
        name="brats2020-segmentation",
        version="1",
        description="Glioma sub-region segmentation (necrotic core, edema, enhancing tumour) of axial "
                    "brain MRI slices, t1/t1ce/flair as channels (BraTS 2020).",
        domain="mri",
        kind="segmentation",
        class_names=["background", "necrotic", "edema", "enhancing"],
        metrics=["dice_mean", "dice_WT", "dice_TC", "dice_ET", "dice_global_WT", "dice_global_TC",
                 "dice_global_ET", "dice_slice_WT", "dice_slice_TC", "dice_slice_ET",
                 # the study's batch-pooled Dice, in its metric code's order (background, ET, WT, TC)
                 "dice_study_background", "dice_study_ET", "dice_study_WT", "dice_study_TC"],
        main_metric="dice_mean",
        license="the BraTS 2020 data-usage terms: research use, citing the BraTS papers (see the download page)",
        reference="https://www.med.upenn.edu/cbica/brats2020/data.html",
        citation="Menze B. H., Jakab A., Bauer S., et al. The Multimodal Brain Tumor Image Segmentation Benchmark "
                 "(BRATS). IEEE Transactions on Medical Imaging 34(10):1993-2024, 2015. Bakas S., Akbari H., Sotiras A., "
                 "et al. Advancing The Cancer Genome Atlas glioma MRI collections with expert segmentation labels and "
                 "radiomic features. Scientific Data 4:170117, 2017. Bakas S., Reyes M., Jakab A., et al. Identifying "
                 "the Best Machine Learning Algorithms for Brain Tumor Segmentation, Progression Assessment, and Overall "
                 "Survival Prediction in the BRATS Challenge. arXiv:1811.02629, 2018.",
        # Channels are modalities already scaled to 0..1 per volume (see the module docstring).
        preprocessing=Preprocessing(windows=[Window(center=0.5, width=1.0)], channels=3, size=64),
        data_layout="DIR/**/BraTS20_Training_NNN/BraTS20_Training_NNN_{t1,t1ce,t2,flair,seg}.nii[.gz] "
                    "(seg labels 0 background, 1 NCR/NET, 2 edema, 4 enhancing)",
        training=study_recipe("brats"),
        regions={"WT": [1, 2, 3], "TC": [1, 3], "ET": [3]},
    )

    def units(self, root: Path) -> list[Path]:
        return brats_cases(root)

    def read(self, root: Path, unit: Path) -> Iterator[Case]:
        volumes = {m: read_volume(modality_file(unit, m)) for m in MODALITIES}
        seg = read_volume(modality_file(unit, "seg"))
        for other in [*list(volumes.values())[1:], seg]:
            _check_aligned(volumes["t1"], other)
        classes = to_classes(seg)
        require_foreground(seg, self.spec.name)
        channels = [normalise(volumes[m]) for m in CHANNELS]
        spacing = (volumes["t1"].spacing[1], volumes["t1"].spacing[0])
        relative = unit.relative_to(root).as_posix()
        for k in np.flatnonzero(classes.any(axis=(0, 1))):
            image = np.stack([axial_image(c, int(k)) for c in channels])
            yield Case(f"{relative}#{k}", unit.name, image, axial_image(classes, int(k)), {"spacing": spacing})


def brats_cases(root: Path) -> list[Path]:
    """The ``BraTS20_Training_NNN`` case folders below ``root``, by name; a case found twice is an error."""
    cases = sorted((p for p in root.rglob("BraTS20_Training_*") if p.is_dir() and _CASE.fullmatch(p.name)),
                   key=lambda p: (p.name, p.as_posix()))
    if not cases:
        raise DataError("holds no BraTS20_Training_NNN case folders", root)
    for first, second in zip(cases, cases[1:]):
        if first.name == second.name:
            raise DataError(f"case {first.name} is found twice: {first} and {second}", root)
    return cases


def modality_file(case: Path, modality: str) -> Path:
    for suffix in (".nii.gz", ".nii"):
        path = case / f"{case.name}_{modality}{suffix}"
        if path.is_file():
            return path
    if modality == "seg":  # BraTS20_Training_355 ships its mask as W39_1998.09.19_Segm.nii
        legacy = [p for p in case.glob("*_Segm.nii*") if not p.name.startswith("._")]
        if len(legacy) == 1:
            return legacy[0]
    raise DataError(f"has no {case.name}_{modality}.nii[.gz]", case)


def _check_aligned(reference: Volume, other: Volume) -> None:
    """All four modalities and the mask are co-registered in BraTS; anything else would misalign labels."""
    if other.array.shape != reference.array.shape:
        raise DataError(f"shape {other.array.shape} differs from {reference.path.name}'s {reference.array.shape}",
                        other.path)
    if not np.allclose(other.affine, reference.affine, atol=1e-3):
        raise DataError(f"affine differs from {reference.path.name}'s", other.path)


def to_classes(seg: Volume) -> np.ndarray:
    """Disk labels 0/1/2/4 to class indices 0/1/2/3 (uint8)."""
    if not np.array_equal(seg.array, np.round(seg.array)):
        raise DataError("mask holds non-integer values", seg.path)
    found = set(np.unique(seg.array).astype(int).tolist())
    if 3 in found:
        raise DataError("mask holds label 3, which BraTS 2020 does not use (0, 1, 2, 4): is it a BraTS 2021+ "
                        "mask or one already remapped? ctbench maps 4 to 3 itself and needs the original file",
                        seg.path)
    if not found <= set(DISK_TO_CLASS):
        raise DataError(f"mask labels {sorted(found - set(DISK_TO_CLASS))} are outside BraTS 2020's 0, 1, 2, 4",
                        seg.path)
    lookup = np.zeros(max(DISK_TO_CLASS) + 1, dtype=np.uint8)
    for disk, index in DISK_TO_CLASS.items():
        lookup[disk] = index
    return lookup[seg.array.astype(np.intp)]


def normalise(volume: Volume) -> np.ndarray:
    """Brain-voxel percentiles to 0..1, clipped; the zero background stays 0."""
    brain = volume.array[volume.array > 0]
    if brain.size == 0:
        raise DataError("holds no non-zero (brain) voxels", volume.path)
    low, high = np.percentile(brain, PERCENTILES)
    if high <= low:
        raise DataError(f"brain voxels are constant ({low:g}), so the volume cannot be scaled", volume.path)
    scaled = np.clip((volume.array - low) / (high - low), 0.0, 1.0)
    return np.where(volume.array > 0, scaled, 0.0).astype(np.float32)


TASK = Brats2020Segmentation()
