"""The embedded analogues of LiTS 2017, read from LiTS-layout NIfTI pairs:

* ``phantom-liver-segmentation``: background / liver / lesion per pixel, Dice per class;
* ``phantom-lesion-present``: does an axial liver slice contain a lesion, AUC.

Both take liver-containing axial slices, as 2-D LiTS pipelines do, and group them by
volume. ``--data TASK=DIR`` points either task at the real LiTS training folders.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from benchmark.readers.lits import liver_slices
from benchmark.specs import Preprocessing, TaskSpec, Window
from benchmark.task import Case, Task

from .embedded import phantom_dataset

LIVER_WINDOWS = Preprocessing(
    windows=[Window(center=60, width=200), Window(center=40, width=400), Window(center=100, width=300)],
    channels=3, size=64)
LITS_LAYOUT = "DIR/**/volume-N.nii[.gz] and segmentation-N.nii[.gz] (labels 0 background, 1 liver, 2 lesion)"


class _LitsLayoutTask(Task):
    def prepare_embedded(self, data_dir: Path) -> Path:
        return phantom_dataset(data_dir) / "lits"


class PhantomLiverSegmentation(_LitsLayoutTask):
    spec = TaskSpec(
        name="phantom-liver-segmentation",
        version="1",
        description="Liver and lesion segmentation of axial phantom slices (LiTS 2017 analogue).",
        domain="ct",
        kind="segmentation",
        class_names=["background", "liver", "lesion"],
        metrics=["dice_liver", "dice_lesion", "dice_mean"],
        main_metric="dice_mean",
        reader="lits-nifti",
        preprocessing=LIVER_WINDOWS,
        data_layout=LITS_LAYOUT,
        embedded=True,
    )

    def cases(self, root: Path) -> Iterator[Case]:
        for s in liver_slices(root):
            yield Case(f"{s.source.name}#{s.index}", s.patient_id, s.image, s.mask)


class PhantomLesionPresent(_LitsLayoutTask):
    spec = TaskSpec(
        name="phantom-lesion-present",
        version="1",
        description="Whether an axial liver slice shows a lesion (LiTS 2017 tumour-present analogue).",
        domain="ct",
        kind="classification",
        class_names=["no_lesion", "lesion"],
        metrics=["auc", "accuracy", "balanced_accuracy"],
        main_metric="auc",
        default_scales=[1.0, 0.5, 0.1],  # 1 % and 10 % of 32 pool volumes both floor to 2 per stratum
        reader="lits-nifti",
        preprocessing=LIVER_WINDOWS,
        data_layout=LITS_LAYOUT,
        embedded=True,
    )

    def cases(self, root: Path) -> Iterator[Case]:
        for s in liver_slices(root):
            yield Case(f"{s.source.name}#{s.index}", s.patient_id, s.image, int((s.mask == 2).any()))


SEGMENTATION = PhantomLiverSegmentation()
LESION_PRESENT = PhantomLesionPresent()
