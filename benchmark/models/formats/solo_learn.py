"""solo-learn: a Lightning ``.ckpt`` with ``args.json`` beside it.

``state_dict`` holds ``backbone.*`` (a torchvision ResNet with ``fc = Identity``),
``momentum_backbone.*``, ``projector.*``, ``momentum_projector.*``, ``predictor.*`` and the online
``classifier.*``; files from before solo-learn renamed it use ``encoder.*``. The backbone is the
keys that *start with* ``backbone.`` (or ``encoder.``) with that prefix removed once; solo-learn's
own ``k.replace("backbone.", "")`` would also turn ``momentum_backbone.x`` into ``momentum_x``.

``args.json`` is ``vars(args)`` (argparse era: ``"backbone": "resnet18"``, older ``"encoder"``) or
``OmegaConf.to_container(cfg)`` (hydra era: ``"backbone": {"name": "resnet18", ...}``), with
``"method"`` in both. CIFAR runs replace the stem (3x3 ``conv1``, no max-pool), which timm's
ResNet cannot express: that shows up as a shape mismatch on ``conv1.weight``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Mapping

from benchmark.core.errors import CheckpointError
from benchmark.models.formats.base import Evidence, Extracted, Format, Rule
from benchmark.models.formats.keys import split_prefix, tensor_dict, unwrap

#: solo-learn backbone name -> timm name (solo-learn builds torchvision ResNets, whose keys are timm's)
SOLO_TO_TIMM = {"resnet18": "resnet18", "resnet50": "resnet50"}
PREFIXES = ("backbone.", "encoder.")
LIGHTNING_MARKERS = ("pytorch-lightning_version", "optimizer_states", "lr_schedulers", "loops")


def read_args(path: Path) -> dict | None:
    args_path = path.parent / "args.json"
    if not args_path.is_file():
        return None
    try:
        args = json.loads(args_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"args.json beside the checkpoint is not readable JSON ({exc})", args_path) from None
    if not isinstance(args, dict):
        raise CheckpointError("args.json beside the checkpoint is not a JSON object", args_path)
    return args


def backbone_name(args: Mapping) -> str | None:
    backbone = args.get("backbone", args.get("encoder"))
    if isinstance(backbone, Mapping):
        backbone = backbone.get("name")
    return backbone if isinstance(backbone, str) else None


def dataset_name(args: Mapping) -> str | None:
    data = args.get("data")
    name = data.get("dataset") if isinstance(data, Mapping) else args.get("dataset")
    return name if isinstance(name, str) else None


def extract(obj: object, path: Path) -> Extracted:
    state = tensor_dict(unwrap(obj), path)
    prefix = next((p for p in PREFIXES if any(k.startswith(p) for k in state)), None)
    if prefix is None:
        raise CheckpointError("no backbone.* or encoder.* keys: not a solo-learn checkpoint", path)
    backbone, rest = split_prefix(state, prefix)
    out = Extracted(backbone, dropped=rest)
    if prefix == "encoder.":
        out.notes.append("older solo-learn checkpoint: backbone stored as encoder.*")
    args = read_args(path)
    if args is None:
        out.notes.append("no args.json beside the file: architecture and method not recorded by solo-learn")
        return out
    name = backbone_name(args)
    out.method = str(args.get("method") or "")
    if name is not None:
        out.arch = SOLO_TO_TIMM.get(name)
        out.arch_source = f"args.json backbone {name!r}"
        if out.arch is None:
            out.notes.append(f"args.json backbone {name!r} has no known timm equivalent")
    dataset = dataset_name(args)
    if dataset in ("cifar10", "cifar100"):
        out.notes.append(f"trained on {dataset}: solo-learn's CIFAR stem (3x3 conv1, no max-pool) is not a timm ResNet")
    return out


def _args_json(evidence: Evidence) -> str | None:
    prefix = evidence.prefix
    return f"args.json beside it and {prefix}* keys" if prefix and evidence.args_json else None


def _lightning(evidence: Evidence) -> bool:
    return any(m in evidence.top for m in LIGHTNING_MARKERS)


def _lightning_backbone(evidence: Evidence) -> str | None:
    if evidence.prefix == "backbone." and (_lightning(evidence) or any(
            re.match(r"(momentum_backbone|projector)\.", k) for k in evidence.keys)):
        return "Lightning checkpoint with backbone.*/projector.* keys (no args.json beside it)"
    return None


def _lightning_encoder(evidence: Evidence) -> str | None:
    if evidence.prefix == "encoder." and _lightning(evidence):
        return "Lightning checkpoint with older solo-learn encoder.* keys (no args.json beside it)"
    return None


#: the older encoder.* rule runs after the study's (a finetuned study encoder has head.* keys)
FORMAT = Format("solo-learn", extract, rules=(Rule(40, _args_json), Rule(50, _lightning_backbone),
                                              Rule(70, _lightning_encoder)))
