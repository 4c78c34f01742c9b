"""BEiT's own checkpoints (github.com/microsoft/unilm, ``beit/`` and ``beit2/``), mapped onto timm's ``beit_*``.

Layout (``beit/modeling_pretrain.py`` and ``modeling_finetune.py``): ``cls_token``, ``mask_token`` (pretraining),
``pos_embed`` (only with absolute position embeddings), ``patch_embed.proj``, ``blocks.N.{norm1,
attn.qkv.weight, attn.q_bias, attn.v_bias, attn.proj, norm2, mlp.fc1, mlp.fc2, gamma_1, gamma_2}``,
and the relative position bias either shared (``rel_pos_bias.relative_position_bias_table``,
pretraining's default) or per block (``blocks.N.attn.relative_position_bias_table``, finetuned
models), each with a ``relative_position_index`` buffer; then ``norm`` + ``lm_head`` (pretraining),
or ``fc_norm`` + ``head`` (finetuned with mean pooling). timm's Beit has the same names, and
builds either bias layout and either norm, so the flags come from the keys; the index buffers are
recomputed by timm (dropped and reported), as timm's own ``checkpoint_filter_fn`` does. The
checkpoint is ``{"model": ...}`` (BEiT v2's sometimes ``{"module": ...}``). Heads are the bias
table's second dimension. BEiT v1 normalises with mean/std 0.5 (unilm's default without
``--imagenet_default_mean_and_std``, and timm's ``beit_*`` config); v2 (``cls_pt_layers``) with ImageNet's.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

from benchmark.core.specs import INPUT_CONVENTIONS
from benchmark.models.formats.base import Evidence, Extracted, Format, Rule
from benchmark.models.formats.keys import tensor_dict, unwrap_under
from benchmark.models.formats.vit_common import block_count, family_guard, grid_size, mlp_ratio, pick

NAMES = {(768, 12, 12, 16, 3072): "beit_base_patch16_224", (1024, 24, 16, 16, 4096): "beit_large_patch16_224"}
V2_NAMES = {(768, 12, 12, 16, 3072): "beitv2_base_patch16_224", (1024, 24, 16, 16, 4096): "beitv2_large_patch16_224"}
HALF = (0.5, 0.5, 0.5)
#: BEiT v1's input: mean/std 0.5, bicubic, the mean patch token
CONVENTION = INPUT_CONVENTIONS["imagenet_rgb_avg"].model_copy(update={"name": "beit", "mean": HALF, "std": HALF})
NOT_BACKBONE = ("mask_token", "lm_head", "cls_pt_layers")
SHARED_TABLE = "rel_pos_bias.relative_position_bias_table"
BLOCK_TABLE = "blocks.0.attn.relative_position_bias_table"


def extract(obj: object, path: Path) -> Extracted:
    state = tensor_dict(unwrap_under(obj, "module"), path)
    dropped: dict[str, int] = {}
    kept = {}
    for key, value in state.items():
        top = key.split(".")[0]
        if top in NOT_BACKBONE or key.endswith("relative_position_index"):
            name = "relative_position_index" if key.endswith("relative_position_index") else top
            dropped[name] = dropped.get(name, 0) + 1
        else:
            kept[key] = value
    v2 = "cls_pt_layers" in dropped
    out = Extracted(kept, dropped=dropped, method="beit v2" if v2 else "beit",
                    convention=INPUT_CONVENTIONS["imagenet_rgb_avg"] if v2 else None)
    if not v2:
        out.notes.append("BEiT v1 input: mean/std 0.5 (unilm's default); a run with --imagenet_default_mean_and_std "
                         "needs submit --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225")
    _architecture(out, path, v2)
    return out


def _architecture(out: Extracted, path: Path, v2: bool) -> None:
    state = out.state
    proj, fc1 = state.get("patch_embed.proj.weight"), state.get("blocks.0.mlp.fc1.weight")
    table = state.get(SHARED_TABLE, state.get(BLOCK_TABLE))
    if proj is None or proj.ndim != 4 or fc1 is None or table is None or table.ndim != 2 or table.shape[0] < 4:
        out.notes.append("no patch_embed.proj, blocks.0.mlp or relative position bias weights: name the architecture")
        return
    width, patch, depth, hidden = int(proj.shape[0]), int(proj.shape[-1]), block_count(state), int(fc1.shape[0])
    n_heads = int(table.shape[1])
    if "pos_embed" in state:
        grid = grid_size(int(state["pos_embed"].shape[1]) - 1, path)
    else:  # (2W-1)^2 relative distances plus 3 for the class token
        grid = (math.isqrt(int(table.shape[0]) - 3) + 1) // 2
    flags = {"use_abs_pos_emb": "pos_embed" in state, "use_rel_pos_bias": SHARED_TABLE not in state,
             "use_shared_rel_pos_bias": SHARED_TABLE in state, "use_fc_norm": "fc_norm.weight" in state}
    if "blocks.0.gamma_1" not in state:
        flags["init_values"] = None
    kwargs = {"embed_dim": width, "depth": depth, "num_heads": n_heads, "patch_size": patch,
              "mlp_ratio": mlp_ratio(hidden, width)}
    out.arch, out.model_kwargs = pick(V2_NAMES if v2 else NAMES, (width, depth, n_heads, patch, hidden),
                                      "beitv2_base_patch16_224" if v2 else "beit_base_patch16_224", kwargs,
                                      grid * patch, flags)
    out.arch_source = (f"the keys' shapes (width {width}, {depth} blocks, {n_heads} heads from the bias table, "
                       f"patch {patch})")


def _gamma_and_bias(evidence: Evidence) -> str | None:
    inner = unwrap_under(evidence.obj, "module")
    keys = {str(k) for k in inner} if isinstance(inner, Mapping) else set(evidence.keys)
    if {"blocks.0.gamma_1", "blocks.0.attn.q_bias"} <= keys and (SHARED_TABLE in keys or BLOCK_TABLE in keys):
        return "blocks.N.gamma_1, attn.q_bias/v_bias and relative_position_bias_table keys (BEiT's layout)"
    return None


FORMAT = Format("beit", extract, rules=(Rule(86, _gamma_and_bias),), convention=CONVENTION,
                input_hint={"mean": HALF, "std": HALF, "channel_order": "RGB"},
                timm_model=family_guard("timm.models.beit", "beit_base_patch16_224", "BEiT"))
