"""Which parameters an optimiser trains, and at what rate: one rate for all, or layer-wise decay.

Layer-wise learning-rate decay (BEiT, MAE, DINOv2 finetuning) trains block k of n at
``lr * decay**(n - k)``: early blocks, which hold the most general features, move least. The
grouping of a backbone into blocks is timm's (``group_matcher`` via
``timm.optim.param_groups_layer_decay``), so every timm family is split as its authors split it;
parameters outside the backbone (the new head, a segmentation decoder) train at the full rate.
As in those recipes, biases, norms, position embeddings and class tokens get no weight decay.
"""
from __future__ import annotations

import logging

from torch import nn

from benchmark.core.specs import TrainingRecipe

log = logging.getLogger(__name__)


def param_groups(model: nn.Module, recipe: TrainingRecipe) -> list:
    """The trainable parameters, as one list or as layer-decayed groups, each with its own ``lr``."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if recipe.layer_decay is None or not trainable:
        return trainable
    backbone = timm_backbone(model)
    if backbone is None:
        log.warning("layer_decay %s ignored: no timm backbone with a group_matcher in %s", recipe.layer_decay,
                    type(model).__name__)
        return trainable
    from timm.optim import param_groups_layer_decay

    groups = param_groups_layer_decay(backbone, weight_decay=recipe.weight_decay, layer_decay=recipe.layer_decay,
                                      no_weight_decay_list=_no_weight_decay(backbone))
    for group in groups:
        group["lr"] = recipe.lr * group.pop("lr_scale")
        group.pop("use_fallback", None)
    grouped = {id(p) for group in groups for p in group["params"]}
    rest = [p for p in trainable if id(p) not in grouped]
    return [group for group in groups if group["params"]] + ([{"params": rest, "lr": recipe.lr}] if rest else [])


def timm_backbone(model: nn.Module) -> nn.Module | None:
    """The first module (the model itself included) that timm can split into layers."""
    return next((m for m in model.modules() if callable(getattr(m, "group_matcher", None))), None)


def _no_weight_decay(backbone: nn.Module) -> tuple[str, ...]:
    """Position embeddings and class tokens, as timm's ``no_weight_decay`` names them."""
    names = getattr(backbone, "no_weight_decay", None)
    return tuple(names()) if callable(names) else ()

