"""Which format a file is in, and why: every answer names the evidence."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

from benchmark.models.formats.keys import strip_wrappers, unwrap
from benchmark.models.formats.lightly_ssl import is_sequential
from benchmark.models.formats.radimagenet import is_radimagenet
from benchmark.models.formats.safe_load import is_safetensors, read_object

LIGHTNING_MARKERS = ("pytorch-lightning_version", "optimizer_states", "lr_schedulers", "loops")


def detect_format(path: Path | str, obj: object = None) -> tuple[str, str]:
    """``(format, reason)``; ``format`` is a CheckpointSpec format name. Reads the file safely if ``obj`` is None."""
    path = Path(path)
    if obj is None:
        obj, _ = read_object(path)
    top = obj if isinstance(obj, Mapping) else {}
    if isinstance(top.get("model_state"), Mapping):
        return "radiologynet", "top-level 'model_state' dict (RadiologyNET's training script)"
    if path.name == "exported_last.pt":
        return "lightly", "file name exported_last.pt (LightlyTrain's torchvision export)"
    inner = unwrap(obj)
    keys = [strip_wrappers(str(k)) for k in inner] if isinstance(inner, Mapping) else []
    prefix = next((p for p in ("backbone.", "encoder.") if any(k.startswith(p) for k in keys)), None)
    args_json = (path.parent / "args.json").is_file()
    if is_sequential(keys):
        return "lightly", "backbone.<index>.* keys (lightly's nn.Sequential of ResNet children)"
    if prefix and args_json:
        return "solo-learn", f"args.json beside it and {prefix}* keys"
    if prefix == "backbone." and (any(m in top for m in LIGHTNING_MARKERS)
                                  or any(re.match(r"(momentum_backbone|projector)\.", k) for k in keys)):
        return "solo-learn", "Lightning checkpoint with backbone.*/projector.* keys (no args.json beside it)"
    if prefix == "encoder." and any(k.startswith("head.") for k in keys):
        return "study", "encoder.* keys with a head.* classifier (the study's finetuned encoders)"
    if prefix == "encoder." and any(m in top for m in LIGHTNING_MARKERS):
        return "solo-learn", "Lightning checkpoint with older solo-learn encoder.* keys (no args.json beside it)"
    if is_radimagenet(keys):
        return "radimagenet", "biased convolutions (conv1.bias, layer1.0.conv1.bias): the Keras-converted RadImageNet ResNet50"
    if is_safetensors(path):
        return "safetensors", "safetensors file; keys taken as timm names"
    return "timm", "plain state dict; keys taken as timm names (timm and torchvision ResNets share them)"
