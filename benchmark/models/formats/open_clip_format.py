"""open_clip: a whole CLIP model's state dict (``torch.save(model.state_dict())``, or a training checkpoint's
``state_dict`` with DDP's ``module.``), of which ctbench keeps the vision tower up to its projection.

(a) ``visual.trunk.*``: a timm model inside open_clip's ``TimmModel`` (BiomedCLIP's ViT-B/16); the
    trunk's keys are timm's, so the prefix is removed and nothing else changes. ``visual.head.*``
    (the projection into the joint space) is dropped like the text tower.
(b) ``visual.conv1``, ``visual.class_embedding``, ``visual.transformer.resblocks.N``: open_clip's own
    VisionTransformer, OpenAI CLIP's layout, which is timm's ``vit_*_clip_224`` (pre-norm ViT, no
    patch bias, LayerNorm eps 1e-5) under other names, as timm's ``_convert_openai_clip`` maps them;
    ``visual.proj`` is dropped.

The text tower (``text.*``, or the top-level ``transformer.*``/``token_embedding``/``ln_final`` of
(b)-style models), ``logit_scale`` and ``logit_bias`` are counted as dropped. The weights do not
record heads or QuickGELU: ``open_clip_config.json`` beside the file (the hub's layout) is read for
both, and for the trunk's timm name and the preprocessing mean/std; without it, heads follow the
published models of the width (else width // 64, open_clip's default head width) and GELU is
assumed (open_clip's default; OpenAI's own weights use QuickGELU, said in a note).
"""
from __future__ import annotations

import re
from pathlib import Path

from benchmark.core.errors import CheckpointError
from benchmark.core.specs import CLIP_MEAN, CLIP_STD, INPUT_CONVENTIONS
from benchmark.models.formats.base import Evidence, Extracted, Format, Rule
from benchmark.models.formats.keys import split_prefix, tensor_dict, unwrap
from benchmark.models.formats.safe_load import read_object
from benchmark.models.formats.vit_common import (
    block_count,
    grid_size,
    heads,
    json_beside,
    mlp_ratio,
    pick,
    stats,
    timm_module,
)

WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
CONFIG = "open_clip_config.json"
VIT_MODULE = "timm.models.vision_transformer"
#: (width, layers, patch, mlp hidden, heads) -> timm's CLIP ViT
CLIP_NAMES = {(768, 12, 32, 3072, 12): "vit_base_patch32_clip_224", (768, 12, 16, 3072, 12): "vit_base_patch16_clip_224",
              (1024, 24, 14, 4096, 16): "vit_large_patch14_clip_224", (1280, 32, 14, 5120, 16): "vit_huge_patch14_clip_224",
              (1408, 40, 14, 6144, 16): "vit_giant_patch14_clip_224",
              (1664, 48, 14, 8192, 16): "vit_gigantic_patch14_clip_224"}
#: (width, depth, patch) -> timm's ViT, for a trunk whose config is not beside it
TRUNK_NAMES = {(192, 12, 16): "vit_tiny_patch16_224", (384, 12, 16): "vit_small_patch16_224",
               (768, 12, 16): "vit_base_patch16_224", (1024, 24, 16): "vit_large_patch16_224",
               (384, 12, 32): "vit_small_patch32_224", (768, 12, 32): "vit_base_patch32_224",
               (1024, 24, 32): "vit_large_patch32_224"}
SWAPS = ((r"^conv1\.", "patch_embed.proj."), (r"^ln_pre\.", "norm_pre."), (r"^ln_post\.", "norm."),
         (r"^transformer\.resblocks\.", "blocks."), (r"\.ln_1\.", ".norm1."), (r"\.ln_2\.", ".norm2."),
         (r"\.attn\.in_proj_(weight|bias)$", r".attn.qkv.\1"), (r"\.attn\.out_proj\.", ".attn.proj."),
         (r"\.mlp\.c_fc\.", ".mlp.fc1."), (r"\.mlp\.c_proj\.", ".mlp.fc2."), (r"\.ls_(\d)\.gamma$", r".ls\1.gamma"))


def extract(obj: object, path: Path) -> Extracted:
    state = tensor_dict(unwrap(obj), path)
    visual, dropped = split_prefix(state, "visual.")
    config = json_beside(path, CONFIG) or {}
    model_cfg = config.get("model_cfg") if isinstance(config.get("model_cfg"), dict) else {}
    vision = model_cfg.get("vision_cfg") if isinstance(model_cfg.get("vision_cfg"), dict) else {}
    out = _trunk(visual, dropped, vision) if any(k.startswith("trunk.") for k in visual) else \
        _openai(visual, dropped, vision, bool(model_cfg.get("quick_gelu")), path)
    out.method = "clip"
    pre = config.get("preprocess_cfg") if isinstance(config.get("preprocess_cfg"), dict) else {}
    mean, std = stats(pre.get("mean")), stats(pre.get("std"))
    if mean and std and min(std) > 0 and (mean, std) != (CLIP_MEAN, CLIP_STD):
        out.convention = INPUT_CONVENTIONS["clip"].model_copy(update={"mean": mean, "std": std})
        out.notes.append(f"mean/std from {CONFIG} beside the file")
    return out


def _trunk(visual: dict, dropped: dict[str, int], vision: dict) -> Extracted:
    """(a): the timm trunk's own keys; the arch from open_clip_config.json's timm_model_name, or ViT shapes."""
    trunk, rest = split_prefix(visual, "trunk.")
    dropped.update({f"visual.{k}": n for k, n in rest.items()})
    out = Extracted(trunk, dropped=dropped)
    if isinstance(vision.get("timm_model_name"), str):
        out.arch, out.arch_source = vision["timm_model_name"], f"{CONFIG} timm_model_name"
        return out
    proj = trunk.get("patch_embed.proj.weight")
    if proj is not None and proj.ndim == 4 and "pos_embed" in trunk:
        dims = (int(proj.shape[0]), block_count(trunk), int(proj.shape[-1]))
        if dims in TRUNK_NAMES:
            out.arch = TRUNK_NAMES[dims]
            out.arch_source = f"the trunk's shapes (width {dims[0]}, {dims[1]} blocks, patch {dims[2]})"
    if out.arch is None:
        out.notes.append(f"no {CONFIG} beside the file and no known ViT trunk: name the trunk's timm architecture")
    return out


def _openai(visual: dict, dropped: dict[str, int], vision: dict, quick_gelu: bool, path: Path) -> Extracted:
    """(b): OpenAI CLIP's names -> timm's vit_*_clip_224 family."""
    state, notes = {}, []
    for key, value in visual.items():
        if key == "proj":
            dropped["visual.proj"] = 1
            continue
        if key == "class_embedding":
            key, value = "cls_token", value.reshape(1, 1, -1)
        elif key == "positional_embedding":
            key, value = "pos_embed", value.unsqueeze(0)
        for old, new in SWAPS:
            key = re.sub(old, new, key)
        state[key] = value
    conv, pos, fc1 = (state.get(k) for k in ("patch_embed.proj.weight", "pos_embed", "blocks.0.mlp.fc1.weight"))
    if conv is None or conv.ndim != 4 or pos is None or pos.ndim != 3 or fc1 is None:
        raise CheckpointError("an OpenAI-CLIP-style visual tower without conv1, positional_embedding or "
                              "resblocks.0.mlp.c_fc weights", path)
    width, patch, depth, hidden = int(conv.shape[0]), int(conv.shape[-1]), block_count(state), int(fc1.shape[0])
    head_width = vision.get("head_width")
    n_heads, how = heads(width, width // head_width if isinstance(head_width, int) and head_width > 0 else None,
                         f"{CONFIG} head_width")
    img_size = grid_size(int(pos.shape[1]) - 1, path) * patch
    extra = {"act_layer": "quick_gelu"} if quick_gelu else {}
    if "blocks.0.ls1.gamma" in state:
        extra["init_values"] = 1.0
    kwargs = {"embed_dim": width, "depth": depth, "num_heads": n_heads, "patch_size": patch,
              "mlp_ratio": mlp_ratio(hidden, width)}
    arch, model_kwargs = pick(CLIP_NAMES, (width, depth, patch, hidden, n_heads), "vit_base_patch16_clip_224",
                              kwargs, img_size, extra)
    if not quick_gelu:
        notes.append(f"GELU assumed (open_clip's default): QuickGELU models (OpenAI's own weights) need {CONFIG} "
                     "with quick_gelu beside the file")
    return Extracted(state, dropped=dropped, arch=arch, model_kwargs=model_kwargs, notes=notes,
                     arch_source=f"the tower's shapes (width {width}, {depth} blocks, patch {patch}, {how})")


def timm_model(arch: str, path: Path) -> str:
    """A trunk may be any timm model; OpenAI-style towers map only onto a timm VisionTransformer. Checked only
    when the name is not one (a second safe read of the file, on that rare path)."""
    try:
        other = timm_module(arch) != VIT_MODULE
    except RuntimeError:  # unknown names are refused when the model is built
        return arch
    if other and any(k.startswith("visual.class_embedding") for k in Evidence(path, read_object(path)[0]).keys):
        raise CheckpointError(f"open_clip's own ViT (visual.conv1, visual.transformer.*) loads onto a timm "
                              f"VisionTransformer (e.g. vit_base_patch16_clip_224); {arch} is not one", path)
    return arch


def _trunk_rule(evidence: Evidence) -> str | None:
    if any(k.startswith("visual.trunk.") for k in evidence.keys):
        return "visual.trunk.* keys (an open_clip model with a timm vision trunk, as BiomedCLIP)"
    return None


def _openai_rule(evidence: Evidence) -> str | None:
    keys = set(evidence.keys)
    if {"visual.class_embedding", "visual.conv1.weight"} <= keys:
        return "visual.class_embedding and visual.conv1 keys (an open_clip / OpenAI CLIP model)"
    return None


FORMAT = Format("open_clip", extract, rules=(Rule(12, _trunk_rule), Rule(14, _openai_rule)),
                input_hint={"mean": CLIP_MEAN, "std": CLIP_STD, "channel_order": "RGB"},
                convention=INPUT_CONVENTIONS["clip"], timm_model=timm_model)
