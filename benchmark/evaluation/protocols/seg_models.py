"""The segmentation networks of ``seg-linear`` and ``seg-finetune``, and the checkpoint's weights in their encoder.

Which decoder: a backbone whose timm ``feature_info`` lists several features, all at one
reduction (a single-stride token model: ViT, DeiT, DINOv2, EVA, BEiT, MLP-Mixer...), gets
segmentation-models-pytorch's DPT, which reads its tokens at four evenly spaced depths
(smp's choice of blocks); every other backbone (ResNet, ConvNeXt, EfficientNet, DenseNet,
Swin...) a U-Net on its feature pyramid. Both encoders are timm's ``tu-<arch>``, built with
the backbone's own constructor arguments (``model.ctbench_build``).

The weights: every encoder key is filled from exactly one backbone key, its own name, or the
name timm's ``features_only`` wrappers give it (``FeatureListNet`` joins a top-level
Sequential's children with ``_``: ``stem.0`` -> ``stem_0``; ``FeatureGetterNet`` nests the
model under ``model.``), with the same shape; otherwise the job fails. Backbone keys the
encoder has no place for (a classifier's norm, EfficientNet's head convolution, a ViT's final
norm, which DPT does not read) are counted and named in the record.

DPT and patch sizes: smp's decoder resamples the token grid by ``stride / 4 ... stride / 32``,
exact only for a power-of-two stride and a grid the 1/32 level halves evenly. The input is
zero-padded right and bottom (as timm's ``dynamic_img_pad`` pads) to such a grid, and a
stride that is no power of two (DINOv2's 14 px patch) is decoded as if it were 16, the
logits resized to the padded input; the output is cropped back to the input's size.
"""
from __future__ import annotations

import math

import segmentation_models_pytorch as smp
import torch
from segmentation_models_pytorch.base import initialization
from segmentation_models_pytorch.decoders.dpt.decoder import DPTDecoder
from torch import nn
from torch.nn import functional as F

from benchmark.core.errors import JobError


def build(backbone: nn.Module, arch: str, in_channels: int, n_classes: int, decoder_channels: tuple[int, ...],
          dpt_features: int = 256) -> tuple[nn.Module, dict]:
    """The segmentation network with the backbone's weights in its encoder, and what to record of it."""
    built = getattr(backbone, "ctbench_build", None) or {"arch": arch, "kwargs": {}}
    arch, kwargs = built["arch"], dict(built["kwargs"])
    stride = token_stride(backbone)
    try:
        if stride is None:
            model = smp.Unet(encoder_name=f"tu-{arch}", encoder_weights=None, in_channels=in_channels,
                             classes=n_classes, decoder_channels=decoder_channels, **kwargs)
            record = {"decoder": "smp.Unet", "decoder_channels": list(decoder_channels),
                      "feature_reductions": list(model.encoder.model.feature_info.reduction())}
        else:
            model, record = _dpt(backbone, arch, kwargs, built.get("img_size"), stride, in_channels, n_classes,
                                 dpt_features)
    except (RuntimeError, ValueError, KeyError, AttributeError, TypeError, AssertionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise JobError(f"architecture {arch} gives no segmentation encoder ({reason})") from None
    unused = load_encoder(model.encoder.model, backbone.state_dict(), f"the {record['decoder']} encoder of {arch}")
    return model, {"decoder": record.pop("decoder"), "encoder": f"tu-{arch}", "encoder_kwargs": _plain(kwargs),
                   **record, "unused_backbone_keys": len(unused),
                   "unused_backbone_modules": sorted({key.rsplit(".", 1)[0] for key in unused})}


def token_stride(backbone: nn.Module) -> int | None:
    """The one reduction of a single-stride token model; None for a feature pyramid (or no feature_info)."""
    info = getattr(backbone, "feature_info", None)
    if not isinstance(info, (list, tuple)) or len(info) < 2:
        return None
    reductions = {int(feature["reduction"]) for feature in info}
    return reductions.pop() if len(reductions) == 1 else None


def encoder_key_map(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], what: str) -> dict[str, str]:
    """target key -> source key, every target key filled by exactly one source key of its shape."""
    prefix = "model." if all(k.startswith("model.") for k in target) and "model" not in _roots(source) else ""
    by_name: dict[str, list[str]] = {}
    for key in source:
        for name in {key, _flattened(key)}:
            by_name.setdefault(name, []).append(key)
    mapping, unfilled = {}, []
    for key, tensor in target.items():
        name = key.removeprefix(prefix)
        exact = [name] if name in source else by_name.get(name, [])
        if len(exact) == 1 and source[exact[0]].shape == tensor.shape:
            mapping[key] = exact[0]
        else:
            unfilled.append(key if len(exact) != 1 else f"{key} {tuple(tensor.shape)} vs "
                            f"{exact[0]} {tuple(source[exact[0]].shape)}")
    if unfilled:
        raise JobError(f"{what} has {len(unfilled)} keys the checkpoint does not fill, e.g. {unfilled[:3]} "
                       f"(checkpoint keys e.g. {list(source)[:3]})")
    return mapping


def load_encoder(encoder: nn.Module, source: dict[str, torch.Tensor], what: str) -> list[str]:
    """Fill every key of ``encoder`` from ``source`` (strictly); the source keys left unused."""
    mapping = encoder_key_map(source, encoder.state_dict(), what)
    encoder.load_state_dict({key: source[name] for key, name in mapping.items()}, strict=True)
    used = set(mapping.values())
    return [key for key in source if key not in used]


def _flattened(key: str) -> str:
    """timm's features_only name: a top-level Sequential's children joined to it with ``_``."""
    return key.replace(".", "_", 1) if key.count(".") > 1 else key


def _roots(state: dict) -> set[str]:
    return {key.split(".", 1)[0] for key in state}


def _plain(kwargs: dict) -> dict:
    return {k: v if isinstance(v, (int, float, str, bool, type(None), list, tuple)) else repr(v)
            for k, v in kwargs.items()}


# ---------------------------------------------------------------------------------------------- DPT


def _dpt(backbone: nn.Module, arch: str, kwargs: dict, img_size: int | None, stride: int, in_channels: int,
         n_classes: int, features: int) -> tuple[nn.Module, dict]:
    if not hasattr(backbone, "forward_intermediates"):
        raise ValueError("a single-stride model without timm's forward_intermediates, which DPT reads")
    decoder_stride = stride if stride & (stride - 1) == 0 else 16  # a power of two, or decoded as 16
    multiple = stride * max(1, 32 // decoder_stride)  # the 1/32 level halves the grid evenly
    built = kwargs.get("img_size")
    padded = math.ceil(img_size / multiple) * multiple if img_size else None
    if padded is not None and padded != built and not kwargs.get("dynamic_img_size"):
        if not hasattr(backbone, "dynamic_img_size"):
            raise ValueError(f"{img_size} px needs a {padded} px token grid, and {arch} has no dynamic_img_size")
        kwargs["dynamic_img_size"] = True  # the position embedding resampled to the padded grid
    arch, kwargs = bound_arch(arch, kwargs)
    depth = min(4, len(backbone.feature_info))
    readout = "cat" if getattr(backbone, "num_prefix_tokens", 0) else "ignore"
    model = TokenDPT(stride, decoder_stride, multiple, encoder_name=f"tu-{arch}", encoder_weights=None,
                     encoder_depth=depth, decoder_readout=readout,
                     decoder_intermediate_channels=(features, 2 * features, 4 * features, 4 * features)[:depth],
                     decoder_fusion_channels=features, in_channels=in_channels, classes=n_classes,
                     num_classes=0, **kwargs)
    model.encoder.model.prune_intermediate_layers(model.encoder._output_indices, prune_norm=True, prune_head=True)
    return model, {"decoder": "smp.DPT", "block_indices": list(model.encoder._output_indices),
                   "decoder_readout": readout, "dpt_features": features, "token_stride": stride,
                   "decoder_stride": decoder_stride, "input_padded_to_multiple_of": multiple}


#: smp's own encoder arguments: a timm argument of the same name (a ViT's ``depth``) cannot pass through them
SMP_ENCODER_ARGS = ("depth", "output_indices", "output_stride", "in_channels", "pretrained")


def bound_arch(arch: str, kwargs: dict) -> tuple[str, dict]:
    """A timm name that builds ``arch`` with the kwargs smp would take as its own (a transformers
    checkpoint's ``depth``) already bound, registered with timm once; and the other kwargs."""
    import timm
    from timm.models import register_model

    from benchmark.core.hashing import canonical_hash

    bound = {k: kwargs[k] for k in SMP_ENCODER_ARGS if k in kwargs}
    if not bound:
        return arch, kwargs
    name = f"ctbench_{arch}_{canonical_hash(_plain(bound))[:10]}"
    if not timm.models.is_model(name):
        def entrypoint(pretrained: bool = False, **more):
            return timm.create_model(arch, pretrained=pretrained, **bound, **more)

        entrypoint.__name__ = name
        entrypoint.__module__ = timm.models.model_entrypoint(arch).__module__
        register_model(entrypoint)
    return name, {k: v for k, v in kwargs.items() if k not in bound}


class TokenDPT(smp.DPT):
    """smp's DPT, fed an input padded to a grid its decoder resamples exactly, its output cropped back."""

    def __init__(self, stride: int, decoder_stride: int, multiple: int, **kwargs):
        super().__init__(**kwargs)
        self.stride, self.decoder_stride, self.multiple = stride, decoder_stride, multiple
        if decoder_stride != stride:  # smp's decoder, sized for a power-of-two stride
            self.decoder = DPTDecoder(
                encoder_out_channels=self.encoder.out_channels,
                encoder_output_strides=[decoder_stride] * len(self.encoder.out_channels),
                encoder_has_prefix_tokens=self.encoder.has_prefix_tokens,
                readout=kwargs["decoder_readout"], intermediate_channels=kwargs["decoder_intermediate_channels"],
                fusion_channels=kwargs["decoder_fusion_channels"])
            initialization.initialize_decoder(self.decoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = F.pad(x, (0, -width % self.multiple, 0, -height % self.multiple))
        logits = super().forward(x)
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits[..., :height, :width]
