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


# The demo baselines' recipes (demo-ct-simclr, demo-natural-simclr): timm's test_resnet (0.4 M
# parameters) at 64 px, batch 64 pairs. ResNet-18 trained at about 47 images/s on 2 CPU cores,
# too slow to also finetune every demo job; test_resnet trains at about 330 images/s, so the
# references get ~3x the steps of the old 8-epoch ResNet-18 recipe in less time. Measured in a
# cold `ctbench run` (2 cores, torch 2.14.1):
# - CT, the 960-slice phantom corpus: 16 epochs x 15 steps, 89 s;
# - natural, the 600-crop corpus: 24 epochs x 9 steps, 67 s.
DEMO_RECIPES = {"ct": Recipe(arch="test_resnet", epochs=16), "natural": Recipe(arch="test_resnet", epochs=24)}
DEMO_RECIPE = DEMO_RECIPES["ct"]
