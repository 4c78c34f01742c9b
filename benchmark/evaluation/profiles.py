"""Run profiles: ``demo`` fits a laptop CPU in minutes, ``paper`` is the study's setting."""
from __future__ import annotations

from dataclasses import dataclass, field

from benchmark.core.specs import DEFAULT_SEEDS, Augmentation, Preprocessing, TrainingRecipe
from benchmark.evaluation.recipes import transformer_recipe

# The demo's training budget: a job trains for 8 epochs of its training set, stopped at its task's
# step budget (``DEMO_STEPS``, else ``max_steps``): enough AdamW steps at 1e-3 for the training loss to
# flatten at 100 % of the labels (the results' ``history`` records it) and finetuning to reach the linear
# probe; smaller label budgets stop at 8 epochs, before the cap. AdamW at 1e-3 because a few hundred
# steps of the study's rates (LARS 0.01, AdamW 2e-4) barely move a network; validation picks the best
# epoch. The segmentation loss adds a Dice term to the study's weighted cross-entropy: cross-entropy
# alone reached lesion Dice 0.01-0.05 in 240 steps (on 2-7 px lesions; 0.14-0.21 with the Dice term).
# Three of the four default seeds, narrow U-Net and DPT decoders, and only the geometric augmentations
# (a crop of 0.5-1, since the study's 0.08 would crop away most of a 64 px lesion, and a flip: kornia's
# intensity ops cost a sixth of a CPU step) keep ``make demo`` within 10 minutes on two cores; the head
# has a bias, as before the paper profile followed the study point by point.
DEMO_TRAINING = dict(optimizer="adamw", lr=1e-3, weight_decay=1e-4, batch_size=16, epochs=8, max_steps=120,
                     schedule="exponential", decay=0.97, selection="val", head_bias=True, dice_loss=True,
                     augmentation=Augmentation(jitter=None, blur_kernel=0, sharpness=None))
#: Tasks whose loss still falls at the default budget: body region (finetuning stays below the linear
#: probe at 120 steps), lesion present and liver segmentation (the lesions are learned last).
DEMO_STEPS = {"phantom-body-region": 200, "phantom-lesion-present": 200, "phantom-liver-segmentation": 200}


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
    step_budgets: dict[str, int] = field(default_factory=dict)  # task name -> max_steps, over training_overrides

    def preprocessing(self, task_default: Preprocessing) -> Preprocessing:
        return task_default.model_copy(update={"size": self.image_size})

    def training(self, task_recipe: TrainingRecipe, transformer: bool = False, task: str | None = None) -> TrainingRecipe:
        """The task's recipe (a transformer's: with ViT finetuning's optimiser, see ``transformer_recipe``),
        less what this profile overrides (class weights always stay), with the task's step budget."""
        family = transformer_recipe(task_recipe) if transformer else {}
        budget = {"max_steps": self.step_budgets[task]} if task in self.step_budgets else {}
        return TrainingRecipe.model_validate({**task_recipe.model_dump(), **family, **self.training_overrides,
                                              **budget})


PROFILES = {
    "demo": ProfileSettings("demo", image_size=64, batch_size=64, training_overrides=DEMO_TRAINING,
                            decoder_channels=(32, 16, 16, 8, 8), dpt_features=16, seeds=(42, 1, 2), jobs_per_chunk=64,
                            step_budgets=DEMO_STEPS),
    "paper": ProfileSettings("paper", image_size=256, batch_size=128),
}
