"""The embedded analogues of LiTS 2017, read from LiTS-layout NIfTI pairs:

* ``phantom-liver-segmentation``: background / liver / lesion per pixel, Dice per class;
* ``phantom-lesion-present``: does an axial liver slice contain a lesion, AUC.

Both take liver-containing axial slices, as 2-D LiTS pipelines do, and group them by
volume. ``--data TASK=DIR`` points either task at the real LiTS training folders.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from benchmark.readers.lits import liver_slices, lits_volumes
from benchmark.recipes import study_recipe
from benchmark.specs import Preprocessing, TaskSpec, Window
from benchmark.task import Case, Task

from .embedded import phantom_dataset

# What both tasks share: the data, its reader and its preprocessing.
LITS_FIELDS = dict(
    version="1", domain="ct", reader="lits-nifti", embedded=True,
    preprocessing=Preprocessing(
        windows=[Window(center=60, width=200), Window(center=40, width=400), Window(center=100, width=300)],
        channels=3, size=64),
    data_layout="DIR/**/volume-N.nii[.gz] and segmentation-N.nii[.gz] (labels 0 background, 1 liver, 2 lesion)",
)


class _LitsLayoutTask(Task):
    def prepare_embedded(self, data_dir: Path) -> Path:
        return phantom_dataset(data_dir) / "lits"

    def units(self, root: Path) -> list[Path]:
        return lits_volumes(root)

    def read(self, root: Path, unit: Path) -> Iterator[Case]:
        for s in liver_slices(unit):
            yield Case(f"{s.source.name}#{s.index}", s.patient_id, s.image, self.label(s.mask),
                       {"spacing": s.spacing})

    def label(self, mask: np.ndarray):
        raise NotImplementedError


class PhantomLiverSegmentation(_LitsLayoutTask):
    spec = TaskSpec(
        name="phantom-liver-segmentation",
        description="Liver and lesion segmentation of axial phantom slices (LiTS 2017 analogue).",
        kind="segmentation",
        class_names=["background", "liver", "lesion"],
        metrics=["dice_mean", "dice_liver", "dice_lesion", "dice_global_liver", "dice_global_lesion",
                 "dice_slice_liver", "dice_slice_lesion"],
        main_metric="dice_mean",
        training=study_recipe("lits"),
        **LITS_FIELDS,
    )

    def label(self, mask: np.ndarray) -> np.ndarray:
        return mask


class PhantomLesionPresent(_LitsLayoutTask):
    spec = TaskSpec(
        name="phantom-lesion-present",
        description="Whether an axial liver slice shows a lesion (LiTS 2017 tumour-present analogue).",
        kind="classification",
        class_names=["no_lesion", "lesion"],
        metrics=["auc", "accuracy", "balanced_accuracy"],
        main_metric="auc",
        default_scales=[1.0, 0.5, 0.1],  # 1 % and 10 % of 32 pool volumes both floor to 2 per stratum
        training=study_recipe("lits", class_weights=None),  # the 3-class weights are the segmentation's
        **LITS_FIELDS,
    )

    def label(self, mask: np.ndarray) -> int:
        return int((mask == 2).any())


SEGMENTATION = PhantomLiverSegmentation()
LESION_PRESENT = PhantomLesionPresent()
TASKS = [SEGMENTATION, LESION_PRESENT]
