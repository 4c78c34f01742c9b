"""A paper-scale rehearsal of the CUDA path: the real protocols on a fake slice cache.

Feature-extraction throughput (fp32, and bf16 + channels_last), then ``finetune`` with the
study's body-region recipe (LARS, effective batch 4096 through gradient accumulation) and
``seg-finetune`` with its LiTS recipe (AdamW, batch 128, U-Net), each for a bounded number of
steps. The data is what the paper profile feeds: 256 px raw HU stored as a memory-mapped int16
array (one channel, as the cache stores grey CT), mapped by the study's ``minmax_grey3``
convention and augmented on the device. Each training run reports images per second, the
fraction of time the loop waited for data, peak device memory and the micro-batch it settled on.
The last line printed is the whole report as JSON.

``scripts/gpu_check.sh`` runs it on a lent GPU within 10 minutes; ``--smoke`` runs the same
code on a CPU in seconds (32 px, a few images, timm's ``test_resnet``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmark.core.specs import CheckpointSpec, TaskSpec, input_convention
from benchmark.data.slices import SliceSet
from benchmark.evaluation.accel import Accelerator
from benchmark.evaluation.inputs import InputPipeline
from benchmark.evaluation.profiles import PROFILES
from benchmark.evaluation.protocols import PROTOCOLS, JobContext
from benchmark.evaluation.recipes import study_recipe
from benchmark.models.backbones import create_backbone

STAGE = {"values": "raw", "interpolation": "bilinear"}  # the study's cache: raw values, resized bilinearly
TARGET_TRAIN_IMG_PER_S = 2500  # ResNet-50 at 256 px, bf16, on one H100 (issue 17)
TARGET_DATA_WAIT = 0.10
WRITE_ROWS = 512  # rows generated per write, so the fake cache never sits whole in memory


@dataclasses.dataclass(frozen=True)
class Scale:
    size: int
    extract_batch: int
    extract_steps: int
    region_batch: int  # body-region's effective batch (the study's 4096)
    region_steps: int
    lits_batch: int
    lits_steps: int
    test_rows: int


PAPER = Scale(size=256, extract_batch=256, extract_steps=40, region_batch=4096, region_steps=3, lits_batch=128,
              lits_steps=30, test_rows=512)
SMOKE = Scale(size=32, extract_batch=4, extract_steps=2, region_batch=8, region_steps=2, lits_batch=4,
              lits_steps=2, test_rows=4)


def fake_cache(folder: Path, n: int, size: int, labels: np.ndarray, key: str) -> SliceSet:
    """Raw HU in an int16 memory map: a bright disc on air, plus noise, so minmax has work to do."""
    images = np.lib.format.open_memmap(folder / f"{key}.npy", mode="w+", dtype=np.int16, shape=(n, 1, size, size))
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    disc = np.where((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2, 1024, -1000).astype(np.int16)
    for start in range(0, n, WRITE_ROWS):
        rows = min(WRITE_ROWS, n - start)
        images[start:start + rows, 0] = disc + rng.integers(-200, 200, size=(rows, size, size), dtype=np.int16)
    images.flush()
    ids = np.arange(n).astype(str)
    return SliceSet(images, labels, ids, ids, key, stage=dict(STAGE))


def extraction_throughput(arch: str, accel: Accelerator, slices: SliceSet, batch: int) -> float:
    """``features.extract`` over the fake cache, as a ``linear`` job runs it (rows gathered from the
    memory map, mapped on the device), after one warm-up batch (cuDNN autotuning, compile)."""
    from benchmark.evaluation.features import extract

    model = accel.prepare(create_backbone(arch))  # once: extract's own prepare then only moves it, never recompiles
    accel = dataclasses.replace(accel, compile=False)
    spec = CheckpointSpec(name="gpu-check", arch=arch, pretraining_domain="none", input=input_convention("minmax_grey3"))
    inputs = InputPipeline(spec.input, "ct", mapped=False)
    warm = dataclasses.replace(slices, images=slices.images[:batch], labels=slices.labels[:batch],
                               patient_ids=slices.patient_ids[:batch], case_ids=slices.case_ids[:batch])
    extract(model, warm, spec, accel, batch, inputs)
    _sync(accel)
    started = time.perf_counter()
    extract(model, slices, spec, accel, batch, inputs)
    _sync(accel)
    return len(slices) / (time.perf_counter() - started)


def rehearse(protocol: str, task: TaskSpec, slices: SliceSet, n_train: int, arch: str, accel: Accelerator,
             steps: int) -> dict:
    """One real protocol run on ``slices``: the first ``n_train`` rows train, the rest are the test split."""
    profile = dataclasses.replace(PROFILES["paper"], image_size=slices.images.shape[-1], training_overrides=dict(
        epochs=1, max_steps=steps, selection="last"))
    idx = np.arange(len(slices))
    inputs = InputPipeline(input_convention("minmax_grey3"), "ct", mapped=False)
    torch.manual_seed(0)
    ctx = JobContext(task, CheckpointSpec(name="gpu-check", arch=arch, pretraining_domain="none"), slices,
                     idx[:n_train], idx[n_train:], idx[n_train:], 0, lambda: None,
                     backbone=lambda: create_backbone(arch), accel=accel, profile=profile, inputs=inputs)
    if accel.is_cuda:
        torch.cuda.reset_peak_memory_stats(accel.device)
    started = time.perf_counter()
    outcome = PROTOCOLS.get(protocol).run(ctx)
    _sync(accel)
    hyper, epoch = outcome.hyperparameters, outcome.notes["throughput"][-1]
    return {"protocol": protocol, "effective_batch": hyper["recipe"]["batch_size"], "steps": hyper["steps"],
            "micro_batch": hyper["micro_batch"], "accumulation_steps": hyper["accumulation_steps"],
            "train_img_per_s": round(epoch["images_per_s"], 1),
            "data_wait_fraction": round(epoch["data_wait_fraction"], 3),
            "peak_memory_gib": round(torch.cuda.max_memory_allocated(accel.device) / 2**30, 2)
            if accel.is_cuda else None,
            "wall_s": round(time.perf_counter() - started, 1), "test_" + task.main_metric: outcome.metrics[
                task.main_metric]}


def body_region(folder: Path, scale: Scale, arch: str, accel: Accelerator) -> dict:
    classes = ["head", "neck", "chest", "abdomen", "pelvis", "legs"]
    recipe = study_recipe("body-region", batch_size=scale.region_batch)
    n_train = scale.region_batch * scale.region_steps
    labels = np.arange(n_train + scale.test_rows) % len(classes)
    slices = fake_cache(folder, len(labels), scale.size, labels, "body-region")
    task = TaskSpec(name="gpu-check-body-region", version="1", domain="ct", kind="classification",
                    class_names=classes, metrics=["accuracy"], main_metric="accuracy", training=recipe)
    return rehearse("finetune", task, slices, n_train, arch, accel, scale.region_steps)


def lits(folder: Path, scale: Scale, arch: str, accel: Accelerator) -> dict:
    recipe = study_recipe("lits", batch_size=scale.lits_batch)
    n_train = scale.lits_batch * scale.lits_steps
    n, size = n_train + scale.test_rows, scale.size
    masks = np.lib.format.open_memmap(folder / "lits-masks.npy", mode="w+", dtype=np.uint8, shape=(n, size, size))
    yy, xx = np.mgrid[:size, :size]
    liver = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2).astype(np.uint8)
    masks[:] = liver + (liver & (xx < size / 2))  # background, liver, a tumour on its left half
    slices = fake_cache(folder, n, size, masks, "lits")
    task = TaskSpec(name="gpu-check-lits", version="1", domain="ct", kind="segmentation",
                    class_names=["background", "liver", "tumour"], metrics=["dice_mean"], main_metric="dice_mean",
                    training=recipe)
    return rehearse("seg-finetune", task, slices, n_train, arch, accel, scale.lits_steps)


def _sync(accel: Accelerator) -> None:
    if accel.is_cuda:
        torch.cuda.synchronize(accel.device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.execution.gpu_check", description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--micro-batch", type=int, default=None,
                        help="cap the training micro-batch (default: the recipe's, halved on out-of-memory)")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU: a test of the code path")
    args = parser.parse_args(argv)
    scale = SMOKE if args.smoke else PAPER
    if args.smoke:
        args.device, args.arch, args.micro_batch = "cpu", "test_resnet", args.micro_batch or scale.region_batch // 2
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device is visible (use --smoke for a CPU test)", file=sys.stderr)
        return 2
    plain = Accelerator(device, "fp32", channels_last=False, compile=args.compile)
    fast = Accelerator.create(device, "auto" if device.type == "cuda" else "bf16", compile=args.compile)
    fast = dataclasses.replace(fast, channels_last=True)
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "arch": args.arch, "size": scale.size}
    with tempfile.TemporaryDirectory(prefix="ctbench-gpu-check-") as tmp:
        n = scale.extract_batch * scale.extract_steps
        slices = fake_cache(Path(tmp), n, scale.size, np.zeros(n, np.int64), "extract")
        for label, accel in (("fp32", plain), (f"{fast.precision}+channels_last", fast)):
            rate = extraction_throughput(args.arch, accel, slices, scale.extract_batch)
            report[f"extract_img_per_s_{label}"] = round(rate, 1)
            print(f"feature extraction {args.arch} {scale.size}px {label}: {rate:,.0f} img/s", flush=True)
    train_accel = Accelerator.create(device, compile=args.compile) if device.type == "cuda" else plain
    train_accel = dataclasses.replace(train_accel, micro_batch=args.micro_batch)
    with tempfile.TemporaryDirectory(prefix="ctbench-gpu-check-") as tmp:
        for name, run in (("finetune_body_region", body_region), ("seg_finetune_lits", lits)):
            report[name] = run(Path(tmp), scale, args.arch, train_accel)
            print(f"{name} ({train_accel.precision}): {json.dumps(report[name])}", flush=True)
    report["targets"] = {"train_img_per_s": TARGET_TRAIN_IMG_PER_S, "data_wait_fraction": TARGET_DATA_WAIT}
    runs = [report["finetune_body_region"], report["seg_finetune_lits"]]
    report["met"] = (all(r["data_wait_fraction"] <= TARGET_DATA_WAIT for r in runs)
                     and report["finetune_body_region"]["train_img_per_s"] >= TARGET_TRAIN_IMG_PER_S
                     ) if device.type == "cuda" and not args.smoke else None
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
