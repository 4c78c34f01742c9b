"""What a pretraining run leaves behind: the backbone and a sidecar describing it.

- ``OUT.safetensors``: the timm backbone's state dict (no head), through ``save_backbone``;
- ``OUT.json``: ``{"checkpoint": CheckpointSpec, "recipe": {...}, "corpus": {...},
  "training": {...}, "loss_per_epoch": [...], "versions": {...}}``. ``checkpoint`` is a
  valid ``CheckpointSpec`` (format "timm", sha256 of the file, the input convention the
  network was trained with); the rest, which CheckpointSpec has no fields for, sits beside it.
  ``read_sidecar`` returns both, with ``weights`` pointing at the file beside the sidecar when
  there is one (the pair is moved together), else at the recorded absolute path.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from torch import nn

from benchmark.core.atomic import write_json
from benchmark.core.errors import CheckpointError, ConfigError
from benchmark.core.hashing import file_sha256
from benchmark.core.specs import INPUT_CONVENTIONS, NAME_PATTERN, CheckpointSpec, InputConvention
from benchmark.models.backbones import save_backbone
from benchmark.pretrain.corpus import Corpus
from benchmark.pretrain.recipe import Recipe

SIDECAR_VERSION = 1


def sidecar_path(out: Path) -> Path:
    return Path(out).with_suffix(".json")


def state_path(out: Path) -> Path:
    return Path(out).with_suffix(".state.pt")


def default_name(out: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._+-]", "-", Path(out).stem).lstrip("._+-")[:80]
    return name or "pretrained"


def check_name(name: str) -> str:
    if not re.match(NAME_PATTERN, name):
        raise ConfigError(f"checkpoint name {name!r} must match {NAME_PATTERN}")
    return name


def _versions() -> dict:
    import lightly
    import timm
    import torch

    return {"torch": torch.__version__, "timm": timm.__version__, "lightly": lightly.__version__}


def pretraining_convention(corpus: Corpus, mean: tuple[float, ...], std: tuple[float, ...]) -> InputConvention:
    """What the pretraining fed the network, so that evaluation feeds it the same: the corpus's HU
    windows on CT (other modalities keep their task's mapping), the photos' 0..255 scale on natural
    images, both at full resolution before an area resize, standardised by the corpus statistics."""
    if corpus.domain == "ct":
        return INPUT_CONVENTIONS["hu_windows"].model_copy(update={"windows": list(corpus.preprocessing.windows),
                                                                  "mean": mean, "std": std})
    return InputConvention(name="unit_rgb", intensity="task", mean=mean, std=std)


def write_outputs(out: Path, backbone: nn.Module, *, recipe: Recipe, corpus: Corpus, name: str,
                  pretraining_domain: str, demo: bool, mean: tuple[float, ...], std: tuple[float, ...],
                  losses: list[float], training: dict) -> CheckpointSpec:
    out = Path(out)
    save_backbone(backbone, out)
    description = (f"{recipe.method} pretraining with ctbench (lightly), {recipe.arch} at {recipe.image_size} px, "
                   f"{recipe.epochs} epochs, batch {training['batch_size']}, {recipe.optimizer} lr {recipe.lr:g}; "
                   f"recipe in the sidecar's 'recipe'")
    spec = CheckpointSpec(
        name=name, arch=recipe.arch, weights=out.resolve(), sha256=file_sha256(out), format="timm",
        pretraining_domain=pretraining_domain, method=recipe.method, data=corpus.describe(),
        input=pretraining_convention(corpus, mean, std), demo=demo, description=description)
    write_json(sidecar_path(out), {
        "sidecar_version": SIDECAR_VERSION,
        "checkpoint": spec.model_dump(mode="json"),
        "recipe": recipe.to_dict(),
        "corpus": corpus.summary(),
        "training": training,
        "loss_per_epoch": losses,
        "versions": _versions(),
    })
    return spec


def read_sidecar(path: Path) -> tuple[CheckpointSpec, dict]:
    """The CheckpointSpec of a pretraining sidecar (``.json``) and the whole payload."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        spec = CheckpointSpec.model_validate(payload["checkpoint"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"not a ctbench pretraining sidecar ({type(exc).__name__}: {exc})".split("\n")[0],
                              path) from None
    if spec.weights is not None:
        beside = path.parent / Path(spec.weights).name  # the pair travels together
        if beside.is_file():
            spec = spec.model_copy(update={"weights": beside.resolve()})
    return spec, payload
