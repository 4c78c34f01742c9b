"""Backbones come from timm; checkpoint files are loaded without executing code.

Only safetensors and ``torch.load(weights_only=True)`` are used: a checkpoint is a
stranger's file. Keys must match exactly, and a mismatch lists both sides, because
solo-learn's ``strict=False`` showed how quietly a half-random backbone gets evaluated.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import timm
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from .atomic import atomic_open
from .errors import CheckpointError
from .specs import CheckpointSpec

WRAPPER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")
PREFIXES = ("module.", "_orig_mod.")


def create_backbone(arch: str, in_chans: int = 3) -> nn.Module:
    """A timm model with its classifier removed: forward() returns pooled features."""
    try:
        return timm.create_model(arch, pretrained=False, num_classes=0, in_chans=in_chans)
    except RuntimeError as exc:
        raise CheckpointError(f"unknown timm architecture {arch!r}: {exc}") from None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError("checkpoint file does not exist", path)
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"not a readable safetensors file ({exc})", path) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"refused: the file holds objects that are not plain weights ({exc})".split("\n")[0],
                              path) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})".split("\n")[0],
                              path) from None
    return unwrap(obj, path)


def unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """Follow the usual wrappers (EMA first, as timm's train script saves the better weights there)."""
    while isinstance(obj, dict):
        wrapper = next((k for k in WRAPPER_KEYS if k in obj and isinstance(obj[k], dict)), None)
        if wrapper is None:
            break
        obj = obj[wrapper]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError("does not contain a state dict of tensors", path)
    return {_strip(k): v for k, v in obj.items()}


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def load_backbone(spec: CheckpointSpec) -> nn.Module:
    model = create_backbone(spec.arch, spec.input.channels)
    if spec.weights is None:
        raise CheckpointError(f"checkpoint {spec.name} has no weight file")
    state = read_state_dict(Path(spec.weights))
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"keys do not match timm {spec.arch}: missing {missing[:20]}{' ...' if len(missing) > 20 else ''}, "
            f"unexpected {unexpected[:20]}{' ...' if len(unexpected) > 20 else ''}", spec.weights)
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"non-finite weights in {bad[:10]}", spec.weights)
    model.load_state_dict(state, strict=True)
    return model.eval()


def save_backbone(model: nn.Module, path: Path) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(save({k: v.contiguous() for k, v in model.state_dict().items()}))
