"""The CUDA fast path, measured: feature-extraction throughput in fp32 and in bf16 +
channels_last, then one short finetune through the real ``finetune`` protocol.

``scripts/gpu_check.sh`` runs it on a lent GPU (ResNet-50, 256 px); with ``--device cpu``
and a tiny model it is also a smoke test of the same code path on a CPU.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import numpy as np
import torch

from benchmark.core.specs import CheckpointSpec, TaskSpec
from benchmark.data.slices import SliceSet
from benchmark.evaluation.accel import Accelerator
from benchmark.evaluation.profiles import PROFILES
from benchmark.evaluation.protocols import PROTOCOLS, JobContext
from benchmark.models.backbones import create_backbone


def extraction_throughput(arch: str, accel: Accelerator, size: int, batch: int, steps: int) -> float:
    model = accel.prepare(create_backbone(arch)).eval()
    x = accel.to_device(torch.rand(batch, 3, size, size))
    with torch.inference_mode(), accel.autocast():
        for _ in range(3):  # warm-up: cuDNN autotuning, compile
            model(x)
        _sync(accel)
        started = time.perf_counter()
        for _ in range(steps):
            model(x)
        _sync(accel)
    return batch * steps / (time.perf_counter() - started)


def short_finetune(arch: str, accel: Accelerator, size: int, batch: int, steps: int) -> dict:
    """A two-class brightness task: any working training path learns it in a few steps."""
    rng = np.random.default_rng(0)
    n = batch * 2 + 64
    labels = rng.integers(0, 2, n)
    images = (rng.uniform(0, 0.4, (n, 3, size, size)) + 0.5 * labels[:, None, None, None]).astype(np.float16)
    slices = SliceSet(images, labels, np.arange(n).astype(str), np.arange(n).astype(str), "gpu-check")
    task = TaskSpec(name="gpu-check", version="1", domain="ct", kind="classification",
                    class_names=["dark", "bright"], metrics=["accuracy"], main_metric="accuracy")
    profile = dataclasses.replace(PROFILES["paper"], training_overrides=dict(
        optimizer="adamw", lr=1e-3, batch_size=batch, epochs=steps, max_steps=steps, selection="last"))
    torch.manual_seed(0)
    backbone = create_backbone(arch)
    idx = np.arange(n)
    ctx = JobContext(task, CheckpointSpec(name="gpu-check", arch=arch, pretraining_domain="none"), slices,
                     idx[: 2 * batch], idx[2 * batch: 2 * batch + 32], idx[2 * batch + 32:], 0, lambda: None,
                     backbone=lambda: backbone, accel=accel, profile=profile)
    started = time.perf_counter()
    outcome = PROTOCOLS.get("finetune").run(ctx)
    _sync(accel)
    wall = time.perf_counter() - started
    return {"steps": outcome.hyperparameters["steps"], "wall_s": round(wall, 2),
            "train_img_per_s": round(outcome.hyperparameters["steps"] * batch / wall, 1),
            "test_accuracy": outcome.metrics["accuracy"]}


def _sync(accel: Accelerator) -> None:
    if accel.is_cuda:
        torch.cuda.synchronize(accel.device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.execution.gpu_check", description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device is visible (use --device cpu for a smoke test)", file=sys.stderr)
        return 2
    plain = Accelerator(device, "fp32", channels_last=False, compile=args.compile)
    fast = Accelerator.create(device, "auto" if device.type == "cuda" else "bf16", compile=args.compile)
    fast = dataclasses.replace(fast, channels_last=True)
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "arch": args.arch, "size": args.size, "batch": args.batch}
    for label, accel in (("fp32", plain), (f"{fast.precision}+channels_last", fast)):
        rate = extraction_throughput(args.arch, accel, args.size, args.batch, args.steps)
        report[f"extract_img_per_s_{label}"] = round(rate, 1)
        print(f"feature extraction {args.arch} {args.size}px {label}: {rate:,.0f} img/s", flush=True)
    report["finetune"] = short_finetune(args.arch, fast, args.size, min(args.batch, 128), args.steps)
    print(f"short finetune ({fast.precision}+channels_last): {json.dumps(report['finetune'])}", flush=True)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
