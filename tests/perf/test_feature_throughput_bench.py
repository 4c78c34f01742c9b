"""Comparison 3: frozen-feature extraction throughput (images/s) of the demo backbone on CPU.

timm's test_resnet (the demo references' architecture, the `random` checkpoint's weights) at the
demo's 64 px and 3 window channels, through `benchmark.evaluation.features.extract` (float16 slices ->
normalised float32 -> pooled features under torch.inference_mode), at batch 1, 32 and 128.
The slices are real cached phantom slices; each round extracts the same THROUGHPUT_IMAGES.
"""
import numpy as np
import pytest
import torch

from benchmark.data.slices import SliceSet
from benchmark.evaluation.accel import Accelerator
from benchmark.evaluation.features import extract
from benchmark.models.load import load_backbone
from tests.perf.perfkit import THROUGHPUT_IMAGES

GROUP = "feature-throughput"


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("batch_size", [1, 32, 128])
def test_feature_extraction_throughput(benchmark, body_region, random_checkpoint, perf_report, pinned_threads,
                                       batch_size):
    cached = body_region.slices
    rows = np.arange(THROUGHPUT_IMAGES) % len(cached)
    images = np.ascontiguousarray(cached.images[rows])
    slices = SliceSet(images, cached.labels[rows], cached.patient_ids[rows],
                      np.asarray([str(i) for i in range(len(rows))]), "throughput")
    model = load_backbone(random_checkpoint).eval()
    accel = Accelerator.create(torch.device("cpu"))
    features = benchmark.pedantic(extract, args=(model, slices, random_checkpoint, accel, batch_size), rounds=3,
                                  warmup_rounds=1)
    assert features.shape == (len(rows), model.num_features) and np.isfinite(features).all()
    entry = perf_report.record(GROUP, f"batch-{batch_size}", benchmark, arch=random_checkpoint.arch,
                               size=int(images.shape[-1]), channels=int(images.shape[1]), batch_size=batch_size,
                               images=len(rows), threads=pinned_threads)
    if entry.get("median_s"):
        entry["images_per_s"] = len(rows) / entry["median_s"]
        benchmark.extra_info["images_per_s"] = entry["images_per_s"]
