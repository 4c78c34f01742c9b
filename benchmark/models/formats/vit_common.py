"""What the foundation-model formats share: ViT shapes read off the weights, the timm name they pick, and
the guard that a named architecture is a model of the family the keys are for.

The weights fix width, depth, patch and token grid, and the MLP's width; they do not fix the number of
attention heads (a ``qkv`` matrix is 3D x D for any head count). Heads come from the file's own
config where it has one, else from the published models of that width, else ``width // 64`` (the
64-dimensional heads of ViT, CLIP, MAE and DINOv2), and the architecture's source says which.

A file whose dims are one of timm's registered models gets that name (so ``--arch`` is what a user
expects, e.g. ``vit_small_patch14_dinov2``); any other gets its family's base name plus timm
constructor arguments (``Extracted.model_kwargs``), which are plain JSON values so that every
build can be recorded.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Callable, Mapping

import timm

from benchmark.core.errors import CheckpointError

#: heads of the published ViTs of each width (DeiT/ViT, DINOv2, MAE, CLIP, BEiT agree where they share one)
HEADS_BY_WIDTH = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16, 1408: 16, 1664: 16, 1536: 24}
JSON_LIMIT = 1 << 20  # a config is a few kB; a huge one is not a config


def block_count(state: Mapping, prefix: str = "blocks.") -> int:
    """Blocks in ``state``: one more than the largest index after ``prefix``."""
    found = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return max(found) + 1 if found else 0


def heads(width: int, recorded: int | None = None, source: str = "") -> tuple[int, str]:
    """The head count and where it came from, for the architecture's source line."""
    if recorded:
        return recorded, f"{recorded} heads from {source}"
    if width in HEADS_BY_WIDTH:
        return HEADS_BY_WIDTH[width], f"{HEADS_BY_WIDTH[width]} heads, as every published model of width {width}"
    return max(1, width // 64), f"{max(1, width // 64)} heads assumed (64-dim heads; the weights do not record it)"


def mlp_ratio(hidden: int, width: int) -> float:
    """The ratio for which timm's ``int(width * ratio)`` is exactly ``hidden`` (a plain quotient may round down)."""
    ratio = hidden / width
    return ratio if int(width * ratio) == hidden else (hidden + 0.5) / width


def grid_size(tokens: int, path: Path) -> int:
    """The side of the square patch grid ``tokens`` position embeddings cover."""
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise CheckpointError(f"{tokens} position embeddings are not a square grid of patches", path)
    return side


def default_img_size(name: str) -> int | None:
    cfg = timm.models.get_pretrained_cfg(name)
    return int(cfg.input_size[-1]) if cfg is not None and cfg.input_size else None


def pick(known: Mapping[tuple, str], dims: tuple, family: str, kwargs: dict, img_size: int,
         extra: dict | None = None) -> tuple[str, dict]:
    """timm's registered name for ``dims`` (only ``img_size`` and ``extra`` passed, where they differ from its
    defaults), or ``family`` with every constructor argument ``kwargs`` holds."""
    extra = dict(extra or {})
    name = known.get(dims)
    if name is None:
        return family, {**kwargs, "img_size": img_size, **extra}
    if img_size != default_img_size(name):
        extra["img_size"] = img_size
    return name, extra


def family_guard(module: str, example: str, what: str) -> Callable[[str, Path], str]:
    """A ``Format.timm_model``: the name itself, or a CheckpointError when timm defines it in another module
    than ``module`` (the keys and constructor arguments are that module's model's; any other refuses them)."""

    def timm_model(arch: str, path: Path) -> str:
        if timm.models.is_model(arch) and timm_module(arch) != module:
            raise CheckpointError(f"{what} loads onto a timm {module.rsplit('.', 1)[-1]} model "
                                  f"(e.g. {example}); {arch} is not one", path)
        return arch

    return timm_model


def timm_module(arch: str) -> str:
    return timm.models.model_entrypoint(timm.models.get_arch_name(arch)).__module__


def json_beside(path: Path, name: str) -> dict | None:
    """The JSON object in ``name`` next to ``path``, None when there is none; a CheckpointError if unreadable."""
    config = path.parent / name
    if not config.is_file():
        return None
    try:
        if config.stat().st_size > JSON_LIMIT:
            raise ValueError(f"larger than {JSON_LIMIT} bytes")
        value = json.loads(config.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{name} beside the checkpoint is not readable JSON ({exc})", config) from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{name} beside the checkpoint is not a JSON object", config)
    return value


def fold_class_position(state: dict) -> None:
    """timm's ``no_embed_class`` layout for register models, in place: the class token's position embedding
    added to the class token, ``pos_embed`` left with the patches' (timm's ``_convert_dinov2``). Shapes that do
    not fit are left for the key report."""
    cls, pos = state.get("cls_token"), state.get("pos_embed")
    if cls is not None and pos is not None and pos.ndim == 3 and tuple(cls.shape) == tuple(pos[:, :1].shape):
        state.update(cls_token=cls + pos[:, :1], pos_embed=pos[:, 1:])


def number(value: object, default: float) -> float:
    """A config's number, or ``default`` for anything else (a string, a bool, null)."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def side(value: object) -> int | None:
    """A config's image or patch size as one int (a square ``[h, w]`` too), None when it is not one."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and value[0] == value[1]:
        value = value[0]
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def stats(values: object) -> tuple[float, ...] | None:
    """Three channel statistics from a config's list (one value means grey, repeated), None otherwise."""
    if not isinstance(values, (list, tuple)) or len(values) not in (1, 3):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None
    return tuple(float(v) for v in values) * (3 if len(values) == 1 else 1)
