"""MAE's pretraining checkpoints (github.com/facebookresearch/mae), mapped onto timm's ``vit_*_patch16_224``.

``main_pretrain.py`` saves ``{"model": ..., "optimizer": ..., "epoch": ..., "scaler": ..., "args": Namespace}``;
the model (``models_mae.py``, ``MaskedAutoencoderViT``) builds its encoder from timm's own ``Block``
and ``PatchEmbed``, so ``cls_token``, ``pos_embed`` (fixed sin-cos), ``patch_embed.proj``,
``blocks.N.*`` and ``norm`` are timm's names already. ``mask_token`` and every ``decoder_*`` key
(``decoder_embed``, ``decoder_pos_embed``, ``decoder_blocks``, ``decoder_norm``, ``decoder_pred``)
belong to the pixel decoder: dropped and reported. The convention pools the mean patch token (as
MAE's finetuning does); the encoder's own ``norm`` then comes before the mean, since a pretrained
encoder has no ``fc_norm`` (finetuning adds one; ``create_backbone`` builds avg pooling without it).
"""
from __future__ import annotations

from pathlib import Path

from benchmark.core.specs import INPUT_CONVENTIONS
from benchmark.models.formats.base import Evidence, Extracted, Format, Rule
from benchmark.models.formats.keys import tensor_dict, unwrap
from benchmark.models.formats.vit_common import block_count, family_guard, grid_size, heads, mlp_ratio, pick

#: (width, depth, patch, mlp hidden) -> timm's ViT (mae_vit_base/large_patch16, mae_vit_huge_patch14)
NAMES = {(768, 12, 16, 3072): "vit_base_patch16_224", (1024, 24, 16, 4096): "vit_large_patch16_224",
         (1280, 32, 14, 5120): "vit_huge_patch14_224"}


def extract(obj: object, path: Path) -> Extracted:
    state = tensor_dict(unwrap(obj), path)
    dropped: dict[str, int] = {}
    encoder = {}
    for key, value in state.items():
        if key == "mask_token" or key.startswith("decoder_"):
            top = key.split(".")[0]
            dropped[top] = dropped.get(top, 0) + 1
        else:
            encoder[key] = value
    out = Extracted(encoder, dropped=dropped, method="mae")
    proj, pos, fc1 = (encoder.get(k) for k in ("patch_embed.proj.weight", "pos_embed", "blocks.0.mlp.fc1.weight"))
    if proj is None or proj.ndim != 4 or pos is None or pos.ndim != 3 or fc1 is None:
        out.notes.append("no patch_embed.proj, pos_embed or blocks.0.mlp weights: name the architecture")
        return out
    width, patch, depth, hidden = int(proj.shape[0]), int(proj.shape[-1]), block_count(encoder), int(fc1.shape[0])
    n_heads, how = heads(width)
    kwargs = {"embed_dim": width, "depth": depth, "num_heads": n_heads, "patch_size": patch,
              "mlp_ratio": mlp_ratio(hidden, width)}
    img_size = grid_size(int(pos.shape[1]) - 1, path) * patch
    out.arch, out.model_kwargs = pick(NAMES, (width, depth, patch, hidden), "vit_base_patch16_224", kwargs, img_size)
    out.arch_source = f"the encoder's shapes (width {width}, {depth} blocks, patch {patch}, {how})"
    return out


def _decoder(evidence: Evidence) -> str | None:
    keys = evidence.keys
    if "mask_token" in keys and "cls_token" in keys and any(k.startswith("decoder_") for k in keys):
        return "mask_token and decoder_* keys beside a ViT encoder (MAE's pretraining checkpoint)"
    return None


FORMAT = Format("mae", extract, rules=(Rule(84, _decoder),), convention=INPUT_CONVENTIONS["imagenet_rgb_avg"],
                timm_model=family_guard("timm.models.vision_transformer", "vit_base_patch16_224", "an MAE encoder"))
