"""State-dict plumbing shared by the format adapters, and the key report every load produces."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch

from benchmark.core.errors import CheckpointError

WRAPPER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")
PREFIXES = ("module.", "_orig_mod.")
BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
SHOWN = 20
KEY_CHARS = 120  # a key longer than this is cut in messages: a hostile file must not flood the one-line error
FINITE_CHUNK = 1 << 22  # elements per isfinite() call: its temporaries stay ~20 MB for any tensor size


def unwrap(obj: object) -> object:
    """Follow the usual wrappers; the first present wins (EMA first: timm's train script saves the better weights there).

    A pickle can make a wrapper refer back to a dict already visited (``d["model"] = d``); the walk
    stops there instead of looping forever, and the caller then reports the dict's non-tensor values.
    """
    seen: set[int] = set()
    while isinstance(obj, Mapping) and id(obj) not in seen:
        seen.add(id(obj))
        wrapper = next((k for k in WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if wrapper is None:
            break
        obj = obj[wrapper]
    return obj


def unwrap_under(obj: object, key: str) -> object:
    """``obj[key]`` where a format keeps its weights under a name of its own (RadiologyNET's
    ``model_state``, a DINOv2 teacher's ``teacher``, BEiT's ``module``), else the usual wrappers."""
    top = obj if isinstance(obj, Mapping) else {}
    return top[key] if isinstance(top.get(key), Mapping) else unwrap(obj)


def strip_wrappers(key: str) -> str:
    """Remove DataParallel's ``module.`` and torch.compile's ``_orig_mod.`` from the front, however nested."""
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def tensor_dict(obj: object, path: Path, what: str = "a state dict of tensors") -> dict[str, torch.Tensor]:
    """``obj`` as {key: tensor} with wrapper prefixes stripped; CheckpointError if it is anything else."""
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"does not contain {what}", path)
    bad = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"does not contain {what}: {len(bad)} values are not tensors {shorten(bad)}", path)
    odd = [str(k) for k, v in obj.items() if not is_plain(v)]
    if odd:
        raise CheckpointError(f"{len(odd)} tensors are not plain weights (sparse, quantized or without data) "
                              f"{shorten(odd)}; re-save them as dense tensors", path)
    return rename(obj, lambda key: strip_wrappers(str(key)), path, "once wrapper prefixes are removed")


def is_plain(tensor: torch.Tensor) -> bool:
    """A dense CPU tensor that holds its numbers: the only kind a state dict of weights needs.

    Sparse, quantized and meta tensors load fine with weights_only, but finiteness checks and
    load_state_dict then fail deep inside torch with a traceback instead of a message.
    """
    return (tensor.layout == torch.strided and tensor.device.type == "cpu" and not tensor.is_quantized
            and not tensor.is_nested)


def rename(state: Mapping, new_name, path: Path, how: str) -> dict[str, torch.Tensor]:
    """``state`` with each key passed through ``new_name``; two keys that end up equal are an error, never a
    silent overwrite (``model.conv1.weight`` and ``conv1.weight`` in one file: which one is the backbone?)."""
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for key, value in state.items():
        name = new_name(key)
        if name in out:
            raise CheckpointError(f"keys {show_key(origin[name])} and {show_key(str(key))} both become "
                                  f"{show_key(name)} {how}: the file holds two tensors for one weight", path)
        out[name], origin[name] = value, str(key)
    return out


def split_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Keys under ``prefix`` with it removed exactly once (never ``str.replace``), and the rest counted by prefix."""
    inside = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    rest: dict[str, int] = {}
    for key in state:
        if not key.startswith(prefix):
            top = key.split(".", 1)[0]
            rest[top] = rest.get(top, 0) + 1
    return inside, rest


def show_key(key: str) -> str:
    """A key as one short printable token: escaped if it holds newlines or control characters, cut if huge."""
    text = key if key.isprintable() else repr(key)
    return text if len(text) <= KEY_CHARS else text[:KEY_CHARS] + "..."


def shorten(keys: list[str], limit: int = SHOWN) -> str:
    """The first ``limit`` keys and how many more: a bounded, one-line list for any file."""
    shown = ", ".join(show_key(str(k)) for k in keys[:limit])
    return f"[{shown}{f', ... {len(keys) - limit} more' if len(keys) > limit else ''}]"


def shape_str(shape: torch.Size | tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape) or "scalar"


@dataclass
class KeyReport:
    """How the file's backbone tensors line up with the model's state dict."""

    matched: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatch: list[str] = field(default_factory=list)
    ignored_head: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)  # non-backbone parts by prefix (projector, momentum...)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.shape_mismatch)

    def as_dict(self) -> dict:
        return {"matched": self.matched, "missing": list(self.missing), "unexpected": list(self.unexpected),
                "shape_mismatch": list(self.shape_mismatch), "ignored_head": list(self.ignored_head),
                "dropped": dict(self.dropped)}

    def problem(self, target: str) -> str:
        """One line naming what does not match (lists cut to 20 names, with counts)."""
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing {shorten(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected {shorten(self.unexpected)}")
        if self.shape_mismatch:
            parts.append(f"{len(self.shape_mismatch)} with another shape {shorten(self.shape_mismatch, 10)}")
        return f"backbone keys do not match {target} ({self.matched} matched): " + "; ".join(parts)


def compare(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor],
            head_prefixes: tuple[str, ...]) -> tuple[KeyReport, dict[str, torch.Tensor]]:
    """The report, and the state with head keys (``fc.*``...) the model does not have taken out."""
    report = KeyReport()
    kept: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key not in expected and any(key == p or key.startswith(p + ".") for p in head_prefixes):
            report.ignored_head.append(key)
            continue
        kept[key] = value
    report.missing = sorted(k for k in expected if k not in kept)
    report.unexpected = sorted(k for k in kept if k not in expected)
    for key in sorted(k for k in kept if k in expected):
        if tuple(kept[key].shape) != tuple(expected[key].shape):
            report.shape_mismatch.append(f"{key} file {shape_str(kept[key].shape)} model "
                                         f"{shape_str(expected[key].shape)}")
    report.matched = sum(1 for k in kept if k in expected) - len(report.shape_mismatch)
    return report, kept


def non_finite(state: Mapping[str, torch.Tensor]) -> list[str]:
    """Keys of floating-point tensors holding a NaN or an Inf."""
    return [k for k, v in state.items() if v.is_floating_point() and not is_finite(v)]


def is_finite(tensor: torch.Tensor) -> bool:
    """``torch.isfinite(t).all()`` in chunks: on a whole tensor, isfinite allocates an ``abs()`` copy as large
    as the tensor, which would double the memory of a memory-mapped multi-GB checkpoint."""
    flat = tensor.reshape(-1)  # a view for contiguous tensors (the loaders' output); a copy only otherwise
    return all(bool(torch.isfinite(flat[i:i + FINITE_CHUNK]).all()) for i in range(0, flat.numel(), FINITE_CHUNK))


def parameter_count(state: Mapping[str, torch.Tensor]) -> int:
    """Numbers in the backbone tensors, BatchNorm running statistics left out."""
    return int(sum(v.numel() for k, v in state.items() if not k.endswith(BN_BUFFERS)))


_RESNETS = {  # (bottleneck, blocks per stage) -> timm name
    (False, (2, 2, 2, 2)): "resnet18",
    (False, (3, 4, 6, 3)): "resnet34",
    (True, (3, 4, 6, 3)): "resnet50",
    (True, (3, 4, 23, 3)): "resnet101",
    (True, (3, 8, 36, 3)): "resnet152",
}


def infer_resnet(state: Mapping[str, torch.Tensor]) -> str | None:
    """A torchvision/timm-layout ResNet's name from its key names and shapes, or None."""
    blocks = []
    for stage in range(1, 5):
        found = {int(m.group(1)) for k in state if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
        if not found:
            return None
        blocks.append(max(found) + 1)
    bottleneck = "layer1.0.conv3.weight" in state
    name = _RESNETS.get((bottleneck, tuple(blocks)))
    first = state.get("layer1.0.conv1.weight")
    if name == "resnet50" and isinstance(first, torch.Tensor) and first.ndim > 0 and first.shape[0] == 128:
        return "wide_resnet50_2"
    return name
