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
    "timm", "safetensors", "torchvision", "solo-learn", "lightly", "study", "radimagenet", "radiologynet",
    "transformers", "open_clip", "dinov2", "mae", "beit",
]
Profile = Literal["demo", "paper"]
# The references every checkpoint is compared with on the leaderboard (Welch's t-test and relative
# difference, as the study reported them): the natural-image (ImageNet-side) and the random-init one.
BaselineRole = Literal["natural", "random"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
BudgetUnit = Literal["patient", "slice"]

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


class Augmentation(_Strict):
    """The downstream training augmentations, each applied with probability ``p`` per sample.

    The study's per task live in ``evaluation/recipes.py``; the demo profile uses a lighter set
    (a small crop range, since torchvision's 0.08 would crop away most of a 64 px lesion).
    """

    p: float = Field(0.2, ge=0, le=1)
    crop_scale: Optional[tuple[float, float]] = Field((0.5, 1.0), description="RandomResizedCrop's area range; "
                                                      "None: no crop")
    hflip: bool = True
    jitter: Optional[tuple[float, float, float, float]] = Field(
        (0.1, 0.1, 0.1, 0.1), description="ColorJitter brightness, contrast, saturation, hue; None: no jitter")
    grayscale: bool = Field(False, description="RandomGrayscale (the study's ImageNet task)")
    blur_kernel: Optional[int] = Field(None, ge=0, description="GaussianBlur's odd kernel size; None: about 10 % "
                                       "of the side, as in SimCLR; 0: no blur")
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    sharpness: Optional[float] = Field(2.0, gt=0, description="RandomAdjustSharpness's factor; None: none")

    @field_validator("blur_kernel")
    @classmethod
    def _odd_kernel(cls, kernel: Optional[int]) -> Optional[int]:
        if kernel and kernel % 2 == 0:
            raise ValueError(f"blur kernel {kernel} must be odd")
        return kernel


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
    class_weights: Optional[list[float]] = Field(None, description="loss weights, one per class: cross-entropy's "
                                                 "class weights, or a multilabel BCE's per-label weights")
    dice_loss: bool = Field(False, description="segmentation: add a Dice loss to the cross-entropy")
    selection: Literal["val", "last"] = Field("last", description="best epoch on the in-budget validation "
                                               "split, or the last epoch as the study did")
    max_steps: Optional[int] = Field(None, ge=1, description="stop after this many optimizer steps (demo budget)")
    head_bias: bool = Field(True, description="the new linear head has a bias (the study's has none)")
    layer_decay: Optional[float] = Field(None, gt=0, le=1, description="layer-wise learning-rate decay: "
                                         "block k of n trains at lr * decay**(n - k), by timm's grouping of "
                                         "the backbone (ViT finetuning); None: one rate for all")
    augmentation: Augmentation = Field(default_factory=Augmentation)


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


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's, which open_clip and BiomedCLIP keep
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# How raw slice values become [0, 1]: the task's own display mapping (its HU windows, or its
# scaling for other modalities), a per-slice min-max over the whole slice (the study's), or the
# convention's own HU windows.
Intensity = Literal["task", "minmax", "windows"]
Interpolation = Literal["area", "bilinear", "bicubic", "nearest-exact"]
# How a network's output becomes one feature vector: the architecture's own pooling (timm's default:
# global average for CNNs, the class token for most ViTs), the class token, the mean of the patch
# tokens, or both concatenated (DINOv2's linear evaluation).
Pooling = Literal["model", "token", "avg", "token+avg"]


class InputConvention(_Strict):
    """How a checkpoint was pretrained to see its input, like timm's ``pretrained_cfg``.

    It belongs to the checkpoint, not the task: a CT checkpoint pretrained on min-max grey
    slices must not be fed ImageNet-standardised HU windows, or the leaderboard would judge it
    on another network's input. Tasks hold the data's facts (units, windows for display);
    ``intensity`` says which mapping of those raw values this checkpoint expects, per domain
    where it differs (a HU window means nothing on MRI).
    """

    name: str = Field("imagenet_rgb", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,79}$",
                      description="a preset's name, or a label of your own")
    intensity: Intensity = "task"
    windows: list[Window] = Field(default_factory=list, description="for intensity 'windows': HU windows, one "
                                  "channel each")
    intensity_by_domain: dict[Domain, Intensity] = Field(default_factory=dict, description="the mapping for "
                                                         "other domains than intensity's")
    channels: int = Field(3, ge=1, le=3)
    interpolation: Interpolation = "area"
    resize_first: bool = Field(False, description="resize the raw slice, then map intensities (the study's "
                                                  "order); False: map at full resolution, then resize")
    mean: Optional[tuple[float, ...]] = Field(IMAGENET_MEAN, description="None: no standardisation")
    std: Optional[tuple[float, ...]] = Field(IMAGENET_STD, description="None: no standardisation")
    pooling: Pooling = Field("model", description="how the backbone's output becomes one feature vector; "
                             "token pooling needs a transformer")

    @model_validator(mode="after")
    def _consistent(self) -> "InputConvention":
        if (self.mean is None) != (self.std is None):
            raise ValueError("mean and std are given together or not at all")
        if self.mean is not None and not (len(self.mean) >= self.channels and len(self.std) >= self.channels):
            raise ValueError(f"mean and std need {self.channels} values each")
        if self.std is not None and min(self.std[: self.channels]) <= 0:
            raise ValueError("std values must be positive")
        uses_windows = self.intensity == "windows" or "windows" in self.intensity_by_domain.values()
        if uses_windows and not self.windows:
            raise ValueError("intensity 'windows' needs windows")
        if len(self.windows) > self.channels:
            raise ValueError(f"{len(self.windows)} windows do not fit in {self.channels} channels")
        return self

    def intensity_for(self, domain: str) -> Intensity:
        return self.intensity_by_domain.get(domain, self.intensity)

    def key(self) -> str:
        return canonical_hash(self.model_dump(mode="json"))[:16]


_OTHER_MODALITIES_BY_TASK = {"mri": "task", "xray": "task", "natural": "task"}
#: The named conventions ``--input-convention`` and ``--force-input-convention`` take.
INPUT_CONVENTIONS: dict[str, InputConvention] = {
    # timm's and torchvision's ImageNet weights: the task's display mapping at full resolution,
    # then an area resize, then ImageNet mean/std (ctbench's convention before conventions existed).
    "imagenet_rgb": InputConvention(),
    # The study's (SimCLR on RadNet and ImageNet, and every downstream task): bilinear resize of the
    # raw slice, then min-max over the slice, grey copied to three channels, no mean/std.
    "minmax_grey3": InputConvention(name="minmax_grey3", intensity="minmax", interpolation="bilinear",
                                    resize_first=True, mean=None, std=None),
    # Three CT windows (soft tissue, lung, bone) as channels with ImageNet statistics; other
    # modalities keep their task's mapping.
    "hu_windows": InputConvention(name="hu_windows", intensity="windows",
                                  windows=[Window(center=40, width=400), Window(center=-600, width=1500),
                                           Window(center=400, width=1800)],
                                  intensity_by_domain=_OTHER_MODALITIES_BY_TASK),
    # DINOv2 (and RAD-DINO): ImageNet statistics, bicubic resize, and the class token concatenated
    # with the mean patch token, as DINOv2's own linear evaluation reads its features.
    "dinov2": InputConvention(name="dinov2", interpolation="bicubic", pooling="token+avg"),
    # CLIP towers (OpenAI CLIP, open_clip, BiomedCLIP): CLIP's own statistics, bicubic resize, the
    # class token (the embedding CLIP's projection reads).
    "clip": InputConvention(name="clip", interpolation="bicubic", pooling="token",
                            mean=CLIP_MEAN, std=CLIP_STD),
    # ViTs finetuned from MAE and BEiT are evaluated on the mean of their patch tokens (their papers'
    # linear probes and finetuning heads pool that way).
    "imagenet_rgb_avg": InputConvention(name="imagenet_rgb_avg", interpolation="bicubic", pooling="avg"),
}


def input_convention(name: str) -> InputConvention:
    try:
        return INPUT_CONVENTIONS[name]
    except KeyError:
        raise ValueError(f"unknown input convention {name!r}; known: {', '.join(INPUT_CONVENTIONS)}") from None


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
    force_input_convention: Optional[str] = Field(None, description="evaluate every checkpoint in this named "
                                                  "convention (an ablation) instead of its own")
    budget_unit: BudgetUnit = Field("patient", description="draw label budgets by patient (nested, ctbench's "
                                    "default) or by slice, redrawn per seed (the study's)")
    max_epochs: Optional[int] = Field(None, ge=1, description="cap every training recipe's epochs (a quick look "
                                      "at a profile; results record it and rank apart)")

    @field_validator("force_input_convention")
    @classmethod
    def _known_convention(cls, name: Optional[str]) -> Optional[str]:
        if name is not None:
            input_convention(name)
        return name

    @field_validator("scales")
    @classmethod
    def _scales_are_fractions(cls, scales: Optional[list[float]]) -> Optional[list[float]]:
        return None if scales is None else [validate_scale(s) for s in scales]
