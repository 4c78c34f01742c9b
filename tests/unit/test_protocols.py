"""Every protocol on a task a working implementation must learn, and the guarantees each makes."""
import dataclasses

import numpy as np
import pytest
import torch

from benchmark.core.hashing import state_sha256
from benchmark.core.specs import CheckpointSpec, TaskSpec
from benchmark.data.slices import SliceSet
from benchmark.evaluation.accel import Accelerator
from benchmark.evaluation.features import extract
from benchmark.evaluation.profiles import PROFILES
from benchmark.evaluation.protocols import PROTOCOLS, JobContext
from benchmark.models.backbones import create_backbone

SIZE = 32
CK = CheckpointSpec(name="tiny", arch="test_resnet", pretraining_domain="none")
CLS = TaskSpec(name="bright", version="1", domain="ct", kind="classification", class_names=["dark", "bright"],
               metrics=["accuracy", "auc"], main_metric="accuracy")
SEG = TaskSpec(name="discs", version="1", domain="ct", kind="segmentation", class_names=["bg", "disc", "core"],
               metrics=["dice_disc", "dice_core", "dice_mean"], main_metric="dice_mean")
# A little more training than the demo's, so the test checks learning, not the budget.
PROFILE = dataclasses.replace(PROFILES["demo"], training_overrides={**PROFILES["demo"].training_overrides,
                                                                   "max_steps": 40, "epochs": 40})


def _backbone():
    torch.manual_seed(0)
    return create_backbone("test_resnet")


def _context(task: TaskSpec, images, labels, seed=42, n_train=64, n_val=16) -> JobContext:
    n = len(images)
    slices = SliceSet(images.astype(np.float16), labels, np.asarray([f"p{i // 2}" for i in range(n)]),
                      np.asarray([f"c{i}" for i in range(n)]), "k")
    idx = np.arange(n)
    model = _backbone()

    def features():
        return extract(_backbone(), slices, CK, Accelerator(torch.device("cpu")), 32)

    return JobContext(task, CK, slices, idx[:n_train], idx[n_train:n_train + n_val], idx[n_train + n_val:], seed,
                      features, backbone=lambda: model, profile=PROFILE)


def brightness_task(n=112, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Class 1 images are brighter: trivial for any network that trains."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.uniform(0, 0.3, (n, 3, SIZE, SIZE)) + 0.5 * labels[:, None, None, None]
    return images, labels


def disc_task(n=112, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A mid-grey disc with a bright core at a random place: the labels are intensity bands."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    images, masks = np.zeros((n, 3, SIZE, SIZE)), np.zeros((n, SIZE, SIZE), np.uint8)
    for i in range(n):
        cy, cx, r = rng.uniform(10, 22), rng.uniform(10, 22), rng.uniform(5, 9)
        dist = np.hypot(yy - cy, xx - cx)
        masks[i][dist < r] = 1
        masks[i][dist < r / 2] = 2
        images[i] = (np.choose(masks[i], [0.1, 0.5, 0.95]) + rng.normal(0, 0.03, (SIZE, SIZE)))[None]
    return images.clip(0, 1), masks


@pytest.mark.parametrize("protocol", ["linear", "knn", "finetune"])
def test_classification_protocols_learn_an_easy_task(protocol):
    outcome = PROTOCOLS.get(protocol).run(_context(CLS, *brightness_task()))
    assert outcome.metrics["accuracy"] > 0.85, outcome.metrics  # chance is 0.5
    assert outcome.predictions["probabilities"].shape == (32, 2)


@pytest.mark.parametrize("protocol", ["seg-linear", "seg-finetune"])
def test_segmentation_protocols_learn_an_easy_task(protocol):
    outcome = PROTOCOLS.get(protocol).run(_context(SEG, *disc_task()))
    # an all-background guess scores 0; predicting "disc" everywhere about 0.35 for the disc
    assert outcome.metrics["dice_disc"] > 0.6, outcome.metrics
    assert outcome.predictions["masks"].shape == (32, SIZE, SIZE)
    assert outcome.predictions["masks"].dtype == np.uint8
    assert {"dice_global_core", "dice_slice_core"} <= set(outcome.metrics)


@pytest.mark.parametrize("protocol,task,make", [("finetune", CLS, brightness_task), ("seg-finetune", SEG, disc_task),
                                                ("knn", CLS, brightness_task)])
def test_the_same_seed_gives_identical_numbers(protocol, task, make):
    first = PROTOCOLS.get(protocol).run(_context(task, *make()))
    again = PROTOCOLS.get(protocol).run(_context(task, *make()))
    assert first.metrics == again.metrics
    for key in first.predictions:
        np.testing.assert_array_equal(first.predictions[key], again.predictions[key])
    other_seed = PROTOCOLS.get(protocol).run(_context(task, *make(), seed=1))
    if protocol != "knn":  # k-NN has no randomness; training does
        assert any(not np.array_equal(first.predictions[k], other_seed.predictions[k]) for k in first.predictions)


def test_seg_linear_leaves_the_encoder_bit_identical_and_seg_finetune_does_not():
    from benchmark.evaluation.protocols.segmentation import build_unet

    unet, _ = build_unet(_backbone(), "test_resnet", 3, 3, PROFILE.decoder_channels)
    loaded = state_sha256(unet.encoder)
    frozen = PROTOCOLS.get("seg-linear").run(_context(SEG, *disc_task())).hyperparameters["encoder_sha256"]
    trained = PROTOCOLS.get("seg-finetune").run(_context(SEG, *disc_task())).hyperparameters["encoder_sha256"]
    assert frozen == {"before": loaded, "after": loaded}  # weights and BatchNorm statistics
    assert trained["before"] == loaded != trained["after"]


def test_feature_extraction_leaves_the_backbone_bit_identical():
    model = _backbone()
    images, _ = brightness_task(n=8)
    slices = SliceSet(images.astype(np.float16), np.zeros(8, int), np.arange(8).astype(str), np.arange(8).astype(str),
                      "k")
    before = state_sha256(model)
    extract(model, slices, CK, Accelerator(torch.device("cpu")), 4)
    assert state_sha256(model) == before


def test_finetune_records_its_recipe_selection_and_curve():
    hyper = PROTOCOLS.get("finetune").run(_context(CLS, *brightness_task())).hyperparameters
    assert hyper["recipe"]["optimizer"] == "adamw" and hyper["selection"] == "val"
    assert hyper["steps"] == 40 and hyper["history"][-1]["steps"] == 40
    assert hyper["selected_epoch"] in [h["epoch"] for h in hyper["history"] if "val" in h]
    assert hyper["augmentation"]["p"] == 0.2


def test_last_epoch_selection_and_the_study_optimisers():
    for optimizer in ("lars", "sgd"):
        profile = dataclasses.replace(PROFILE, training_overrides={**PROFILE.training_overrides,
                                                                   "optimizer": optimizer, "selection": "last",
                                                                   "schedule": "step", "lr": 0.05})
        ctx = dataclasses.replace(_context(CLS, *brightness_task()), profile=profile)
        hyper = PROTOCOLS.get("finetune").run(ctx).hyperparameters
        assert hyper["selection"] == "last" and hyper["selected_epoch"] == hyper["history"][-1]["epoch"]
        assert all("val" not in h for h in hyper["history"])


def test_class_weights_reach_the_loss():
    weighted = SEG.model_copy(update={"training": SEG.training.model_copy(update={"class_weights": [1.0, 1.0, 50.0]})})
    plain = PROTOCOLS.get("seg-finetune").run(_context(SEG, *disc_task()))
    heavy = PROTOCOLS.get("seg-finetune").run(_context(weighted, *disc_task()))
    assert heavy.hyperparameters["recipe"]["class_weights"] == [1.0, 1.0, 50.0]
    # a 50x weight on the core makes the network paint far more of it
    assert (heavy.predictions["masks"] == 2).sum() > (plain.predictions["masks"] == 2).sum()


def test_multilabel_linear_and_knn_use_one_head_per_label():
    rng = np.random.default_rng(0)
    n = 112
    labels = rng.integers(0, 2, (n, 2))
    images = rng.uniform(0, 0.2, (n, 3, SIZE, SIZE))
    images[:, 0] += 0.6 * labels[:, 0, None, None]  # label 0 lives in channel 0, label 1 in channel 2
    images[:, 2] += 0.6 * labels[:, 1, None, None]
    task = TaskSpec(name="multi", version="1", domain="xray", kind="multilabel", class_names=["a", "b"],
                    metrics=["auc"], main_metric="auc")
    for protocol in ("linear", "knn"):
        outcome = PROTOCOLS.get(protocol).run(_context(task, images, labels))
        assert outcome.predictions["probabilities"].shape == (32, 2)
        assert outcome.metrics["auc"] > 0.8, (protocol, outcome.metrics)
    assert set(PROTOCOLS.get("linear").run(_context(task, images, labels)).hyperparameters["per_label"]) == {"a", "b"}


def test_an_undefined_validation_score_falls_back_to_the_last_epoch():
    images, labels = brightness_task()
    labels[64:80] = 0  # a one-class validation split: its AUC is undefined at every epoch
    task = CLS.model_copy(update={"main_metric": "auc"})
    hyper = PROTOCOLS.get("finetune").run(_context(task, images, labels)).hyperparameters
    assert hyper["selection"] == "last" and hyper["selected_epoch"] == hyper["history"][-1]["epoch"]
    assert all(np.isnan(h["val"]) for h in hyper["history"] if "val" in h)


def test_augmentations_are_built_from_the_spec():
    """kornia's steps, one per spec field (semantics against torchvision: tests/unit/test_device_augment.py)."""
    from benchmark.core.specs import Augmentation
    from benchmark.evaluation.protocols.augment import augmentation, describe

    def types(spec, channels=3):
        return [type(t).__name__ for t in augmentation(spec, SIZE, channels)]

    assert "RandomResizedCropPerImage" not in types(Augmentation(crop_scale=None))
    assert "ColorJitter" not in types(Augmentation(jitter=None))
    assert "RandomGaussianBlur" not in types(Augmentation(blur_kernel=0))
    assert "RandomSharpness" not in types(Augmentation(sharpness=None))
    assert "RandomHorizontalFlip" not in types(Augmentation(hflip=False))
    blur = [t for t in augmentation(Augmentation(blur_kernel=3), 256, 3) if type(t).__name__ == "RandomGaussianBlur"]
    assert tuple(blur[0].flags["kernel_size"]) == (3, 3)
    assert "RandomGrayscale" not in types(Augmentation())
    assert "RandomGrayscale" not in types(Augmentation(grayscale=True), channels=1)
    with_grey = types(Augmentation(grayscale=True))
    assert with_grey.index("RandomGrayscale") == with_grey.index("ColorJitter") + 1
    grey_jitter = [t for t in augmentation(Augmentation(), SIZE, 1) if type(t).__name__ == "ColorJitter"][0]
    assert grey_jitter.saturation == 0 and grey_jitter.hue == 0
    spec = Augmentation(p=0.7, crop_scale=(0.3, 1.0))
    assert describe(spec)["crop_scale"] == [0.3, 1.0] and describe(spec)["p"] == 0.7
