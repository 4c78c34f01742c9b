"""Cost of one demo-profile training job (the default budget of 120 steps of batch 16 at 64 px,
validation, test predictions) for each training protocol: what the demo's 10-minute budget is made of."""
import copy

import numpy as np
import pytest
import torch

from benchmark.core.specs import CheckpointSpec, TaskSpec
from benchmark.data.slices import SliceSet
from benchmark.evaluation.profiles import DEMO_TRAINING
from benchmark.evaluation.protocols import PROTOCOLS, JobContext
from benchmark.models.backbones import create_backbone

SIZE, N = 64, 400
CK = CheckpointSpec(name="c", arch="test_resnet", pretraining_domain="none")
CLS = TaskSpec(name="t", version="1", domain="ct", kind="classification", class_names=list("abcdef"),
               metrics=["accuracy", "balanced_accuracy", "auc"], main_metric="accuracy")
SEG = TaskSpec(name="s", version="1", domain="ct", kind="segmentation", class_names=["bg", "liver", "lesion"],
               metrics=["dice_mean", "dice_liver", "dice_lesion"], main_metric="dice_mean")


def _context(task: TaskSpec) -> JobContext:
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (N, 3, SIZE, SIZE)).astype(np.float16)
    labels = (rng.integers(0, 3, (N, SIZE, SIZE)).astype(np.uint8) if task.kind == "segmentation"
              else rng.integers(0, 6, N))
    patients = np.asarray([f"p{i // 8}" for i in range(N)])
    slices = SliceSet(images, labels, patients, np.asarray([str(i) for i in range(N)]), "k")
    torch.manual_seed(0)
    model = create_backbone("test_resnet")
    idx = np.arange(N)
    return JobContext(task, CK, slices, idx[:256], idx[256:320], idx[320:], 42, lambda: None,
                      backbone=lambda: copy.deepcopy(model))  # each round starts from the same weights


@pytest.mark.parametrize("protocol,task", [("finetune", CLS), ("seg-linear", SEG), ("seg-finetune", SEG)])
def test_demo_training_job(benchmark, protocol, task):
    outcome = benchmark.pedantic(PROTOCOLS.get(protocol).run, args=(_context(task),), rounds=3, iterations=1)
    assert outcome.hyperparameters["steps"] == DEMO_TRAINING["max_steps"]
