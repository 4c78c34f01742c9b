"""What each stage of a backbone computes on a set of slices, kept small enough to compare.

A stage's output is brought to (n, C, H, W) and average-pooled to a POOL_GRID x POOL_GRID grid,
then flattened channel-major, so column ``c * POOL_GRID**2 + k`` is channel c at grid cell k: a
coarse layout survives (global pooling would drop it) while a ResNet-50 layer4 stays at 8192 columns.
Forward hooks read the stages, so the backbone's own forward, and anything wrapping it, is untouched.

What a stage is depends on the architecture (:func:`stage_layout`), tried in this order:

- a ResNet (modules ``layer1`` .. ``layer4``): those four, named as they are;
- a hierarchical timm network (ConvNeXt ``stages.N``, EfficientNet ``blocks.N``, DenseNet
  ``features.denseblockN``, Swin ``layers.N``, ...): from timm's ``feature_info``, the last module
  of each reduction level, the deepest MAX_STAGES levels (the stride-2 stem level is dropped, as
  a ResNet's ``act1`` is); named ``stage1`` ..;
- a plain transformer (ViT, DeiT, DINOv2, BEiT, EVA: ``blocks`` of equal stride, which is how their
  ``feature_info`` reads): MAX_STAGES groups of consecutive blocks (``np.array_split`` of the block
  indices), a group's output being its last block's; named ``stage1`` ...

Token outputs (n, T, D) lose their prefix tokens (class, distillation, register tokens:
``num_prefix_tokens``) and are laid out on the patch grid, the one ``patch_embed`` produced for
this input (padded up to the patch under timm's ``dynamic_img_pad``); NHWC outputs (Swin) are
permuted. A transformer's "channels" are then its embedding dimensions.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.core.errors import ConfigError
from benchmark.core.specs import CheckpointSpec
from benchmark.evaluation.accel import Accelerator, batches
from benchmark.evaluation.inputs import InputPipeline, to_model_input

STAGES = ("layer1", "layer2", "layer3", "layer4")  # timm's ResNet stages (test_resnet and resnet50 alike)
POOL_GRID = 2
MAX_STAGES = 4  # stages of any other network: as many as a ResNet has, so the plots line up

RESNET, HIERARCHICAL, PLAIN = "resnet", "hierarchical", "plain transformer"
NCHW, NHWC, TOKENS = "NCHW", "NHWC", "tokens"


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str  # "layer1" on a ResNet, "stage1" elsewhere
    module: str  # the hooked module: its output is the stage's
    covers: tuple[str, ...]  # the modules run since the previous stage's output, ``module`` last
    layout: str  # NCHW, NHWC or TOKENS

    def describe(self) -> dict:
        return {"module": self.module, "covers": list(self.covers), "layout": self.layout}


@dataclasses.dataclass(frozen=True)
class StageLayout:
    """Where a backbone's stages are, and how their outputs are laid out."""
    arch: str
    family: str  # RESNET, HIERARCHICAL or PLAIN
    stages: tuple[Stage, ...]
    prefix_tokens: int = 0  # leading tokens of a token output that are not patches

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    def renamed(self, names: Sequence[str]) -> StageLayout:
        return dataclasses.replace(self, stages=tuple(dataclasses.replace(s, name=n)
                                                      for s, n in zip(self.stages, names, strict=True)))

    def describe(self) -> dict:
        """For the report: which modules (blocks) each stage reads and covers."""
        return {"arch": self.arch, "family": self.family, "stages": {s.name: s.describe() for s in self.stages}}


def architecture(model: nn.Module) -> str:
    build = getattr(model, "ctbench_build", None) or {}
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return str(build.get("arch") or cfg.get("architecture") or type(model).__name__)


def stage_layout(model: nn.Module) -> StageLayout:
    """The stages of ``model``, found as the module docstring says; a ConfigError if it has none
    of those layouts."""
    arch = architecture(model)
    modules = dict(model.named_modules())
    if all(s in modules for s in STAGES):
        return StageLayout(arch, RESNET, tuple(Stage(s, s, (s,), NCHW) for s in STAGES))
    levels = _feature_levels(model, modules)
    if not levels and _has_blocks(model):
        levels = [(f"blocks.{i}", None) for i in range(len(model.blocks))]
    if not levels:
        raise ConfigError(f"cannot find the stages of {arch} for the analysis: looked for a ResNet's "
                          f"{', '.join(STAGES)}, timm's feature_info and a transformer's patch_embed and blocks; "
                          f"{type(model).__name__} has none of them")
    if len({r for _, r in levels}) == 1:
        return _plain(model, arch, [m for m, _ in levels])
    return _hierarchical(model, arch, levels)


def _feature_levels(model: nn.Module, modules: dict[str, nn.Module]) -> list[tuple[str, int | None]]:
    """(module, reduction) of each timm feature_info entry, in forward order; [] without one."""
    info = getattr(model, "feature_info", None)
    if info is None:
        return []
    entries = info.get_dicts() if hasattr(info, "get_dicts") else info
    try:
        levels = [(str(e["module"]), e.get("reduction")) for e in entries]
    except (TypeError, KeyError):
        return []
    missing = [m for m, _ in levels if m not in modules]
    if missing:
        raise ConfigError(f"cannot find the stages of {architecture(model)} for the analysis: its timm "
                          f"feature_info names {', '.join(missing)}, which the model has no module for")
    return levels


def _has_blocks(model: nn.Module) -> bool:
    blocks = getattr(model, "blocks", None)
    return isinstance(blocks, (nn.Sequential, nn.ModuleList)) and len(blocks) > 0 and hasattr(model, "patch_embed")


def _plain(model: nn.Module, arch: str, blocks: list[str]) -> StageLayout:
    groups = np.array_split(np.arange(len(blocks)), min(MAX_STAGES, len(blocks)))
    stages = tuple(Stage(f"stage{k + 1}", blocks[g[-1]], tuple(blocks[i] for i in g), TOKENS)
                   for k, g in enumerate(groups))
    return StageLayout(arch, PLAIN, stages, int(getattr(model, "num_prefix_tokens", 0) or 0))


def _hierarchical(model: nn.Module, arch: str, levels: list[tuple[str, int | None]]) -> StageLayout:
    """The last module at each reduction, the deepest MAX_STAGES of them."""
    ends = [i for i, (_, r) in enumerate(levels) if i + 1 == len(levels) or levels[i + 1][1] != r]
    layout = NHWC if getattr(model, "output_fmt", NCHW) == NHWC else NCHW
    stages = []
    for k, i in enumerate(ends[-MAX_STAGES:]):
        before = ends[ends.index(i) - 1] if ends.index(i) > 0 else None
        covers = _covers(model, levels[before][0] if before is not None else None, levels[i][0])
        stages.append(Stage(f"stage{k + 1}", levels[i][0], covers, layout))
    return StageLayout(arch, HIERARCHICAL, tuple(stages))


def _covers(model: nn.Module, previous: str | None, current: str) -> tuple[str, ...]:
    """The siblings of ``current`` after ``previous`` up to ``current``; ``current`` alone when they
    have different parents (a ResNet-like stem) or there is no previous stage."""
    parent, _, leaf = current.rpartition(".")
    before_parent, _, before_leaf = (previous or "").rpartition(".")
    if previous is None or before_parent != parent:
        return (current,)
    children = [name for name, _ in (model.get_submodule(parent) if parent else model).named_children()]
    if before_leaf not in children or leaf not in children:
        return (current,)
    prefix = f"{parent}." if parent else ""
    return tuple(prefix + c for c in children[children.index(before_leaf) + 1:children.index(leaf) + 1])


def shared_names(layouts: dict[str, StageLayout]) -> dict[str, StageLayout]:
    """The layouts with stage names every checkpoint shares: as they are when they agree (all
    ResNets keep layer1 ..), else stage1 .. by position. A ConfigError when the stage counts differ:
    CKA compares checkpoints stage by stage."""
    if len({layout.names for layout in layouts.values()}) <= 1:
        return layouts
    counts = {name: len(layout.stages) for name, layout in layouts.items()}
    if len(set(counts.values())) > 1:
        raise ConfigError("the checkpoints have different numbers of stages ("
                          + ", ".join(f"{n}: {c}" for n, c in counts.items())
                          + "); the analysis compares them stage by stage")
    names = [f"stage{k + 1}" for k in range(next(iter(counts.values())))]
    return {name: layout.renamed(names) for name, layout in layouts.items()}


def stage_modules(model: nn.Module, stages: tuple[str, ...] | StageLayout = STAGES) -> dict[str, nn.Module]:
    """{stage: module}; ``stages`` as names of modules (read as NCHW) or a layout."""
    modules = dict(model.named_modules())
    if isinstance(stages, StageLayout):
        return {s.name: modules[s.module] for s in stages.stages}
    missing = [s for s in stages if s not in modules]
    if missing:
        raise ConfigError(f"the analysis needs a ResNet backbone with stages {', '.join(stages)}; "
                          f"{type(model).__name__} has no {', '.join(missing)}")
    return {s: modules[s] for s in stages}


def pool(output: torch.Tensor) -> np.ndarray:
    return F.adaptive_avg_pool2d(output.float(), POOL_GRID).flatten(1).cpu().numpy()


class _Reader:
    """Turns each hooked stage output into (n, C, H, W); for tokens, onto the grid ``patch_embed``
    last produced."""

    def __init__(self, model: nn.Module, layout: StageLayout):
        self.layout, self.grid = layout, None
        embed = getattr(model, "patch_embed", None)
        self.fixed = tuple(int(v) for v in getattr(embed, "grid_size", None) or ()) or None

    def patches(self, _module, _inputs, output) -> None:
        """A dynamic-size patch embedding hands the blocks NHWC, whose H, W is this input's grid."""
        self.grid = tuple(output.shape[1:3]) if output.ndim == 4 else self.fixed

    def nchw(self, stage: Stage, output) -> torch.Tensor:
        output = output[0] if isinstance(output, (tuple, list)) else output
        expected = 3 if stage.layout == TOKENS else 4
        if not isinstance(output, torch.Tensor) or output.ndim != expected:
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise ConfigError(f"stage {stage.name} ({stage.module}) of {self.layout.arch} gave {shape}, "
                              f"not the {stage.layout} output the analysis reads")
        if stage.layout == NHWC:
            return output.permute(0, 3, 1, 2)
        if stage.layout == NCHW:
            return output
        patches = output[:, self.layout.prefix_tokens:]
        h, w = self._grid(stage, patches.shape[1])
        return patches.reshape(len(patches), h, w, patches.shape[2]).permute(0, 3, 1, 2)

    def _grid(self, stage: Stage, tokens: int) -> tuple[int, int]:
        if self.grid is not None and self.grid[0] * self.grid[1] == tokens:
            return self.grid
        side = math.isqrt(tokens)
        if side * side != tokens:
            raise ConfigError(f"stage {stage.name} ({stage.module}) of {self.layout.arch} has {tokens} patch "
                              "tokens, which lie on no grid the analysis can tell")
        return side, side


@torch.inference_mode()
def stage_activations(model: nn.Module, images: np.ndarray, checkpoint: CheckpointSpec | InputPipeline,
                      accel: Accelerator, batch_size: int, rows: np.ndarray | None = None,
                      stages: tuple[str, ...] | StageLayout | None = None) -> dict[str, np.ndarray]:
    """{stage: (n, C * POOL_GRID**2) float32} for ``images[rows]`` (all rows by default), read a
    batch at a time from a memory-mapped slice array; the model in eval mode (BatchNorm on its
    running statistics). ``checkpoint``: its convention on slices already in [0, 1], or the pipeline
    that feeds it the cached rows in its convention. ``stages``: the model's own (:func:`stage_layout`)
    by default, a layout, or names of NCHW modules."""
    to_input = checkpoint if isinstance(checkpoint, InputPipeline) else (lambda b: to_model_input(b, checkpoint))
    rows = np.arange(len(images)) if rows is None else rows
    layout = stage_layout(model) if stages is None else stages
    if not isinstance(layout, StageLayout):
        stage_modules(model, layout)  # names no module: the ResNet message
        layout = StageLayout(architecture(model), RESNET, tuple(Stage(s, s, (s,), NCHW) for s in layout))
    model = model.to(accel.device).eval()
    reader = _Reader(model, layout)
    captured: dict[str, list[np.ndarray]] = {s.name: [] for s in layout.stages}
    modules = stage_modules(model, layout)
    handles = [modules[s.name].register_forward_hook(
        lambda _m, _i, out, s=s: captured[s.name].append(pool(reader.nchw(s, out)))) for s in layout.stages]
    if any(s.layout == TOKENS for s in layout.stages) and hasattr(model, "patch_embed"):
        handles.append(model.patch_embed.register_forward_hook(reader.patches))
    try:
        for chunk in batches(len(rows), batch_size):
            with accel.autocast():
                model(accel.to_device(to_input(np.asarray(images[rows[chunk]]))))
    finally:
        for handle in handles:
            handle.remove()
    return {s: np.concatenate(chunks) for s, chunks in captured.items()}


def channel_groups(activations: np.ndarray, groups: int) -> list[np.ndarray]:
    """The columns of ``groups`` disjoint blocks of consecutive channels (np.array_split sizes).

    Channel order inside a conv layer carries no meaning, so consecutive blocks are as good as
    any fixed partition, and need no random seed. A transformer's channels are its embedding
    dimensions, whose order means as little.
    """
    n, columns = activations.shape
    per_channel = activations.reshape(n, columns // POOL_GRID ** 2, POOL_GRID ** 2)
    return [block.reshape(n, -1) for block in np.array_split(per_channel, groups, axis=1)]
