"""Run profiles: ``demo`` fits a laptop CPU in minutes, ``paper`` is the study's setting."""
from __future__ import annotations

from dataclasses import dataclass, field

from benchmark.core.specs import DEFAULT_SEEDS, Augmentation, Preprocessing, TrainingRecipe
from benchmark.evaluation.recipes import transformer_recipe

# The demo's training budget: every training job takes the same number of optimizer steps,
# so a job costs the same few seconds at every data scale (larger budgets see more distinct
# images, smaller ones more epochs). AdamW at 1e-3 because 30 steps of the study's rates
# (LARS 0.01, AdamW 2e-4) barely move a network; validation picks the best epoch. Three of the
# four default seeds, and narrow U-Net and DPT decoders, for the same reason. A light augmentation (crop 0.5-1:
# the study's 0.08 would crop away most of a 64 px lesion) and a head with a bias, as before the paper
# profile followed the study point by point.
DEMO_TRAINING = dict(optimizer="adamw", lr=1e-3, weight_decay=1e-4, batch_size=16, epochs=24, max_steps=24,
                     schedule="exponential", decay=0.97, selection="val", head_bias=True,
                     augmentation=Augmentation())


@dataclass(frozen=True)
class ProfileSettings:
    name: str
    image_size: int
    batch_size: int  # feature extraction and evaluation
    training_overrides: dict = field(default_factory=dict)
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)  # the U-Net decoder's widths, smp's default
    dpt_features: int = 256  # a DPT decoder's fusion width (its reassembly widths 1, 2, 4, 4 times it): smp's default
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    jobs_per_chunk: int = 1  # training jobs per worker task: a paper finetune takes hours, a demo one seconds

    def preprocessing(self, task_default: Preprocessing) -> Preprocessing:
        return task_default.model_copy(update={"size": self.image_size})

    def training(self, task_recipe: TrainingRecipe, transformer: bool = False) -> TrainingRecipe:
        """The task's recipe (a transformer's: with ViT finetuning's optimiser, see ``transformer_recipe``),
        less what this profile overrides (class weights always stay)."""
        family = transformer_recipe(task_recipe) if transformer else {}
        return TrainingRecipe.model_validate({**task_recipe.model_dump(), **family, **self.training_overrides})


PROFILES = {
    "demo": ProfileSettings("demo", image_size=64, batch_size=64, training_overrides=DEMO_TRAINING,
                            decoder_channels=(32, 16, 16, 8, 8), dpt_features=16, seeds=(42, 1, 2), jobs_per_chunk=64),
    "paper": ProfileSettings("paper", image_size=256, batch_size=128),
}
