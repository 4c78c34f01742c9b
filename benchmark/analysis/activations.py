"""What each ResNet stage of a backbone computes on a set of slices, kept small enough to compare.

A stage's output (n, C, H, W) is average-pooled to a POOL_GRID x POOL_GRID grid and flattened
channel-major, so column ``c * POOL_GRID**2 + k`` is channel c at grid cell k: a coarse layout
survives (global pooling would drop it) while a ResNet-50 layer4 stays at 8192 columns.
Forward hooks read the stages, so the backbone's own forward, and anything wrapping it, is untouched.
"""
from __future__ import annotations

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


def stage_modules(model: nn.Module, stages: tuple[str, ...] = STAGES) -> dict[str, nn.Module]:
    modules = dict(model.named_modules())
    missing = [s for s in stages if s not in modules]
    if missing:
        raise ConfigError(f"the analysis needs a ResNet backbone with stages {', '.join(stages)}; "
                          f"{type(model).__name__} has no {', '.join(missing)}")
    return {s: modules[s] for s in stages}


def pool(output: torch.Tensor) -> np.ndarray:
    return F.adaptive_avg_pool2d(output.float(), POOL_GRID).flatten(1).cpu().numpy()


@torch.inference_mode()
def stage_activations(model: nn.Module, images: np.ndarray, checkpoint: CheckpointSpec | InputPipeline,
                      accel: Accelerator,
                      batch_size: int, rows: np.ndarray | None = None,
                      stages: tuple[str, ...] = STAGES) -> dict[str, np.ndarray]:
    """{stage: (n, C * POOL_GRID**2) float32} for ``images[rows]`` (all rows by default), read a
    batch at a time from a memory-mapped slice array; the model in eval mode (BatchNorm on its
    running statistics). ``checkpoint``: its convention on slices already in [0, 1], or the pipeline
    that feeds it the cached rows in its convention."""
    to_input = checkpoint if isinstance(checkpoint, InputPipeline) else (lambda b: to_model_input(b, checkpoint))
    rows = np.arange(len(images)) if rows is None else rows
    model = model.to(accel.device).eval()
    captured: dict[str, list[np.ndarray]] = {s: [] for s in stages}
    handles = [module.register_forward_hook(lambda _m, _i, out, s=stage: captured[s].append(pool(out)))
               for stage, module in stage_modules(model, stages).items()]
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
    any fixed partition, and need no random seed.
    """
    n, columns = activations.shape
    per_channel = activations.reshape(n, columns // POOL_GRID ** 2, POOL_GRID ** 2)
    return [block.reshape(n, -1) for block in np.array_split(per_channel, groups, axis=1)]
