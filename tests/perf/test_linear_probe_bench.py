"""Cost of one linear-protocol job (C sweep + refit) on cached features of the demo's size."""
import numpy as np

from benchmark.core.specs import CheckpointSpec, TaskSpec
from benchmark.data.slices import SliceSet
from benchmark.evaluation.protocols import PROTOCOLS, JobContext

TASK = TaskSpec(name="t", version="1", domain="ct", kind="classification", class_names=list("abcdef"),
                metrics=["accuracy", "balanced_accuracy", "auc"], main_metric="accuracy")


def test_linear_job_on_demo_sized_features(benchmark):
    rng = np.random.default_rng(0)
    n, dim = 864, 512
    labels = rng.integers(0, 6, n)
    features = rng.normal(size=(n, dim)).astype(np.float32) + np.eye(6, dim)[labels] * 4
    slices = SliceSet(np.zeros((n, 1, 1, 1), np.float16), labels, np.asarray([str(i) for i in range(n)]),
                      np.asarray([str(i) for i in range(n)]), "k")
    idx = np.arange(n)
    ctx = JobContext(TASK, CheckpointSpec(name="c", arch="resnet18", pretraining_domain="none"), slices,
                     idx[:500], idx[500:650], idx[650:], 42, lambda: features)
    outcome = benchmark(PROTOCOLS.get("linear").run, ctx)
    assert outcome.metrics["accuracy"] > 0.5
