"""Load any supported checkpoint onto its model, or report exactly how it fails to fit."""
from __future__ import annotations

import inspect as pyinspect
import sys
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
from timm.models import adapt_input_conv
from torch import nn

from benchmark.core.errors import CheckpointError
from benchmark.core.hashing import file_sha256
from benchmark.core.specs import InputConvention
from benchmark.models.backbones import create_backbone
from benchmark.models.formats.base import Extracted, Format
from benchmark.models.formats.detect import detect_format
from benchmark.models.formats.keys import (
    KeyReport,
    compare,
    infer_resnet,
    non_finite,
    parameter_count,
    shape_str,
    shorten,
)
from benchmark.models.formats.registry import CHECKPOINT_FORMATS, get_format
from benchmark.models.formats.safe_load import read_object


@dataclass
class Prepared:
    """A file mapped onto a (not yet loaded) model: everything inspect reports and load checks."""

    path: Path
    format: str
    format_reason: str
    arch: str
    arch_source: str
    model: nn.Module
    state: dict[str, torch.Tensor]
    report: KeyReport
    input_conv: dict
    non_finite: list[str]
    method: str = ""
    notes: list[str] = field(default_factory=list)
    arch_conflict: str | None = None
    resampled: list[str] = field(default_factory=list)
    #: how the weights see their input: the file's own convention, else its format's
    convention: InputConvention | None = None

    def summary(self) -> dict:
        """JSON-ready record of how the file was loaded (provenance)."""
        return {"path": str(self.path), "format": self.format, "format_reason": self.format_reason,
                "arch": self.arch, "arch_source": self.arch_source, "arch_conflict": self.arch_conflict,
                "method": self.method, "build": getattr(self.model, "ctbench_build", {}),
                "resampled": list(self.resampled),
                "keys": self.report.as_dict(), "input_conv": dict(self.input_conv),
                "input_hint": CHECKPOINT_FORMATS[self.format].hint(),
                "input_convention": (self.convention or CHECKPOINT_FORMATS[self.format].convention).model_dump(
                    mode="json"),
                "notes": list(self.notes)}


def prepare(path: Path | str, arch: str | None = None, fmt: str | None = None, in_chans: int | None = None,
            img_size: int | None = None, pooling: str = "model") -> Prepared:
    """Read ``path`` safely and map it onto ``arch`` built for ``img_size`` px input (its native size when
    None); mismatches are reported, not raised. Position embeddings (and other size-bound tensors) saved
    at another size are resampled by timm's own checkpoint filter for the family, and listed."""
    path = Path(path)
    obj, notes = read_object(path)
    if fmt is None:
        fmt, reason = detect_format(path, obj)
    else:
        reason = "given explicitly"
    form = get_format(fmt, path)
    extracted = form.extract(obj, path)
    arch, arch_source, conflict = _architecture(path, arch, extracted, form)
    model_name = form.model_name(arch, path)
    file_chans = _first_conv_channels(extracted, model_name)
    kwargs = dict(extracted.model_kwargs)
    native = kwargs.pop("img_size", None)  # the size the file's config records: the build's when none is asked
    model = _build(model_name, in_chans or file_chans or 3, path, img_size or native, pooling, kwargs)
    extracted.state, resampled = resample(extracted.state, model)
    report, kept, input_conv = match(extracted, model)
    return Prepared(path=path, format=fmt, format_reason=reason, arch=arch, arch_source=arch_source, model=model,
                    state=kept, report=report, input_conv=input_conv, non_finite=non_finite(kept),
                    method=extracted.method, notes=notes + extracted.notes + model.ctbench_build["notes"],
                    arch_conflict=conflict, resampled=resampled, convention=extracted.convention or form.convention)


def resample(state: dict[str, torch.Tensor], model: nn.Module) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Tensors whose shape depends on the input size (a ViT's ``pos_embed``, a Swin's relative position
    tables), brought to ``model``'s size by the ``checkpoint_filter_fn`` timm keeps beside the model class,
    as timm itself does when it loads pretrained weights at another ``img_size``. Only keys whose shape
    differs are taken from the filter (it may also convert other layouts; that is a format's job, with
    its own evidence); each is listed as ``key: old -> new``."""
    expected = model.state_dict()
    mismatched = [k for k, v in state.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    filter_fn = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
    if not mismatched or filter_fn is None:
        return state, []
    try:
        filtered = filter_fn(dict(state), model)
    except Exception:  # noqa: BLE001 - a filter that cannot take the file leaves the mismatch to the key report
        return state, []
    fixed = [k for k in mismatched if k in filtered and tuple(filtered[k].shape) == tuple(expected[k].shape)]
    record = [f"{k}: {shape_str(state[k].shape)} -> {shape_str(expected[k].shape)}" for k in fixed]
    return {**state, **{k: filtered[k].contiguous() for k in fixed}}, record


def match(extracted: Extracted, model: nn.Module) -> tuple[KeyReport, dict[str, torch.Tensor], dict]:
    """How an adapter's tensors fit ``model``: the key report, the tensors to load (the model's and the
    format's head keys taken out), and the input-conv record. Raises nothing for keys that do not fit."""
    expected = model.state_dict()
    state, input_conv = _adapt_input_conv(extracted.state, model, expected)
    report, kept = compare(state, expected, _head_prefixes(model) + extracted.head_prefixes)
    report.dropped = dict(extracted.dropped)
    return report, kept, input_conv


def load_checkpoint(path: Path | str, arch: str | None = None, fmt: str | None = None, in_chans: int | None = None,
                    img_size: int | None = None, pooling: str = "model") -> Prepared:
    """Like :func:`prepare`, but every mismatch or non-finite weight is a CheckpointError; the model is loaded, eval()."""
    prepared = prepare(path, arch, fmt, in_chans, img_size, pooling)
    target = f"{prepared.arch} ({prepared.format})"
    if prepared.arch_conflict:
        raise CheckpointError(prepared.arch_conflict, prepared.path)
    if not prepared.report.ok:
        looks = infer_resnet(prepared.state) if CHECKPOINT_FORMATS[prepared.format].resnet_layout else None
        hint = f"; the file's keys look like {looks}" if looks and looks != prepared.arch else ""
        raise CheckpointError(prepared.report.problem(target) + hint, prepared.path)
    if prepared.non_finite:
        raise CheckpointError(f"non-finite (NaN/Inf) weights in {len(prepared.non_finite)} tensors "
                              f"{shorten(prepared.non_finite, 10)}", prepared.path)
    prepared.model.load_state_dict(prepared.state, strict=True)
    prepared.model.eval()
    return prepared


def inspect_checkpoint(path: Path | str, arch: str | None = None, fmt: str | None = None,
                       img_size: int | None = None) -> dict:
    """A JSON-ready report on ``path``; raises only for unreadable or unsafe files (or an unknowable arch)."""
    prepared = prepare(path, arch, fmt, img_size=img_size)
    summary = prepared.summary()
    summary.update(sha256=file_sha256(prepared.path), parameters=parameter_count(prepared.state),
                   model_parameters=sum(p.numel() for p in prepared.model.parameters()),
                   finite=not prepared.non_finite, non_finite=list(prepared.non_finite),
                   input_channels=prepared.input_conv.get("file_channels"), ok=prepared.report.ok
                   and not prepared.non_finite and not prepared.arch_conflict)
    return summary


def _architecture(path: Path, arch: str | None, extracted: Extracted,
                  form: Format) -> tuple[str, str, str | None]:
    """The architecture, where it came from, and a conflict between the given one and the file's own record."""
    if arch:
        conflict = None
        if extracted.arch and arch not in (extracted.arch, *form.arch_aliases):
            conflict = f"{extracted.arch_source} means timm {extracted.arch}, but the architecture given is {arch}"
        return arch, "given", conflict
    if extracted.arch:
        return extracted.arch, extracted.arch_source, None
    inferred = infer_resnet(extracted.state) if form.resnet_layout else None
    if inferred:
        return inferred, "inferred from key names and shapes", None
    raise CheckpointError("cannot tell the architecture from the keys; name it (--arch, a timm model name)", path)


def _first_conv_channels(extracted: Extracted, model_name: str) -> int | None:
    first = "conv1"
    try:
        cfg = timm.models.get_pretrained_cfg(model_name)
        first = (cfg.first_conv if cfg is not None and cfg.first_conv else first)
    except Exception:  # noqa: BLE001 - unknown names fail later, with a clear message
        pass
    names = [first] if isinstance(first, str) else list(first)
    weight = next((extracted.state[f"{n}.weight"] for n in names if f"{n}.weight" in extracted.state), None)
    return int(weight.shape[1]) if weight is not None and weight.ndim == 4 else None


def _build(model_name: str, in_chans: int, path: Path, img_size: int | None, pooling: str,
           model_kwargs: dict) -> nn.Module:
    try:
        return create_backbone(model_name, in_chans, img_size, pooling, **model_kwargs)
    except CheckpointError as exc:
        raise CheckpointError(str(exc), path) from None


def _head_prefixes(model: nn.Module) -> tuple[str, ...]:
    classifier = getattr(model, "pretrained_cfg", {}).get("classifier") or ()
    return (classifier,) if isinstance(classifier, str) else tuple(classifier)


def _first_conv_key(model: nn.Module, expected: dict) -> str | None:
    first = getattr(model, "pretrained_cfg", {}).get("first_conv")
    names = [first] if isinstance(first, str) else list(first or [])
    return next((f"{n}.weight" for n in names if f"{n}.weight" in expected), None)


def _adapt_input_conv(state: dict[str, torch.Tensor], model: nn.Module,
                      expected: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Map a 1-channel stem onto 3-channel input or back with timm's adapt_input_conv, and say so."""
    key = _first_conv_key(model, expected)
    if key is None or key not in state or state[key].ndim != 4 or expected[key].ndim != 4:
        return state, {"key": key, "file_channels": None, "model_channels": None, "adapted": False}
    have, want = int(state[key].shape[1]), int(expected[key].shape[1])
    record = {"key": key, "file_channels": have, "model_channels": want, "adapted": have != want}
    if have == want or state[key].shape[0] != expected[key].shape[0]:
        record["adapted"] = False
        return state, record
    weight = state[key]
    if "base_chans" in pyinspect.signature(adapt_input_conv).parameters:
        new = adapt_input_conv(want, weight, base_chans=have)
    elif want == 1:
        new = adapt_input_conv(want, weight)
    elif have == 1:  # older timm: same rule by hand (repeat the channel, scale by 1/want)
        new = weight.repeat(1, want, 1, 1) / want
    else:
        new = adapt_input_conv(want, weight)
    record["how"] = ("summed over the file's input channels" if want == 1 else
                     f"repeated to {want} channels and scaled by {have}/{want}")
    return {**state, key: new}, record
