"""The checkpoint formats are one registry of objects whose names are CheckpointSpec.format's, and the
RadImageNet port is a timm model like any other; baselines carry their leaderboard role."""
from __future__ import annotations

import typing
import warnings
from pathlib import Path

import pytest
import timm
import torch

from baselines import builtin_checkpoints, materializer
from benchmark.core.errors import CheckpointError
from benchmark.core.specs import CheckpointFormat, CheckpointSpec
from benchmark.models.backbones import create_backbone
from benchmark.models.formats import CHECKPOINT_FORMATS, FORMATS, Format, get_format
from benchmark.models.formats.registry import DETECTION_RULES
from benchmark.models.radimagenet_resnet import INPUT_MEAN, RadImageNetResNet50


def test_registry_names_are_the_spec_literal_in_its_order():
    assert tuple(CHECKPOINT_FORMATS) == typing.get_args(CheckpointFormat) == FORMATS
    assert all(isinstance(f, Format) and f.name == name for name, f in CHECKPOINT_FORMATS.items())


def test_every_spec_format_value_validates_and_resolves():
    for name in typing.get_args(CheckpointFormat):
        spec = CheckpointSpec(name="x", arch="resnet18", pretraining_domain="none", format=name)
        assert get_format(spec.format, Path("x")).name == name


def test_unknown_format_lists_the_known_ones_in_order():
    with pytest.raises(CheckpointError, match="unknown checkpoint format 'keras'; known: timm, safetensors, "
                                              "torchvision, solo-learn, lightly, study, radimagenet, radiologynet, "
                                              "transformers, open_clip, dinov2, mae, beit"):
        get_format("keras", Path("w.pth"))


def test_detection_rules_have_one_order_and_timm_comes_last():
    priorities = [rule.priority for rule, _ in DETECTION_RULES]
    assert priorities == sorted(set(priorities))
    assert [fmt.name for _, fmt in DETECTION_RULES] == [
        "transformers", "radiologynet", "open_clip", "open_clip", "lightly", "lightly", "solo-learn", "solo-learn",
        "study", "solo-learn", "radimagenet", "dinov2", "mae", "beit", "safetensors", "timm"]


def test_every_format_hints_its_input_convention():
    for fmt in CHECKPOINT_FORMATS.values():
        hint = fmt.hint()
        assert set(hint) == {"mean", "std", "channel_order"} and len(hint["mean"]) == len(hint["std"]) == 3
    assert CHECKPOINT_FORMATS["radimagenet"].hint() == {"mean": list(INPUT_MEAN), "std": [1.0, 1.0, 1.0],
                                                        "channel_order": "BGR"}


def test_radimagenet_port_is_a_registered_timm_model():
    assert "radimagenet_resnet50" in timm.list_models("radimagenet*")
    cfg = timm.models.get_pretrained_cfg("radimagenet_resnet50")
    assert cfg.first_conv == "conv1" and cfg.mean == INPUT_MEAN
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = create_backbone("radimagenet_resnet50", in_chans=1)
    assert isinstance(model, RadImageNetResNet50) and model.conv1.weight.shape[1] == 1
    assert set(model.state_dict()) == set(RadImageNetResNet50().state_dict())  # no fc with num_classes=0
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 1, 64, 64)).shape == (1, 2048)


def test_radimagenet_format_builds_the_port_for_resnet50_only():
    fmt = CHECKPOINT_FORMATS["radimagenet"]
    assert fmt.model_name("resnet50", Path("w")) == fmt.model_name("radimagenet_resnet50", Path("w"))
    with pytest.raises(CheckpointError, match="w: the RadImageNet port is a ResNet50, not resnet18"):
        fmt.model_name("resnet18", Path("w"))
    assert CHECKPOINT_FORMATS["timm"].model_name("resnet18", Path("w")) == "resnet18"


def test_baselines_carry_their_leaderboard_role():
    roles = {spec.name: spec.baseline_role for spec in builtin_checkpoints()}
    assert roles == {"random": "random", "random-resnet50": "random", "imagenet": "natural",
                     "demo-natural-simclr": "natural", "demo-ct-simclr": None, "radnet": None,
                     "imagenet-simclr": "natural", "random-vit": None}


def test_materializers_by_baseline():
    made = {spec.name: materializer(spec.name) for spec in builtin_checkpoints()}
    assert {name for name, make in made.items() if make} == {"random", "random-resnet50", "demo-ct-simclr",
                                                            "demo-natural-simclr", "random-vit"}
    assert materializer("imagenet", allow_download=True) is not None and materializer("radnet", True) is None
    assert materializer("not-a-baseline", True) is None
