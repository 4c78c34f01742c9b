"""Every protocol on every family of backbone a researcher submits, at the demo's 64 px (and a ViT at 256).

Each case is a checkpoint file in its real format, loaded through ``load_backbone`` at the
evaluated size exactly as a job loads it; the protocols then run a couple of steps each. The
checks are what breaks when a family is not really supported: every weight of the file reaches
the network that is evaluated (a ViT's position embedding resampled to the size), every metric is
a number, a finetuned encoder moved and a frozen one did not, and no job trains the shared copy.
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from benchmark.core.hashing import state_sha256
from benchmark.core.specs import INPUT_CONVENTIONS, CheckpointSpec, TaskSpec
from benchmark.data.slices import SliceSet
from benchmark.evaluation.accel import Accelerator
from benchmark.evaluation.features import extract
from benchmark.evaluation.profiles import PROFILES
from benchmark.evaluation.protocols import PROTOCOLS, JobContext
from benchmark.models.backbones import is_transformer
from benchmark.models.load import load_backbone
from tests.fixtures import foundation_checkpoints as foundation

DEMO = PROFILES["demo"].image_size
PROFILE = dataclasses.replace(PROFILES["demo"], batch_size=16, training_overrides={
    **PROFILES["demo"].training_overrides, "max_steps": 2, "epochs": 2, "batch_size": 8})
CLS = TaskSpec(name="bright", version="1", domain="ct", kind="classification", class_names=["dark", "bright"],
               metrics=["accuracy", "auc"], main_metric="accuracy")
SEG = TaskSpec(name="discs", version="1", domain="ct", kind="segmentation", class_names=["bg", "disc", "core"],
               metrics=["dice_disc", "dice_core", "dice_mean"], main_metric="dice_mean")
N, N_TRAIN, N_VAL = 40, 24, 8


def _timm_file(arch: str, folder: Path, **kwargs) -> Path:
    torch.manual_seed(0)
    path = folder / f"{arch}.safetensors"
    model = timm.create_model(arch, num_classes=0, **kwargs)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    return path


# (case id, how the file is written, CheckpointSpec fields, evaluated size)
CASES = {
    "resnet50": (lambda d: _timm_file("resnet50", d), dict(arch="resnet50"), DEMO),
    "densenet121": (lambda d: _timm_file("densenet121", d), dict(arch="densenet121"), DEMO),
    "efficientnet_b0": (lambda d: _timm_file("efficientnet_b0", d), dict(arch="efficientnet_b0"), DEMO),
    "convnext_atto": (lambda d: _timm_file("convnext_atto", d), dict(arch="convnext_atto"), DEMO),
    "vit224-at-64": (lambda d: _timm_file("vit_tiny_patch16_224", d), dict(arch="vit_tiny_patch16_224"), DEMO),
    "vit224-at-256": (lambda d: _timm_file("vit_tiny_patch16_224", d), dict(arch="vit_tiny_patch16_224"), 256),
    "swin_tiny": (lambda d: _timm_file("swin_tiny_patch4_window7_224", d), dict(arch="swin_tiny_patch4_window7_224"),
                  DEMO),
    "transformers-dinov2": (lambda d: foundation.dinov2_transformers(d), dict(format="transformers"), DEMO),
    "open_clip-vit": (lambda d: foundation.open_clip_openai(d), dict(format="open_clip"), DEMO),
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, tuple[CheckpointSpec, int]]:
    """One file per case, detected, and its spec as ``ctbench submit`` would write it."""
    from benchmark.models.formats import detect_format, prepare

    folder = tmp_path_factory.mktemp("matrix")
    specs = {}
    for case, (write, fields, size) in CASES.items():
        path = write(folder / case if fields.get("format") else folder)
        prepared = prepare(path, fields.get("arch"), fields.get("format") or detect_format(path)[0])
        convention = getattr(prepared, "convention", None) or INPUT_CONVENTIONS["imagenet_rgb"]
        specs[case] = (CheckpointSpec(name=case, arch=prepared.arch, weights=prepared.path, format=prepared.format,
                                      pretraining_domain="none", input=convention), size)
    return specs


def _images(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Brightness classes and disc masks on one set of images, in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    labels = rng.integers(0, 2, N)
    masks = np.zeros((N, size, size), np.uint8)
    for i in range(N):
        (cy, cx), r = rng.uniform(0.3, 0.7, 2) * size, size * rng.uniform(0.15, 0.25)
        masks[i][np.hypot(yy - cy, xx - cx) < r] = 1
        masks[i][np.hypot(yy - cy, xx - cx) < r / 2] = 2
    images = np.choose(masks, [0.1, 0.5, 0.95])[:, None] * (0.6 + 0.4 * labels[:, None, None, None])
    return np.repeat(images, 3, axis=1).astype(np.float16), labels, masks


def _context(task: TaskSpec, spec: CheckpointSpec, size: int, model: torch.nn.Module) -> JobContext:
    images, labels, masks = _images(size)
    slices = SliceSet(images, masks if task.kind == "segmentation" else labels,
                      np.asarray([f"p{i}" for i in range(N)]), np.asarray([f"c{i}" for i in range(N)]), "k")
    rows = np.arange(N)

    def features():
        return extract(copy.deepcopy(model), slices, spec, Accelerator(torch.device("cpu")), 16)

    return JobContext(task, spec, slices, rows[:N_TRAIN], rows[N_TRAIN:N_TRAIN + N_VAL], rows[N_TRAIN + N_VAL:], 42,
                      features, backbone=lambda: copy.deepcopy(model), profile=PROFILE)


@pytest.fixture(scope="module")
def loaded(checkpoints) -> dict[str, torch.nn.Module]:
    return {case: load_backbone(spec, size) for case, (spec, size) in checkpoints.items()}


@pytest.mark.parametrize("case", CASES)
def test_the_file_reaches_the_evaluated_network(case, checkpoints, loaded):
    spec, size = checkpoints[case]
    model = loaded[case]
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        features = model(x)
    assert features.ndim == 2 and torch.isfinite(features).all()
    record = model.ctbench_load
    assert record["keys"]["matched"] > 0 and not record["keys"]["missing"] and not record["keys"]["unexpected"]
    if case.startswith("vit224"):
        assert record["resampled"] == [f"pos_embed: 1x197x192 -> 1x{(size // 16) ** 2 + 1}x192"]


@pytest.mark.parametrize("protocol", ["linear", "knn", "finetune", "seg-linear", "seg-finetune"])
@pytest.mark.parametrize("case", CASES)
def test_every_protocol_runs_on_every_family(case, protocol, checkpoints, loaded):
    spec, size = checkpoints[case]
    task = SEG if protocol.startswith("seg") else CLS
    ctx = _context(task, spec, size, loaded[case])
    before = state_sha256(loaded[case])
    outcome = PROTOCOLS.get(protocol).run(ctx)
    assert state_sha256(loaded[case]) == before, "a job trained the checkpoint's own copy"
    assert all(np.isfinite(v) for v in outcome.metrics.values()), outcome.metrics
    assert 0 <= outcome.metrics[task.main_metric] <= 1
    hyper = outcome.hyperparameters
    if protocol == "seg-linear":
        assert hyper["encoder_sha256"]["before"] == hyper["encoder_sha256"]["after"]
    if protocol == "seg-finetune":
        assert hyper["encoder_sha256"]["before"] != hyper["encoder_sha256"]["after"]
    if protocol == "finetune":  # ViT finetuning's layer decay for transformers, the study's recipe for CNNs
        assert hyper["recipe"]["layer_decay"] == (0.65 if is_transformer(spec.arch) else None)
