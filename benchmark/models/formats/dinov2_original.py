"""DINOv2's own checkpoints (github.com/facebookresearch/dinov2), mapped onto timm's ``vit_*_patch14_dinov2``.

Layout (``dinov2/models/vision_transformer.py``, ``DinoVisionTransformer``): ``cls_token``,
``pos_embed`` (class token included), ``mask_token``, ``register_tokens`` (the ``_reg`` models),
``patch_embed.proj``, ``blocks.N.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1|w12,
mlp.fc2|w3, ls2.gamma}``, ``norm``. The hub files (``dinov2_vits14_pretrain.pth`` ...) are that
state dict; a training run's ``teacher_checkpoint.pth`` is ``{"teacher": ...}`` with ``backbone.``
before every key, the DINO/iBOT heads beside it and, with block chunking, ``blocks.C.N.`` (the inner
index is already the global one: chunk C is padded with Identity). timm's ``_convert_dinov2``
documents the rest: ``mask_token`` is not part of the backbone (dropped and reported), SwiGLU's
``w12``/``w3`` are timm's packed ``fc1``/``fc2`` (the giant family), and with registers the class
token's position embedding is folded into the class token (timm's ``no_embed_class`` layout).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

from benchmark.core.specs import INPUT_CONVENTIONS
from benchmark.models.formats.base import Evidence, Extracted, Format, Rule
from benchmark.models.formats.keys import rename, split_prefix, tensor_dict, unwrap_under
from benchmark.models.formats.vit_common import (
    block_count,
    family_guard,
    fold_class_position,
    grid_size,
    heads,
    mlp_ratio,
    pick,
)

#: (width, depth, mlp hidden, swiglu) -> timm's DINOv2 ("{reg}" for the register models); all patch 14
NAMES = {(384, 12, 1536, False): "vit_small_patch14{reg}_dinov2", (768, 12, 3072, False): "vit_base_patch14{reg}_dinov2",
         (1024, 24, 4096, False): "vit_large_patch14{reg}_dinov2", (1536, 40, 8192, True): "vit_giant_patch14{reg}_dinov2"}


def extract(obj: object, path: Path) -> Extracted:
    state = tensor_dict(unwrap_under(obj, "teacher"), path)
    dropped: dict[str, int] = {}
    if any(k.startswith("backbone.") for k in state):
        state, dropped = split_prefix(state, "backbone.")
    state = rename(state, lambda k: re.sub(r"^blocks\.\d+\.(\d+)\.", r"blocks.\1.", k), path, "once block chunks "
                   "are unfolded")
    for key in ("mask_token",):
        if state.pop(key, None) is not None:
            dropped[key] = 1
    state = {re.sub(r"\.mlp\.w12\.", ".mlp.fc1.", re.sub(r"\.mlp\.w3\.", ".mlp.fc2.", k)): v for k, v in state.items()}
    registers = state.pop("register_tokens", None)
    pos = state.get("pos_embed")
    if registers is not None:
        state["reg_token"] = registers
        fold_class_position(state)
    out = Extracted(state, dropped=dropped, method="dinov2")
    _architecture(out, path, pos, int(registers.shape[1]) if registers is not None and registers.ndim == 3 else 0)
    return out


def _architecture(out: Extracted, path: Path, pos, registers: int) -> None:
    proj, fc1 = out.state.get("patch_embed.proj.weight"), out.state.get("blocks.0.mlp.fc1.weight")
    if proj is None or proj.ndim != 4 or pos is None or pos.ndim != 3 or fc1 is None:
        out.notes.append("no patch_embed.proj, pos_embed or blocks.0.mlp weights: name the architecture")
        return
    width, patch, depth, hidden = int(proj.shape[0]), int(proj.shape[-1]), block_count(out.state), int(fc1.shape[0])
    swiglu = "blocks.0.mlp.fc2.weight" in out.state and int(out.state["blocks.0.mlp.fc2.weight"].shape[1]) != hidden
    n_heads, how = heads(width)
    img_size = grid_size(int(pos.shape[1]) - 1, path) * patch
    reg = "_reg4" if registers else ""
    kwargs = {"embed_dim": width, "depth": depth, "num_heads": n_heads, "patch_size": patch,
              "mlp_ratio": mlp_ratio(hidden, width)}
    if registers not in (0, 4):
        kwargs["reg_tokens"] = registers
    if "blocks.0.attn.qkv.bias" not in out.state:
        kwargs["qkv_bias"] = False
    known = {k: v.format(reg=reg) for k, v in NAMES.items()} if patch == 14 and len(kwargs) == 5 else {}
    family = f"vit_{'giant' if swiglu else 'base'}_patch14{reg}_dinov2"
    out.arch, out.model_kwargs = pick(known, (width, depth, hidden, swiglu), family, kwargs, img_size)
    out.arch_source = f"the keys' shapes (width {width}, {depth} blocks, patch {patch}, {how})"


def _keys(evidence: Evidence) -> set[str]:
    inner = unwrap_under(evidence.obj, "teacher")
    keys = [str(k) for k in inner] if isinstance(inner, Mapping) else evidence.keys
    return {k[len("backbone."):] if k.startswith("backbone.") else k for k in keys}


def _layer_scale_and_mask(evidence: Evidence) -> str | None:
    keys = _keys(evidence)
    if ("mask_token" in keys or "register_tokens" in keys) and "cls_token" in keys and any(
            re.match(r"blocks\.(\d+\.)+ls1\.gamma$", k) for k in keys):
        return "cls_token, mask_token and blocks.N.ls1.gamma keys (DINOv2's own checkpoint)"
    return None


FORMAT = Format("dinov2", extract, rules=(Rule(82, _layer_scale_and_mask),), convention=INPUT_CONVENTIONS["dinov2"],
                timm_model=family_guard("timm.models.vision_transformer", "vit_small_patch14_dinov2", "DINOv2"))
