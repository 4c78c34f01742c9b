"""The typed contracts every arrow of the pipeline passes along.

They are pydantic models with ``extra="forbid"`` so that a typo in a plugin or a
sidecar file is an error instead of a silently ignored field (MTEB's lesson).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from benchmark.core.hashing import canonical_hash

Domain = Literal["ct", "mri", "xray", "natural"]
TaskKind = Literal["classification", "multilabel", "segmentation"]
PretrainingDomain = Literal["ct", "natural", "none", "mixed"]
CheckpointFormat = Literal[
    "timm", "safetensors", "torchvision", "solo-learn", "lightly", "study", "radimagenet", "radiologynet"
]
Profile = Literal["demo", "paper"]
# The references every checkpoint is compared with on the leaderboard (Welch's t-test and relative
# difference, as the study reported them): the natural-image (ImageNet-side) and the random-init one.
BaselineRole = Literal["natural", "random"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]

# What a run evaluates unless told otherwise: linear evaluation and finetuning for
# classification, their segmentation counterparts for segmentation (a protocol skips the
# task kinds it cannot evaluate).
DEFAULT_PROTOCOLS = ("linear", "finetune", "seg-linear", "seg-finetune")
DEFAULT_SEEDS = (42, 1, 2, 3)

# Names end up in file paths and HTML ids, so they are restricted to a safe alphabet.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,79}$"
# A task version: results only rank against results of the same version.
VERSION_PATTERN = r"^\d+(\.\d+)*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_Strict):
    """A CT display window in Hounsfield units; each window becomes one input channel."""

    center: float
    width: float = Field(gt=0)

    @property
    def bounds(self) -> tuple[float, float]:
        return self.center - self.width / 2, self.center + self.width / 2


class Preprocessing(_Strict):
    """How a slice becomes a network input; part of every feature-cache key."""

    windows: list[Window] = Field(default_factory=list, description="HU windows, one channel each; empty = min-max")
    channels: int = Field(3, ge=1, le=3)
    size: int = Field(64, ge=8, le=1024)
    neighbours: int = Field(0, ge=0, le=1, description="2.5-D: slices k-1, k, k+1 as the three channels "
                            "(volume readers stack them; one window applies to all)")
    spacing_mm: Optional[float] = Field(None, gt=0, description="resample slices to this in-plane spacing, "
                                        "then crop or pad to size (None: resize the whole slice)")

    @model_validator(mode="after")
    def _windows_fit_channels(self) -> "Preprocessing":
        if len(self.windows) > self.channels:
            raise ValueError(f"{len(self.windows)} windows do not fit in {self.channels} channels")
        if self.neighbours and len(self.windows) > 1:
            raise ValueError("2.5-D input (neighbours) takes at most one window: the channels are the slices")
        return self

    def key(self) -> str:
        return canonical_hash(self.model_dump(mode="json"))[:16]


class TrainingRecipe(_Strict):
    """How a protocol that trains (finetune, seg-linear, seg-finetune) trains, in the study's terms.

    The ``paper`` profile uses a task's recipe as written; ``demo`` shrinks it to a CPU budget
    (see profiles.py). Every field is recorded in each result's hyperparameters.
    """

    optimizer: Literal["adamw", "lars", "sgd"] = "adamw"
    lr: float = Field(5e-4, gt=0)
    weight_decay: float = Field(1e-6, ge=0)
    batch_size: int = Field(128, ge=1)
    epochs: int = Field(50, ge=1)
    schedule: Literal["exponential", "step"] = "exponential"
    decay: float = Field(0.97, gt=0, le=1, description="per-epoch factor (exponential) or per step_size epochs")
    step_size: int = Field(10, ge=1, description="epochs between decays of the step schedule")
    class_weights: Optional[list[float]] = Field(None, description="cross-entropy weights, one per class")
    dice_loss: bool = Field(False, description="segmentation: add a Dice loss to the cross-entropy")
    selection: Literal["val", "last"] = Field("last", description="best epoch on the in-budget validation "
                                               "split, or the last epoch as the study did")
    max_steps: Optional[int] = Field(None, ge=1, description="stop after this many optimizer steps (demo budget)")


class TaskSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    version: str = Field(pattern=VERSION_PATTERN)
    description: str = ""
    license: str = Field("", description="the data's licence or terms of use, as its publisher states them")
    reference: str = Field("", description="where the data is described and downloaded (an http(s) URL)")
    citation: str = Field("", description="the dataset paper to cite: authors, title, venue, year")
    domain: Domain
    kind: TaskKind
    class_names: list[str] = Field(min_length=1)
    metrics: list[str] = Field(min_length=1)
    main_metric: str
    higher_is_better: bool = True
    default_scales: list[float] = Field(default_factory=lambda: [1.0, 0.1, 0.01])
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    data_layout: str = Field("", description="the expected on-disk layout, shown to users")
    embedded: bool = Field(False, description="data is generated by ctbench itself (no download)")
    training: TrainingRecipe = Field(default_factory=TrainingRecipe,
                                     description="the paper-profile recipe of the training protocols")
    regions: dict[str, list[int]] = Field(default_factory=dict, description="segmentation: Dice also over unions "
                                          "of class indices, e.g. BraTS's WT = [1, 2, 3]; dice_mean then averages them")

    @model_validator(mode="before")
    @classmethod
    def _drop_reader(cls, data):
        """``reader`` named a reader that nothing ever looked up; old plugins still pass it."""
        if isinstance(data, dict) and "reader" in data:
            import warnings

            warnings.warn("TaskSpec(reader=...) is deprecated and ignored: a task reads its data in Task.read",
                          DeprecationWarning, stacklevel=2)
            data = {k: v for k, v in data.items() if k != "reader"}
        return data

    @field_validator("reference")
    @classmethod
    def _reference_is_a_url(cls, reference: str) -> str:
        import re

        if reference and not re.fullmatch(r"https?://[^\s<>\"']+", reference):
            raise ValueError(f"reference {reference!r} is not an http(s) URL")
        return reference

    @model_validator(mode="after")
    def _main_metric_is_listed(self) -> "TaskSpec":
        if self.main_metric not in self.metrics:
            raise ValueError(f"main_metric {self.main_metric!r} is not in metrics {self.metrics}")
        return self

    @model_validator(mode="after")
    def _regions_name_classes(self) -> "TaskSpec":
        for region, members in self.regions.items():
            if not members or not all(0 < m < len(self.class_names) for m in members):
                raise ValueError(f"region {region!r} must list foreground class indices, got {members}")
        return self

    @model_validator(mode="after")
    def _class_weights_fit(self) -> "TaskSpec":
        weights = self.training.class_weights
        if weights is not None and len(weights) != len(self.class_names):
            raise ValueError(f"{len(weights)} class weights for {len(self.class_names)} classes")
        return self

    @field_validator("default_scales")
    @classmethod
    def _scales_are_fractions(cls, scales: list[float]) -> list[float]:
        return [validate_scale(s) for s in scales]


def validate_scale(scale: float) -> float:
    if not 0 < scale <= 1:
        raise ValueError(f"data scale {scale} is not a fraction in (0, 1]")
    return float(scale)


class InputConvention(_Strict):
    """What the pretraining fed the network; recorded so results can be compared fairly."""

    channels: int = Field(3, ge=1, le=3)
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)


class CheckpointSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    arch: str = Field(description="a timm model name")
    weights: Optional[Path] = None
    sha256: Optional[str] = Field(None, pattern=r"^[0-9a-f]{64}$")
    format: CheckpointFormat = "timm"
    pretraining_domain: PretrainingDomain
    method: str = ""
    data: str = ""
    input: InputConvention = Field(default_factory=InputConvention)
    demo: bool = False
    description: str = ""
    baseline_role: Optional[BaselineRole] = Field(None, description="the leaderboard reference this checkpoint "
                                                  "plays; None for every submission")


class RunSpec(_Strict):
    """Everything a job's result depends on besides the code: the grid and where data lives."""

    checkpoints: list[str]
    tasks: list[str]
    protocols: list[str] = Field(default_factory=lambda: list(DEFAULT_PROTOCOLS))
    scales: Optional[list[float]] = Field(None, description="None = each task's default scales")
    seeds: list[int] = Field(default_factory=lambda: list(DEFAULT_SEEDS))
    profile: Profile = "demo"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Precision = Field("auto", description="auto = bf16 autocast on CUDA where supported, fp32 on CPU")
    compile: bool = Field(False, description="torch.compile the models that train")
    data_roots: dict[str, Path] = Field(default_factory=dict)
    weights: dict[str, Path] = Field(default_factory=dict, description="local weight files for named checkpoints")
    allow_download: bool = Field(False, description="let the ImageNet baseline fetch its weights from the hub")

    @field_validator("scales")
    @classmethod
    def _scales_are_fractions(cls, scales: Optional[list[float]]) -> Optional[list[float]]:
        return None if scales is None else [validate_scale(s) for s in scales]
