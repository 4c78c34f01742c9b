"""The study's downstream training settings, one recipe per task family.

Task plugins take their ``training`` from here so that the ``paper`` profile trains every
task as the study did (its configs ``E1/PT_SimCLR_R_FT_<task>.yaml`` and
``finetuning_tasks.py``): optimiser, per-epoch exponential decay, batch, epochs, loss weights, a
bias-free linear head, the last epoch (no selection), and its augmentations, each at p 0.2:
random resized crop at torchvision's default scale 0.08-1, horizontal flip, colour jitter
(0.1, 0.1, 0.1, hue 0.2) where the task has it, Gaussian blur with kernel 3 and sigma 0.1-2,
sharpness 2 on the classification tasks. The linear evaluations (``linear-study``,
``seg-linear``, ``seg-linear-study``) use the same settings with the encoder frozen.
"""
from __future__ import annotations

from benchmark.core.specs import Augmentation, TrainingRecipe

_JITTER = (0.1, 0.1, 0.1, 0.2)
STUDY_AUGMENTATION: dict[str, Augmentation] = {
    "classification": Augmentation(crop_scale=(0.08, 1.0), jitter=_JITTER, blur_kernel=3, sharpness=2.0),
    "imagenet": Augmentation(crop_scale=(0.08, 1.0), jitter=_JITTER, grayscale=True, blur_kernel=3, sharpness=2.0),
    "lits": Augmentation(crop_scale=(0.08, 1.0), jitter=_JITTER, blur_kernel=3, sharpness=None),
    "brats": Augmentation(crop_scale=(0.08, 1.0), jitter=None, blur_kernel=3, sharpness=None),
}
#: ChestX-ray8's BCE weighs each of the 15 labels' loss; "No Finding" (last here) counts 0.001.
CHESTXRAY8_LABEL_WEIGHTS = [1.0] * 14 + [0.001]

_STUDY = dict(head_bias=False, selection="last")
STUDY_RECIPES: dict[str, TrainingRecipe] = {
    "body-region": TrainingRecipe(optimizer="lars", lr=0.01, weight_decay=1e-4, batch_size=4096, epochs=100,
                                  decay=0.97, augmentation=STUDY_AUGMENTATION["classification"], **_STUDY),
    "lits": TrainingRecipe(optimizer="adamw", lr=2e-4, weight_decay=1e-6, batch_size=128, epochs=50, decay=0.97,
                           class_weights=[1.0, 3.0, 10.0], augmentation=STUDY_AUGMENTATION["lits"], **_STUDY),
    "brats": TrainingRecipe(optimizer="adamw", lr=1e-3, weight_decay=1e-5, batch_size=128, epochs=50, decay=0.95,
                            class_weights=[1.0, 5.0, 5.0, 5.0], augmentation=STUDY_AUGMENTATION["brats"], **_STUDY),
    "chestxray8": TrainingRecipe(optimizer="adamw", lr=5e-4, weight_decay=1e-6, batch_size=128, epochs=50,
                                 decay=0.97, class_weights=CHESTXRAY8_LABEL_WEIGHTS,
                                 augmentation=STUDY_AUGMENTATION["classification"], **_STUDY),
}


def study_recipe(family: str, **changes) -> TrainingRecipe:
    """A family's recipe, e.g. LiTS without its 3-class weights for a binary LiTS task."""
    return STUDY_RECIPES[family].model_copy(update=changes)


def transformer_recipe(recipe: TrainingRecipe) -> dict:
    """What finetuning a transformer changes in a task's recipe: MAE's and BEiT's AdamW with weight
    decay 0.05, layer-wise learning-rate decay 0.65, and the base rate 5e-4 scaled by batch / 256
    (MAE's ViT-B finetuning). The study trained only ResNets, so its recipes stay as they are for
    every CNN; a transformer under the study's LARS at 0.01 would not train. Departure: no warm-up
    epochs, which those recipes add (the schedules here are the study's per-epoch decays)."""
    return {"optimizer": "adamw", "lr": 5e-4 * recipe.batch_size / 256, "weight_decay": 0.05, "layer_decay": 0.65}
