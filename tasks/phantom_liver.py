"""The embedded analogues of LiTS 2017, read from LiTS-layout NIfTI pairs:

* ``phantom-liver-segmentation``: background / liver / lesion per pixel, Dice per class;
* ``phantom-lesion-present``: does an axial liver slice contain a lesion, AUC.

They are the real-data LiTS tasks (``tasks/lits.py``) with the phantom's data: the same
reader, the same windows, so that phantom and real results compare. ``--data TASK=DIR``
points either task at the real LiTS training folders.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.core.specs import TaskSpec
from benchmark.synthetic.embedded import phantom_dataset
from tasks.lits import LitsLiverSegmentation, LitsTumourPresent

# What the phantom versions change: the names, the lesion wording, and where the data comes from.
EMBEDDED = dict(embedded=True,
                data_layout="DIR/**/volume-N.nii[.gz] and segmentation-N.nii[.gz] (labels 0 background, 1 liver, "
                            "2 lesion)")


class _Embedded:
    def prepare_embedded(self, data_dir: Path) -> Path:
        return phantom_dataset(data_dir) / "lits"


class PhantomLiverSegmentation(_Embedded, LitsLiverSegmentation):
    spec = TaskSpec.model_validate({
        **LitsLiverSegmentation.spec.model_dump(), **EMBEDDED,
        "name": "phantom-liver-segmentation", "class_names": ["background", "liver", "lesion"],
        "description": "Liver and lesion segmentation of axial phantom slices (LiTS 2017 analogue).",
        "metrics": ["dice_mean", "dice_liver", "dice_lesion", "dice_global_liver", "dice_global_lesion",
                    "dice_slice_liver", "dice_slice_lesion"],
    })


class PhantomLesionPresent(_Embedded, LitsTumourPresent):
    spec = TaskSpec.model_validate({
        **LitsTumourPresent.spec.model_dump(), **EMBEDDED,
        "name": "phantom-lesion-present", "class_names": ["no_lesion", "lesion"],
        "description": "Whether an axial liver slice shows a lesion (LiTS 2017 tumour-present analogue).",
        "default_scales": [1.0, 0.5, 0.1],  # 1 % and 10 % of 32 pool volumes both floor to 2 per stratum
    })


SEGMENTATION = PhantomLiverSegmentation()
LESION_PRESENT = PhantomLesionPresent()
TASKS = [SEGMENTATION, LESION_PRESENT]
