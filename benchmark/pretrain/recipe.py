"""The pretraining recipe: every hyperparameter the weights depend on, in one frozen record.

Its hash (with the corpus fingerprint) keys the resumable training state, so a resume
with a different recipe is refused instead of silently mixing two runs.

Choices that differ from the study (SimCLR, ResNet-50, LARS at batch 4096, 224 px):
- optimizer: AdamW with a linear warm-up then a cosine decay to zero, per step. LARS exists
  for batches of thousands; at demo batches (128) Adam-type optimizers converge in far fewer
  epochs, which is what a CPU budget of minutes needs.
- the projection head is lightly's ``SimCLRProjectionHead`` sized to the backbone
  (hidden = feature width, output 128), as in SimCLR for small models.
- temperature 0.5, lightly's default and SimCLR's setting for small batches (0.1 is for 4096).
- no Gaussian blur: SimCLR drops it for small images (CIFAR, 32 px); at 64 px a blur with
  the ImageNet kernel (10 % of the side) would erase most of the phantom's structure.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

Method = Literal["simclr", "byol"]
METHODS = ("simclr", "byol")


@dataclass(frozen=True)
class Recipe:
    method: str = "simclr"
    arch: str = "resnet18"
    epochs: int = 8
    batch_size: int = 64
    image_size: int = 64
    seed: int = 0
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    # SimCLR
    temperature: float = 0.5
    projection_dim: int = 128
    # BYOL (lightly's BYOL heads; momentum follows a cosine from base to 1)
    byol_hidden_dim: int = 1024
    byol_base_momentum: float = 0.99
    # augmentations (the study's SimCLR set, see augment.py)
    crop_min_scale: float = 0.08
    hflip_p: float = 0.5
    jitter_p: float = 0.8
    jitter: tuple[float, float, float, float] = (0.8, 0.8, 0.8, 0.2)
    grayscale_p: float = 0.2

    def to_dict(self) -> dict:
        payload = asdict(self)
        payload["jitter"] = list(self.jitter)
        return payload

    def with_(self, **changes) -> "Recipe":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


# The demo baselines' recipes (demo-ct-simclr, demo-natural-simclr): resnet18 at 64 px, batch 64
# pairs. Measured on 2 shared CPU cores (torch 2.14.1): resnet18 at 64 px trains at 75-95 images/s
# (forward + backward + augmentation; each pair is 2 images), 20-40 when other jobs share the cores.
# - CT, the 960-slice embedded phantom corpus: 8 epochs x 15 steps, 207 s training, 219 s wall
#   (a 1,400-slice corpus takes about 1.45x as long: use 6 epochs there to stay under 5 minutes);
# - natural, the 600-crop corpus: 12 epochs x 9 steps, about 190 s (16 epochs took 256 s wall).
# Both are about 110-120 optimizer steps. The batch is 64 rather than 128: the same images/s on a
# CPU, and twice the steps, which is what a few-minute budget is short of.
DEMO_RECIPES = {"ct": Recipe(epochs=8), "natural": Recipe(epochs=12)}
DEMO_RECIPE = DEMO_RECIPES["ct"]
