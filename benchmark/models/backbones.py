"""Backbones come from timm, built without a classifier, at the size they will be fed; weights are written as safetensors.

This is the lowest model layer: checkpoint formats build their models here, and nothing here
reads a checkpoint file (that is ``benchmark.models.load``). Architectures ctbench adds to timm
(the RadImageNet ResNet50 port, ``radimagenet_resnet50``) are registered by importing their module
here, so every model is made by ``timm.create_model``.

Transformers are built for the evaluated size (``img_size``), because their absolute position
embeddings fix the token grid: a ViT built at 224 asserts on a 64 px slice. A size the patch does
not divide is padded up to the next multiple (timm's ``dynamic_img_pad``, the way DINOv2's own
segmentation evaluation pads), never silently cropped. How each model was built is kept as
``model.ctbench_build``, so a segmentation encoder can be built the same way.
"""
from __future__ import annotations

import math
from pathlib import Path

import timm
import torch
from safetensors.torch import save
from torch import nn

from benchmark.core.atomic import atomic_open
from benchmark.core.errors import CheckpointError
from benchmark.models import radimagenet_resnet  # noqa: F401 - registers radimagenet_resnet50 with timm

#: poolings that read a class token: only models with one can give them
TOKEN_POOLINGS = ("token", "token+avg")
#: constructor arguments that shape only the pooled head, not the encoder a decoder reads
POOLING_KWARGS = ("global_pool", "fc_norm")
#: timm's modules of attention-based families: they finetune with ViT recipes (evaluation/recipes.py)
TRANSFORMER_MODULES = frozenset({
    "vision_transformer", "vision_transformer_relpos", "vision_transformer_sam", "deit", "beit", "eva", "cait",
    "xcit", "swin_transformer", "swin_transformer_v2", "swin_transformer_v2_cr", "tiny_vit", "hiera", "davit",
    "pvt_v2", "mvitv2", "twins", "volo", "maxxvit", "naflexvit",
})


def create_backbone(arch: str, in_chans: int = 3, img_size: int | None = None, pooling: str = "model",
                    **overrides) -> nn.Module:
    """A timm model with its classifier removed: forward() returns pooled features.

    ``img_size`` builds size-dependent models (ViT, Swin, ...) for that input; models without the
    notion (CNNs) ignore it. ``overrides`` are further timm constructor arguments a checkpoint's own
    config fixes (a transformers ``config.json``'s depth and width, for example).
    """
    kwargs = dict(overrides)
    if pooling in ("token", "avg"):
        kwargs["global_pool"] = pooling
    if pooling == "avg" and "fc_norm" not in kwargs:
        # timm's ViT then norms after pooling (``fc_norm``), a layer no pretrained encoder file has; the mean
        # of the normed patch tokens keeps the file's ``norm`` (DINOv2's and MAE's linear probes read that)
        kwargs["fc_norm"] = False
    notes: list[str] = []
    try:
        model = _sized(arch, in_chans, img_size, kwargs, notes)
    except TypeError as exc:
        if "fc_norm" not in str(exc):
            raise CheckpointError(f"timm cannot build {arch} with {kwargs}: {exc}") from None
        del kwargs["fc_norm"]  # a family without one: its avg pooling already reads the normed tokens
        model = _sized(arch, in_chans, img_size, kwargs, notes)
    except (AssertionError, ValueError) as exc:  # timm's pool layers assert on a pool type they lack
        if pooling not in TOKEN_POOLINGS:
            raise CheckpointError(f"timm cannot build {arch} with {kwargs}: {exc}") from None
        raise CheckpointError(_no_token(arch, pooling)) from None
    _check_pooling(model, arch, pooling)
    if pooling == "token+avg":
        model.__class__ = _token_and_avg_class(type(model))
    model.ctbench_build = {"arch": arch, "kwargs": {k: v for k, v in kwargs.items() if k not in POOLING_KWARGS},
                           "img_size": img_size, "pooling": pooling, "notes": notes}
    return model


def is_transformer(arch: str) -> bool:
    """Whether timm defines ``arch`` in one of the attention-based families (unknown names: no)."""
    try:
        module = timm.models.model_entrypoint(arch).__module__
    except (RuntimeError, KeyError):
        return False
    return module.rsplit(".", 1)[-1] in TRANSFORMER_MODULES


def _sized(arch: str, in_chans: int, img_size: int | None, kwargs: dict, notes: list[str]) -> nn.Module:
    """The model at ``img_size`` if its constructor takes one, else as timm builds it."""
    if img_size is None:
        return _create(arch, in_chans, kwargs)
    try:
        model = _create(arch, in_chans, {**kwargs, "img_size": img_size})
    except TypeError as exc:
        if "img_size" not in str(exc):
            raise
        return _create(arch, in_chans, kwargs)  # a CNN: any size goes
    patch = _patch_size(model)
    if patch and img_size % patch:
        padded = math.ceil(img_size / patch) * patch
        notes.append(f"{img_size} px input padded to {padded} px, a multiple of the {patch} px patch "
                     "(timm's dynamic_img_pad)")
        kwargs.update(dynamic_img_pad=True, dynamic_img_size=True)
        model = _create(arch, in_chans, {**kwargs, "img_size": padded})
        kwargs["img_size"] = padded
    else:
        kwargs["img_size"] = img_size
    return model


def _create(arch: str, in_chans: int, kwargs: dict) -> nn.Module:
    try:
        return timm.create_model(arch, pretrained=False, num_classes=0, in_chans=in_chans, **kwargs)
    except RuntimeError as exc:
        raise CheckpointError(f"unknown timm architecture {arch!r}: {exc}") from None


def _patch_size(model: nn.Module) -> int | None:
    embed = getattr(model, "patch_embed", None)
    size = getattr(embed, "patch_size", None)
    if size is None or not hasattr(model, "pos_embed"):  # Swin and friends pad by themselves
        return None
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def has_class_token(model: nn.Module) -> bool:
    return getattr(model, "cls_token", None) is not None and getattr(model, "num_prefix_tokens", 0) > 0


def _check_pooling(model: nn.Module, arch: str, pooling: str) -> None:
    if pooling in TOKEN_POOLINGS and not has_class_token(model):
        raise CheckpointError(_no_token(arch, pooling))


def _no_token(arch: str, pooling: str) -> str:
    return f"pooling {pooling!r} reads a class token, and {arch} has none; use pooling 'avg' or 'model'"


def _token_and_avg(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
    """DINOv2's linear-evaluation feature: the (normed) class token beside the mean of the patch tokens."""
    return torch.cat([x[:, 0], x[:, self.num_prefix_tokens:].mean(1)], dim=1)


_TOKEN_AND_AVG: dict[type, type] = {}


def _token_and_avg_class(cls: type) -> type:
    """``cls`` with :func:`_token_and_avg` as its head. A subclass, not a wrapper module, so the
    state dict keeps timm's key names (the segmentation encoder and the encoder hash need them)."""
    if cls not in _TOKEN_AND_AVG:
        _TOKEN_AND_AVG[cls] = type(f"{cls.__name__}TokenAndAvg", (cls,),
                                   {"forward_head": _token_and_avg, "__module__": cls.__module__})
    return _TOKEN_AND_AVG[cls]


def save_backbone(model: nn.Module, path: Path) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(save({k: v.contiguous() for k, v in model.state_dict().items()}))
