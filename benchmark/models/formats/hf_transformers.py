"""Hugging Face transformers: a model folder, ``config.json`` beside ``model.safetensors`` or ``pytorch_model.bin``.

Supported: ``Dinov2Model`` (``model_type`` dinov2; RAD-DINO is one), ``Dinov2WithRegistersModel``
(dinov2_with_registers) and ``ViTModel`` (vit), also inside their ``*ForImageClassification``
wrappers (keys under ``dinov2.``/``vit.``; the classifier is reported as dropped). Both are the
computation of timm's VisionTransformer under other names: transformers keeps query, key and value
as three Linear layers where timm has one ``qkv`` (concatenated here in that order), calls layer
scale ``lambda1`` where timm says ``gamma``, and DINOv2's SwiGLU ``weights_in`` is timm's packed
SwiGLU ``fc1``. Registers follow timm's DINOv2-with-registers layout: the class token's position
embedding is folded into the class token (``no_embed_class``), as timm's own ``_convert_dinov2`` does.

config.json fixes what the keys cannot (heads, image size, activation); the name is timm's
registered model of those dims (facebook/dinov2-small -> ``vit_small_patch14_dinov2``) or the family's
base name with the config's numbers as constructor arguments. Files on disk keep transformers 4's
key names (``attention.attention.query``), which transformers 5 still writes; v5's in-memory names
(``attention.q_proj``, ``layers.N``) are read too, for a state_dict saved by hand. Tests prove each
mapping against transformers' own forward pass; ctbench itself never imports transformers.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from benchmark.core.errors import CheckpointError
from benchmark.core.specs import INPUT_CONVENTIONS
from benchmark.models.formats.base import Evidence, Extracted, Format, Rule
from benchmark.models.formats.keys import split_prefix, tensor_dict, unwrap
from benchmark.models.formats.vit_common import (
    family_guard,
    fold_class_position,
    json_beside,
    mlp_ratio,
    number,
    pick,
    side,
    stats,
)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
SUPPORTED = {"dinov2": "dinov2.", "dinov2_with_registers": "dinov2_with_registers.", "vit": "vit."}
#: transformers' hidden_act -> timm's act_layer (None: timm's default GELU, the same exact erf GELU)
ACTIVATIONS = {"gelu": None, "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "quick_gelu": "quick_gelu",
               "relu": "relu", "silu": "silu", "swish": "silu"}
#: (width, depth, heads, patch, mlp hidden, swiglu) -> timm's registered model ("{reg}" for registers)
DINOV2_NAMES = {(384, 12, 6, 14, 1536, False): "vit_small_patch14{reg}_dinov2",
                (768, 12, 12, 14, 3072, False): "vit_base_patch14{reg}_dinov2",
                (1024, 24, 16, 14, 4096, False): "vit_large_patch14{reg}_dinov2",
                (1536, 40, 24, 14, 8192, True): "vit_giant_patch14{reg}_dinov2"}
VIT_NAMES = {(192, 12, 3, 16, 768): "vit_tiny_patch16_224", (384, 12, 6, 16, 1536): "vit_small_patch16_224",
             (768, 12, 12, 16, 3072): "vit_base_patch16_224", (1024, 24, 16, 16, 4096): "vit_large_patch16_224",
             (768, 12, 12, 32, 3072): "vit_base_patch32_224", (1024, 24, 16, 32, 4096): "vit_large_patch32_224",
             (1280, 32, 16, 14, 5120): "vit_huge_patch14_224"}
TIMM_EPS = 1e-6  # timm's ViT LayerNorm
# per-block names, transformers (4 on disk | 5 in memory) -> timm; query/key/value are gathered apart
BLOCK_NAMES = (
    (r"(?:norm1|layernorm_before)\.", "norm1."), (r"(?:norm2|layernorm_after)\.", "norm2."),
    (r"attention\.(?:output\.dense|o_proj)\.", "attn.proj."),
    (r"layer_scale1\.lambda1$", "ls1.gamma"), (r"layer_scale2\.lambda1$", "ls2.gamma"),
    (r"(?:mlp\.fc1|intermediate\.dense|mlp\.weights_in)\.", "mlp.fc1."),
    (r"(?:mlp\.fc2|output\.dense|mlp\.weights_out|mlp\.down_proj)\.", "mlp.fc2."),
)
TOP_NAMES = {"embeddings.cls_token": "cls_token", "embeddings.position_embeddings": "pos_embed",
             "embeddings.register_tokens": "reg_token", "embeddings.patch_embeddings.projection.weight":
             "patch_embed.proj.weight", "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
             "layernorm.weight": "norm.weight", "layernorm.bias": "norm.bias"}
DROPPED = ("embeddings.mask_token", "pooler.")
QKV = re.compile(r"attention\.(?:attention\.(query|key|value)|(q|k|v)_proj)\.(weight|bias)$")
GLU = re.compile(r"mlp\.(gate|up)_proj\.(weight|bias)$")
BLOCK = re.compile(r"(?:encoder\.layer|layers)\.(\d+)\.(.*)$")


def read_config(path: Path) -> dict:
    config = json_beside(path, "config.json")
    if config is None:
        raise CheckpointError("no config.json beside the file: a transformers checkpoint is read with its config "
                              "(pass the model's folder)", path)
    return config


def extract(obj: object, path: Path) -> Extracted:
    config = read_config(path)
    model_type = config.get("model_type")
    if model_type not in SUPPORTED:
        raise CheckpointError(f"transformers model_type {model_type!r} is not supported; ctbench maps "
                              f"{', '.join(SUPPORTED)} onto timm", path)
    state = tensor_dict(unwrap(obj), path)
    dropped: dict[str, int] = {}
    wrapper = next((p for p in (SUPPORTED[model_type], "dinov2.") if any(k.startswith(p) for k in state)), None)
    if wrapper:  # *ForImageClassification: the backbone under dinov2./vit., a classifier beside it
        state, dropped = split_prefix(state, wrapper)
    state, gone = to_timm(state)
    out = Extracted(state, dropped={**dropped, **gone}, method="dinov2" if "dinov2" in model_type else "")
    (_dinov2 if "dinov2" in model_type else _vit)(config, out, path)
    return out


def to_timm(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """transformers' names -> timm's; q/k/v (and SwiGLU's gate/up) concatenated; unknown keys kept as they are."""
    out: dict[str, torch.Tensor] = {}
    dropped: dict[str, int] = {}
    parts: dict[str, dict[str, tuple[str, torch.Tensor]]] = {}  # timm key -> {q|k|v or g|u: (file key, tensor)}
    for key, value in state.items():
        if key.startswith(DROPPED):
            top = "pooler" if key.startswith("pooler.") else key
            dropped[top] = dropped.get(top, 0) + 1
        elif key in TOP_NAMES:
            out[TOP_NAMES[key]] = value
        elif (block := BLOCK.match(key)) is None:
            out[key] = value
        elif (m := QKV.match(block.group(2))) or (m := GLU.match(block.group(2))):
            target = f"blocks.{block.group(1)}.{'attn.qkv' if m.re is QKV else 'mlp.fc1'}.{m.groups()[-1]}"
            parts.setdefault(target, {})[(m.group(1) or m.group(2))[0]] = (key, value)
        else:
            rest = block.group(2)
            renamed = next((re.sub(old, new, rest, count=1) for old, new in BLOCK_NAMES if re.match(old, rest)), rest)
            out[f"blocks.{block.group(1)}.{renamed}"] = value
    for target, found in parts.items():
        order = "qkv" if ".attn.qkv." in target else "gu"
        if set(found) == set(order) and len({tuple(found[p][1].shape[1:]) for p in order}) == 1:
            out[target] = torch.cat([found[p][1] for p in order], dim=0)
        else:  # incomplete or inconsistent: left under their own names, for the key report to list
            out.update(dict(found.values()))
    return out, dropped


def _dims(config: dict, state: dict, path: Path) -> tuple[int, int, int, int, int, int]:
    width, depth, n_heads = (config.get(k) for k in ("hidden_size", "num_hidden_layers", "num_attention_heads"))
    patch, image = side(config.get("patch_size")), side(config.get("image_size"))
    if not all(isinstance(v, int) and v > 0 for v in (width, depth, n_heads, patch, image)):
        raise CheckpointError("config.json lacks hidden_size, num_hidden_layers, num_attention_heads or a square "
                              "patch_size/image_size", path)
    fc1 = state.get("blocks.0.mlp.fc1.weight")
    hidden = int(fc1.shape[0]) if fc1 is not None and fc1.ndim == 2 else int(width * number(config.get("mlp_ratio"), 4))
    return width, depth, n_heads, patch, image, hidden


def _common(config: dict, out: Extracted, path: Path, dims: tuple) -> dict:
    width, depth, n_heads, patch, _, hidden = dims
    act = config.get("hidden_act", "gelu")
    if act not in ACTIVATIONS:
        raise CheckpointError(f"config.json hidden_act {act!r} has no timm equivalent here "
                              f"(known: {', '.join(ACTIVATIONS)})", path)
    eps = number(config.get("layer_norm_eps"), TIMM_EPS)
    if eps != TIMM_EPS:
        out.notes.append(f"config.json layer_norm_eps {eps:g}; timm's ViT normalises with {TIMM_EPS:g}, which changes "
                         f"features by about {abs(TIMM_EPS - eps) / 2:.0e} / the variance of a LayerNorm's input, "
                         "relatively (google/vit-* configs say 1e-12; their JAX originals used 1e-6)")
    kwargs = {"embed_dim": width, "depth": depth, "num_heads": n_heads, "patch_size": patch,
              "mlp_ratio": mlp_ratio(hidden, width)}
    if ACTIVATIONS[act]:
        kwargs["act_layer"] = ACTIVATIONS[act]
    if not config.get("qkv_bias", True):
        kwargs["qkv_bias"] = False
    return kwargs


def _dinov2(config: dict, out: Extracted, path: Path) -> None:
    registers = int(number(config.get("num_register_tokens"), 4)) if config["model_type"] != "dinov2" else 0
    if registers:
        fold_class_position(out.state)
    dims = _dims(config, out.state, path)
    width, depth, n_heads, patch, image, hidden = dims
    swiglu = bool(config.get("use_swiglu_ffn", False))
    kwargs = _common(config, out, path, dims)
    if swiglu:  # transformers' SwiGLU is SiLU whatever hidden_act says, as the giant family's packed SwiGLU
        kwargs.pop("act_layer", None)
    kwargs["init_values"] = number(config.get("layerscale_value"), 1.0) or 1.0
    reg = "_reg4" if registers else ""
    family = ("vit_giant_patch14{reg}_dinov2" if swiglu else "vit_base_patch14{reg}_dinov2").format(reg=reg)
    if registers and registers != 4:
        kwargs["reg_tokens"] = registers
    standard = set(kwargs) <= {"embed_dim", "depth", "num_heads", "patch_size", "mlp_ratio", "init_values"}
    known = {k: v.format(reg=reg) for k, v in DINOV2_NAMES.items()} if standard else {}
    out.arch, out.model_kwargs = pick(known, (width, depth, n_heads, patch, hidden, swiglu), family, kwargs, image)
    out.arch_source = _source(config, dims)
    out.convention = _convention(path, INPUT_CONVENTIONS["dinov2"])
    if out.convention is not INPUT_CONVENTIONS["dinov2"]:
        out.notes.append("mean/std from preprocessor_config.json beside the file")


def _vit(config: dict, out: Extracted, path: Path) -> None:
    dims = _dims(config, out.state, path)
    width, depth, n_heads, patch, image, hidden = dims
    kwargs = _common(config, out, path, dims)
    standard = set(kwargs) <= {"embed_dim", "depth", "num_heads", "patch_size", "mlp_ratio"}
    out.arch, out.model_kwargs = pick(VIT_NAMES if standard else {}, (width, depth, n_heads, patch, hidden),
                                      "vit_base_patch16_224", kwargs, image)
    out.arch_source = _source(config, dims)
    # google/vit-*: 0.5 mean/std, bilinear; the class token (after the last LayerNorm) is what its classifier reads
    base = INPUT_CONVENTIONS["imagenet_rgb"].model_copy(update={"name": "transformers_vit", "mean": (0.5,) * 3,
                                                                "std": (0.5,) * 3, "interpolation": "bilinear",
                                                                "pooling": "token"})
    out.convention = _convention(path, base)


def _source(config: dict, dims: tuple) -> str:
    width, depth, n_heads, patch, image, _ = dims
    names = config.get("architectures")
    name = names[0] if isinstance(names, list) and names and isinstance(names[0], str) else config["model_type"]
    return f"config.json: {name}, hidden {width}, {depth} layers, {n_heads} heads, patch {patch}, image {image}"


#: preprocessor_config.json's PIL resample codes
RESAMPLE = {0: "nearest-exact", 2: "bilinear", 3: "bicubic"}


def _convention(path: Path, base):
    """``base`` with the mean, std and resize filter preprocessor_config.json beside the file names, if any."""
    pre = json_beside(path, "preprocessor_config.json") or {}
    mean, std = stats(pre.get("image_mean")), stats(pre.get("image_std"))
    update = {"mean": mean, "std": std} if mean and std and min(std) > 0 else {}
    if pre.get("resample") in RESAMPLE and base.name != "dinov2":
        update["interpolation"] = RESAMPLE[pre["resample"]]
    return base.model_copy(update=update) if update else base


def _config_beside(evidence: Evidence) -> str | None:
    try:
        config = json_beside(evidence.path, "config.json")
    except CheckpointError:
        return None
    model_type = (config or {}).get("model_type")
    if isinstance(model_type, str) and any(".embeddings." in k or k.startswith("embeddings.") for k in evidence.keys):
        return f"config.json beside it with model_type {model_type!r} and embeddings.* keys (a transformers folder)"
    return None


FORMAT = Format("transformers", extract, rules=(Rule(5, _config_beside),), convention=INPUT_CONVENTIONS["dinov2"],
                timm_model=family_guard("timm.models.vision_transformer", "vit_small_patch14_dinov2",
                                        "a transformers DINOv2 or ViT"))
