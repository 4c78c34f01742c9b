"""The study's downstream training settings, one recipe per task family.

Task plugins take their ``training`` from here so that the ``paper`` profile trains every
task as the study did; linear evaluation (``seg-linear``) uses the same settings with the
encoder frozen. Per-epoch exponential decay with the given factor; the study picked the
last epoch, so ``selection`` is ``last``.
"""
from __future__ import annotations

from benchmark.core.specs import TrainingRecipe

STUDY_RECIPES: dict[str, TrainingRecipe] = {
    "body-region": TrainingRecipe(optimizer="lars", lr=0.01, weight_decay=1e-4, batch_size=4096, epochs=100,
                                  decay=0.97),
    "lits": TrainingRecipe(optimizer="adamw", lr=2e-4, weight_decay=1e-6, batch_size=128, epochs=50, decay=0.97,
                           class_weights=[1.0, 3.0, 10.0]),
    "brats": TrainingRecipe(optimizer="adamw", lr=1e-3, weight_decay=1e-5, batch_size=128, epochs=50, decay=0.95,
                            class_weights=[1.0, 5.0, 5.0, 5.0]),
    "chestxray8": TrainingRecipe(optimizer="adamw", lr=5e-4, weight_decay=1e-6, batch_size=128, epochs=50,
                                 decay=0.97),
}


def study_recipe(family: str, **changes) -> TrainingRecipe:
    """A family's recipe, e.g. LiTS without its 3-class weights for a binary LiTS task."""
    return STUDY_RECIPES[family].model_copy(update=changes)
