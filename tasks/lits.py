"""LiTS 2017 (Liver Tumor Segmentation Challenge) on its real training data:

* ``lits-liver-segmentation``: background / liver / tumour per pixel, Dice per class;
* ``lits-tumour-present``: does an axial liver slice show a tumour, AUC.

Data: the 131 labelled training volumes of https://competitions.codalab.org/competitions/17094
(mirrored on Academic Torrents; the MSD's Task03_Liver re-publishes them in its own layout,
read by ``msd-liver``). License: the challenge's data terms (commonly cited as CC BY-NC-SA 4.0).
The 70 test volumes (``test-volume-N.nii``) have no public labels and are not read.

Layout, as unpacked: ``DIR/Training Batch 1/volume-0.nii … volume-27.nii`` beside
``segmentation-0.nii …``, and ``DIR/Training Batch 2/volume-28.nii … volume-130.nii``;
re-compressed copies (``.nii.gz``) are read too. Labels 0 background, 1 liver, 2 tumour.

Both tasks take the liver-containing axial slices (axis 2 of the NIfTI array), as 2-D LiTS
pipelines do, and group them by volume (one volume per patient). The study trained on every slice
instead (its code filters nothing, and its logged 277-278 steps of 128 per epoch mean about 35.5k
training slices, far more than LiTS's liver slices): ``lits-liver-segmentation-all-slices`` is that
variant, a task of its own because its test set differs. Every LiTS volume shows liver,
so an all-background mask is refused by name rather than letting its volume drop out. The embedded
``phantom-*`` liver tasks are these tasks on the phantom's data. :func:`foreground_slices`
(with the 2.5-D input of ``Preprocessing.neighbours``) is shared with the MSD and KiTS adapters.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from benchmark.core.specs import Preprocessing, TaskSpec, Window
from benchmark.data.readers.lits import LITS_LABELS, lits_volumes, mask_of
from benchmark.data.readers.nifti import read_labelled_pair
from benchmark.data.readers.volume import axial_image
from benchmark.data.task import Case, Task
from benchmark.evaluation.metrics import study_targets
from benchmark.evaluation.recipes import STUDY_AUGMENTATION, study_recipe

# Liver (60/200), abdominal soft tissue (40/400) and contrast-enhanced lesion (100/300)
# windows: those of the phantom analogues, so that real and phantom results compare.
LIVER_WINDOWS = [Window(center=60, width=200), Window(center=40, width=400), Window(center=100, width=300)]

# Where the data comes from and how to credit it; the phantom analogues keep the citation of what they mimic.
LITS_SOURCE = dict(
    license="CC BY-NC-SA 4.0 (the LiTS challenge's data terms)",
    reference="https://competitions.codalab.org/competitions/17094",
    citation="Bilic P., Christ P., Li H. B., Vorontsov E., et al. The Liver Tumor Segmentation Benchmark (LiTS). "
             "Medical Image Analysis 84:102680, 2023.",
)

REAL_LITS_FIELDS = dict(
    version="1", domain="ct", embedded=False, **LITS_SOURCE,
    preprocessing=Preprocessing(windows=LIVER_WINDOWS, channels=3, size=64),
    data_layout="DIR/Training Batch {1,2}/volume-N.nii[.gz] beside segmentation-N.nii[.gz] "
                "(labels 0 background, 1 liver, 2 tumour)",
)


def segmentation_metrics(class_names: list[str], regions: dict[str, list[int]] | None = None) -> list[str]:
    """dice_mean, then per-volume, pooled and per-slice Dice of every foreground class and region, then
    the study's batch-pooled Dice (``dice_study_*``, every class, background included)."""
    targets = [*class_names[1:], *(r for r in regions or {} if r not in class_names)]
    study = study_targets(class_names, regions)
    return ["dice_mean", *(f"dice_{variant}{name}" for variant in ("", "global_", "slice_") for name in targets),
            *(f"dice_study_{name}" for name in study)]


def foreground_slices(image_xyz: np.ndarray, mask_xyz: np.ndarray,
                      neighbours: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(k, image, mask) of the axial slices k of (X, Y, Z) arrays whose mask holds foreground."""
    for k in np.flatnonzero(mask_xyz.any(axis=(0, 1))):
        yield int(k), axial_image(image_xyz, int(k), neighbours), axial_image(mask_xyz, int(k))


def all_slices(image_xyz: np.ndarray, mask_xyz: np.ndarray,
               neighbours: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    for k in range(image_xyz.shape[2]):
        yield k, axial_image(image_xyz, k, neighbours), axial_image(mask_xyz, k)


class _LitsTask(Task):
    every_slice = False  # True: every axial slice, as the study trained; False: the liver's slices only

    def units(self, root: Path) -> list[Path]:
        return lits_volumes(root)

    def read(self, root: Path, unit: Path) -> Iterator[Case]:
        volume, mask = read_labelled_pair(unit, mask_of(unit), LITS_LABELS, foreground_of=self.spec.name)
        patient = unit.name.split(".")[0]  # volume-N: one volume per patient
        name = unit.relative_to(root).as_posix()
        spacing = (volume.spacing[1], volume.spacing[0])  # rows are Y, columns X
        slices = all_slices if self.every_slice else foreground_slices
        for k, image, labels in slices(volume.array, mask.array, self.spec.preprocessing.neighbours):
            yield Case(f"{name}#{k}", patient, image, self.label(labels), {"spacing": spacing})

    def label(self, mask: np.ndarray):
        raise NotImplementedError


class LitsLiverSegmentation(_LitsTask):
    spec = TaskSpec(
        name="lits-liver-segmentation",
        description="Liver and tumour segmentation of axial CT slices (LiTS 2017 training volumes).",
        kind="segmentation",
        class_names=["background", "liver", "tumour"],
        metrics=segmentation_metrics(["background", "liver", "tumour"]),
        main_metric="dice_mean",
        training=study_recipe("lits"),
        **REAL_LITS_FIELDS,
    )

    def label(self, mask: np.ndarray) -> np.ndarray:
        return mask


class LitsTumourPresent(_LitsTask):
    spec = TaskSpec(
        name="lits-tumour-present",
        description="Whether an axial liver slice shows a tumour (LiTS 2017 training volumes).",
        kind="classification",
        class_names=["no_tumour", "tumour"],
        metrics=["auc", "accuracy", "balanced_accuracy"],
        main_metric="auc",
        training=study_recipe("lits", class_weights=None, augmentation=STUDY_AUGMENTATION["classification"]),
        # the 3-class weights and the crop-and-blur-only augmentation are the segmentation's
        **REAL_LITS_FIELDS,
    )

    def label(self, mask: np.ndarray) -> int:
        return int((mask == 2).any())


class LitsLiverSegmentationAllSlices(LitsLiverSegmentation):
    every_slice = True
    spec = LitsLiverSegmentation.spec.model_copy(update={
        "name": "lits-liver-segmentation-all-slices",
        "description": "Liver and tumour segmentation of every axial CT slice, liver or not, as the study "
                       "trained and tested (LiTS 2017 training volumes).",
    })


SEGMENTATION = LitsLiverSegmentation()
TUMOUR_PRESENT = LitsTumourPresent()
SEGMENTATION_ALL_SLICES = LitsLiverSegmentationAllSlices()
TASKS = [SEGMENTATION, TUMOUR_PRESENT, SEGMENTATION_ALL_SLICES]
