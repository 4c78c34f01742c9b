"""Property tests for the key adapters (``benchmark/models/formats``): a state dict in any layout a training
library leaves (wrapper dicts, ``module.``/``_orig_mod.`` prefixes, solo-learn, lightly, the study's
encoders, RadiologyNET, heads, projectors, momentum copies, stray keys) either maps onto timm's resnet18
with the very same tensor objects, or fails with a one-line CheckpointError that names the file and
the keys. Never a KeyError, an IndexError, an endless loop or a silently overwritten weight.

Bounded and reproducible: tests/faults/conftest.py runs Hypothesis derandomised, without a database.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from hypothesis import given
from hypothesis import strategies as st

from benchmark.core.errors import CheckpointError
from benchmark.models.backbones import create_backbone
from benchmark.models.formats import CHECKPOINT_FORMATS, detect_format, timm_dict
from benchmark.models.formats.keys import (
    PREFIXES,
    SHOWN,
    WRAPPER_KEYS,
    infer_resnet,
    non_finite,
    strip_wrappers,
    unwrap,
)
from benchmark.models.formats.loader import match
from tests.fixtures import checkpoints as fx

PATH = Path("/nonexistent-ctbench-fuzz/weights.ckpt")  # only named in errors; no args.json can sit beside it
LIGHTLY_INDEX = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
NOISE = ("layer5.0.conv1.weight", "blocks.0.attn.qkv.weight", "stem.conv.weight")  # backbone-namespace strays
LAYOUTS = ("timm", "torchvision", "solo-learn", "lightly", "study", "radiologynet")
DETECTED_AS = {"torchvision": "timm"}  # torchvision ResNets share timm's keys: detection calls them timm


@lru_cache(maxsize=None)
def source() -> dict[str, torch.Tensor]:
    """The tensors every generated file holds (by reference: identity is what the properties check)."""
    return dict(fx.source_model("resnet18", seed=4).state_dict())


@lru_cache(maxsize=None)
def target() -> torch.nn.Module:
    return create_backbone("resnet18")


@lru_cache(maxsize=None)
def backbone() -> tuple[str, ...]:
    return tuple(sorted(target().state_dict()))


def small() -> torch.Tensor:
    return torch.zeros(3)


def file_key(layout: str, key: str, encoder: bool) -> str:
    """Where a timm-named backbone tensor sits in a file of ``layout``."""
    if layout == "solo-learn":
        return ("encoder." if encoder else "backbone.") + key
    if layout == "lightly":
        head, _, tail = key.partition(".")
        return f"backbone.{LIGHTLY_INDEX.get(head, '8.' + head)}.{tail}"  # strays sit at avgpool's index 8
    if layout == "study":
        return "encoder." + key
    if layout == "radiologynet":
        return "model." + key
    return key


def unexpected_name(layout: str, stray: str) -> str:
    """The name a stray key keeps after the adapter (lightly keeps unknown indices as they are, under backbone.)."""
    return file_key(layout, stray, False) if layout == "lightly" else stray


def conventions(layout: str, keys: list[str], encoder: bool) -> dict[str, torch.Tensor]:
    """What the layout keeps beside its backbone: heads (ignored) and projectors or momentum copies (dropped)."""
    if layout in ("timm", "torchvision"):
        return {"fc.weight": small(), "fc.bias": small()}
    if layout == "solo-learn":
        momentum = "momentum_encoder." if encoder else "momentum_backbone."
        return {**{momentum + k: source()[k] for k in keys[:5]}, "projector.0.weight": small(),
                "classifier.weight": small()}
    if layout == "lightly":
        return {"projection_head.layers.0.weight": small(), "backbone_momentum.0.weight": small()}
    if layout == "study":
        return {"head.weight": small(), "head.bias": small()}
    return {"model.fc.weight": small(), "model.fc.bias": small()}


def wrap(layout: str, state: dict, containers: list[str]) -> dict:
    """The top-level object as the layout's training code saves it."""
    if layout == "solo-learn":
        return {"state_dict": state, "pytorch-lightning_version": "2.2.1", "epoch": 9}
    if layout == "radiologynet":
        return {"model_state": state, "model_name": "ResNet18", "epoch": 7}
    for container in containers:
        state = {container: state, "epoch": 3, "arch": "resnet18"}
    return state


@dataclass(repr=False)
class Case:
    """One generated file: its layout, top-level object, the backbone keys in it, stray keys, doubled weight."""

    layout: str
    obj: dict
    kept: list[str]
    strays: list[str]
    twice: str  # '', 'wrapper' or 'bare'
    prefix: str
    containers: list[str]

    def __repr__(self) -> str:  # what Hypothesis prints for a failing case: the recipe, not 11M numbers
        left_out = sorted(set(backbone()) - set(self.kept))
        return (f"Case({self.layout}, prefix={self.prefix!r}, containers={self.containers}, "
                f"{len(self.kept)} backbone keys, left out {left_out[:6]}{'...' if len(left_out) > 6 else ''}, "
                f"strays={self.strays}, twice={self.twice!r})")


@st.composite
def layout_files(draw) -> Case:
    """A file as a training library of ``layout`` saves it, maybe missing keys, with strays or a doubled weight."""
    keys = backbone()
    drop = draw(st.one_of(st.just(set()), st.sets(st.sampled_from(keys), max_size=6),
                          st.sets(st.sampled_from(keys), min_size=len(keys) - 3)))
    kept = [k for k in keys if k not in drop]
    layout = draw(st.sampled_from(LAYOUTS))
    encoder = draw(st.booleans())
    strays = draw(st.lists(st.sampled_from(NOISE), unique=True, max_size=2))
    prefix = "".join(draw(st.lists(st.sampled_from(PREFIXES), max_size=3)))
    # the same weight under a second spelling that means the same name: behind a wrapper prefix, or (where
    # the adapter's prefix is optional: the study's encoder., RadiologyNET's model.) without the prefix
    spellings = ("wrapper", "bare") if layout in ("study", "radiologynet") else ("wrapper",)
    twice = draw(st.sampled_from(("", "", *spellings))) if kept else ""
    state = {file_key(layout, k, encoder): source()[k] for k in kept}
    state.update({file_key(layout, s, encoder): small() for s in strays})
    state.update(conventions(layout, kept, encoder))
    state = {prefix + k: v for k, v in state.items()}
    if twice == "wrapper":
        state[("" if prefix else "module.") + file_key(layout, kept[0], encoder)] = source()[kept[0]].clone()
    elif twice == "bare":
        state[prefix + kept[0]] = source()[kept[0]].clone()
    containers = draw(st.lists(st.sampled_from(WRAPPER_KEYS), max_size=2))
    return Case(layout, wrap(layout, state, containers), kept, strays, twice, prefix, containers)


def assert_names_file(error: CheckpointError) -> str:
    message = str(error)
    assert message.startswith(f"{PATH}: ") and "\n" not in message, message
    return message


@given(layout_files())
def test_known_layouts_map_exactly_or_fail_naming_keys(case):
    layout, obj, kept, strays, twice = case.layout, case.obj, case.kept, case.strays, case.twice
    fmt = DETECTED_AS.get(layout, layout)
    if kept or strays:
        assert detect_format(PATH, obj)[0] == fmt
    try:
        extracted = CHECKPOINT_FORMATS[fmt].extract(obj, PATH)
    except CheckpointError as error:
        message = assert_names_file(error)
        assert twice or not (kept or strays), message  # only a doubled weight or an empty backbone may refuse
        assert not twice or "both become" in message
        return
    assert not twice, "a weight stored twice was silently resolved"
    report, state, _ = match(extracted, target())
    assert report.missing == sorted(set(backbone()) - set(kept))
    if not (kept or strays):
        return  # nothing of the backbone in the file: which leftovers count as unexpected depends on the format
    assert report.unexpected == sorted(unexpected_name(layout, s) for s in strays)
    assert report.shape_mismatch == [] and report.matched == len(kept)
    assert all(state[k] is source()[k] for k in kept), "a backbone tensor was copied or swapped"
    again = timm_dict.extract(state, PATH).state  # idempotent: timm names map onto themselves, same objects
    assert again.keys() == state.keys() and all(again[k] is state[k] for k in state)
    if report.ok:
        target().load_state_dict(state, strict=True)
        assert all(torch.equal(v, source()[k]) for k, v in target().state_dict().items())
        assert infer_resnet(state) == "resnet18"
    else:
        problem = report.problem("resnet18 (timm)")
        assert "\n" not in problem
        assert all(part.count(", ") <= SHOWN for part in problem.split("["))  # lists cut to SHOWN names + "more"


KEY_PARTS = st.sampled_from(("module.", "_orig_mod.", "backbone.", "encoder.", "model.", "momentum_backbone.",
                             "projector.", "projection_head.", "backbone.0.", "backbone.4.", "backbone.99.",
                             "head.", "fc.", "classifier.", "", ".", "backbone..", "layer1.0.", "conv1."))
KEYS = st.one_of(st.tuples(KEY_PARTS, KEY_PARTS, st.deferred(lambda: st.sampled_from(backbone()))).map("".join),
                 st.text(max_size=20), st.integers(-3, 3))
VALUES = st.one_of(st.deferred(lambda: st.sampled_from(backbone()).map(lambda k: source()[k])),
                   st.just(torch.tensor(1.0)), st.just(torch.zeros(0)), st.just(torch.tensor(float("nan"))),
                   st.integers(), st.none(), st.text(max_size=5))
TOP_KEYS = st.sampled_from((*WRAPPER_KEYS, "model_state", "model_name", "epoch", "optimizer_states",
                            "pytorch-lightning_version"))


@st.composite
def any_files(draw):
    """Arbitrary dicts of tensors and junk, nested under arbitrary wrapper keys."""
    obj = draw(st.dictionaries(KEYS, VALUES, max_size=12))
    for key in draw(st.lists(TOP_KEYS, max_size=3)):
        obj = {key: obj, **draw(st.dictionaries(TOP_KEYS, st.one_of(VALUES, st.just(obj)), max_size=2))}
    if draw(st.booleans()) and draw(st.booleans()):
        obj[draw(st.sampled_from(WRAPPER_KEYS))] = obj  # a pickle can hold a dict that contains itself
    return obj


@given(any_files(), st.sampled_from(sorted(CHECKPOINT_FORMATS)))
def test_any_dict_under_any_format_maps_or_fails_with_a_checkpoint_error(obj, fmt):
    """The other exceptions (KeyError, IndexError, TypeError...) would reach the user as a traceback."""
    try:
        detected, reason = detect_format(PATH, obj)
        assert detected in CHECKPOINT_FORMATS and reason
        extracted = CHECKPOINT_FORMATS[fmt].extract(obj, PATH)
        infer_resnet(extracted.state)
        non_finite(extracted.state)
        if CHECKPOINT_FORMATS[fmt].timm_model is None:  # keys for a timm ResNet, not a port of its own
            report, _, _ = match(extracted, target())
            assert "\n" not in report.problem("resnet18")
    except CheckpointError as error:
        assert_names_file(error)


@given(st.text(max_size=30), st.lists(st.sampled_from(PREFIXES), max_size=4))
def test_stripping_wrappers_is_idempotent(key, prefixes):
    once = strip_wrappers("".join(prefixes) + key)
    assert strip_wrappers(once) == once and not once.startswith(PREFIXES)


@given(any_files())
def test_unwrapping_is_idempotent(obj):
    inner = unwrap(obj)
    assert unwrap(inner) is inner
