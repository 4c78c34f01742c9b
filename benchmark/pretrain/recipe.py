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

from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from benchmark.core.errors import ConfigError

Method = Literal["simclr", "byol"]
METHODS = ("simclr", "byol")


class Recipe(BaseModel):
    """Validated when made, so a bad value fails before any training: ``with_`` and ``recipe_from``
    raise a one-line ConfigError naming it (``Recipe(...)`` itself pydantic's ValidationError).
    ``to_dict()`` is what the run key hashes and the sidecar records."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str = "simclr"
    arch: str = "resnet18"
    epochs: int = 8
    batch_size: int = 64
    image_size: int = 64
    seed: int = 0
    optimizer: Literal["adamw", "lars"] = "adamw"
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

    @field_validator("method")
    @classmethod
    def _known_method(cls, method: str) -> str:
        if method not in METHODS:
            raise ValueError(f"unknown pretraining method {method!r}; choose one of {', '.join(METHODS)}")
        return method

    @field_validator("epochs")
    @classmethod
    def _some_epochs(cls, epochs: int) -> int:
        if epochs < 1:
            raise ValueError(f"epochs must be at least 1, not {epochs}")
        return epochs

    @field_validator("batch_size")
    @classmethod
    def _pairs_to_contrast(cls, batch_size: int) -> int:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        if batch_size < 2:
            raise ValueError("batch_size must be at least 2: contrastive losses need negatives and BatchNorm a batch")
        return batch_size

    @field_validator("image_size")
    @classmethod
    def _image_size_in_range(cls, image_size: int) -> int:
        if not 8 <= image_size <= 1024:
            raise ValueError(f"image_size must be between 8 and 1024, not {image_size}")
        return image_size

    @field_validator("lr")
    @classmethod
    def _positive_lr(cls, lr: float) -> float:
        if lr <= 0:
            raise ValueError(f"lr must be positive, not {lr}")
        return lr

    def to_dict(self) -> dict:
        payload = self.model_dump()
        payload["jitter"] = list(self.jitter)
        return payload

    def with_(self, **changes) -> "Recipe":
        """This recipe with the given fields changed (None: unchanged), validated again."""
        return recipe_from({**self.model_dump(), **{k: v for k, v in changes.items() if v is not None}})


def recipe_from(fields: dict) -> Recipe:
    """A Recipe from plain fields; a bad value is a ConfigError with one line naming the field."""
    try:
        return Recipe.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "value_error":
            message = str(error["ctx"]["error"])
        elif error["type"] == "extra_forbidden":
            message = f"{where!r} is not a pretraining recipe field"
        else:
            message = f"recipe field {where}: {error['msg']}"
        raise ConfigError(message) from None


# The demo baselines' recipes (demo-ct-simclr, demo-natural-simclr): timm's test_resnet (0.4 M
# parameters) at 64 px, batch 64 pairs. ResNet-18 trained at about 47 images/s on 2 CPU cores,
# too slow to also finetune every demo job; test_resnet trains at about 330 images/s, so the
# references get ~3x the steps of the old 8-epoch ResNet-18 recipe in less time. Measured in a
# cold `ctbench run` (2 cores, torch 2.14.1):
# - CT, the 960-slice phantom corpus: 16 epochs x 15 steps, 89 s;
# - natural, the 600-crop corpus: 24 epochs x 9 steps, 67 s.
DEMO_RECIPES = {"ct": Recipe(arch="test_resnet", epochs=16), "natural": Recipe(arch="test_resnet", epochs=24)}
DEMO_RECIPE = DEMO_RECIPES["ct"]

# The study's SimCLR pretraining of its references (its configs and logs): ResNet-50 at 256 px,
# LARS at lr 4.8 (0.075 x sqrt(4096)), weight decay 1e-6, batch 4096 pairs, 100 epochs, a cosine
# schedule without warm-up, temperature 0.5, a 256-d projection, colour jitter (0.8, 0.8, 0.8, 0.2)
# at p 0.8, grayscale at p 0.2, flips at p 0.5, crops from 0.08. ``ctbench pretrain --recipe NAME``.
# The same recipe pretrained on ImageNet-1k (the study's natural reference) and on RadNet-12M.
_STUDY_SIMCLR = dict(method="simclr", arch="resnet50", epochs=100, batch_size=4096, image_size=256, optimizer="lars",
                     lr=4.8, weight_decay=1e-6, warmup_epochs=0.0, temperature=0.5, projection_dim=256, seed=42)
STUDY_RECIPES = {"study-imagenet": Recipe(**_STUDY_SIMCLR), "study-radnet": Recipe(**_STUDY_SIMCLR)}
