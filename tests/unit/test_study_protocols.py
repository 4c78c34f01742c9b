"""The study's linear evaluation (``linear-study``, ``seg-linear-study``), head bias and multilabel loss weights."""
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.core.errors import JobError
from benchmark.core.specs import TaskSpec
from benchmark.evaluation.protocols import PROTOCOLS
from benchmark.evaluation.protocols import finetune as finetune_module
from benchmark.evaluation.protocols import segmentation as segmentation_module
from benchmark.evaluation.protocols.finetune import Classifier, classification_loss
from tests.unit.test_protocols import CLS, PROFILE, SEG, SIZE, _backbone, _context, brightness_task, disc_task


def _with_recipe(task: TaskSpec, **update) -> TaskSpec:
    return task.model_copy(update={"training": task.training.model_copy(update=update)})


def _with_training(ctx, **overrides):
    """The profile's recipe overrides, for what the demo profile sets itself (head bias, augmentations)."""
    profile = dataclasses.replace(PROFILE, training_overrides={**PROFILE.training_overrides, **overrides})
    return dataclasses.replace(ctx, profile=profile)


def _capture_fit(monkeypatch, module) -> dict:
    """Wrap the protocol module's ``fit`` to keep what it trained and with which loss."""
    seen = {}
    real = module.fit

    def fit(model, loss_fn, *args, **kwargs):
        seen.update(model=model, loss_fn=loss_fn, kwargs=kwargs)
        return real(model, loss_fn, *args, **kwargs)

    monkeypatch.setattr(module, "fit", fit)
    return seen


def _batchnorm_means(module: nn.Module) -> list[torch.Tensor]:
    return [m.running_mean.clone() for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _assert_weights_same_statistics_moved(trained: nn.Module, loaded: nn.Module):
    trained_params, loaded_params = dict(trained.named_parameters()), dict(loaded.named_parameters())
    assert trained_params.keys() == loaded_params.keys()
    for name, param in loaded_params.items():
        assert torch.equal(trained_params[name], param), name
        assert not trained_params[name].requires_grad
    before, after = _batchnorm_means(loaded), _batchnorm_means(trained)
    assert before and any(not torch.equal(a, b) for a, b in zip(after, before))


def test_linear_study_freezes_encoder_weights_but_adapts_batchnorm(monkeypatch):
    seen = _capture_fit(monkeypatch, finetune_module)
    outcome = PROTOCOLS.get("linear-study").run(_context(CLS, *brightness_task()))
    assert outcome.metrics["accuracy"] > 0.85, outcome.metrics  # the head alone learns brightness
    _assert_weights_same_statistics_moved(seen["model"].backbone, _backbone())
    hyper = outcome.hyperparameters
    assert hyper["encoder_frozen"] is True and hyper["encoder_batchnorm"] == "train"
    assert hyper["encoder_params_sha256"]["before"] == hyper["encoder_params_sha256"]["after"]
    assert hyper["recipe"]["optimizer"] == "adamw" and hyper["augmentation"]["p"] == 0.2
    assert seen["kwargs"]["frozen_bn"] == "train"


def test_finetune_still_trains_the_encoder_and_records_no_freezing(monkeypatch):
    seen = _capture_fit(monkeypatch, finetune_module)
    hyper = PROTOCOLS.get("finetune").run(_context(CLS, *brightness_task())).hyperparameters
    assert "encoder_frozen" not in hyper and seen["kwargs"]["frozen"] is None
    loaded = dict(_backbone().named_parameters())
    assert any(not torch.equal(p, loaded[n]) for n, p in seen["model"].backbone.named_parameters())


def test_seg_linear_study_freezes_encoder_weights_but_adapts_batchnorm(monkeypatch):
    from benchmark.evaluation.protocols.segmentation import build_unet

    seen = _capture_fit(monkeypatch, segmentation_module)
    outcome = PROTOCOLS.get("seg-linear-study").run(_context(SEG, *disc_task()))
    assert outcome.metrics["dice_disc"] > 0.5, outcome.metrics
    loaded, _ = build_unet(_backbone(), "test_resnet", 3, 3, PROFILE.decoder_channels)
    _assert_weights_same_statistics_moved(seen["model"].encoder, loaded.encoder)
    hyper = outcome.hyperparameters
    assert hyper["encoder_frozen"] is True and hyper["encoder_batchnorm"] == "train"
    assert hyper["encoder_params_sha256"]["before"] == hyper["encoder_params_sha256"]["after"]
    assert hyper["encoder_sha256"]["before"] != hyper["encoder_sha256"]["after"]  # the statistics moved


def test_seg_linear_keeps_batchnorm_in_eval_mode(monkeypatch):
    seen = _capture_fit(monkeypatch, segmentation_module)
    hyper = PROTOCOLS.get("seg-linear").run(_context(SEG, *disc_task())).hyperparameters
    assert seen["kwargs"]["frozen_bn"] == "eval" and hyper["encoder_batchnorm"] == "eval"
    assert hyper["encoder_sha256"]["before"] == hyper["encoder_sha256"]["after"]


@pytest.mark.parametrize("protocol,module,task,make,part", [
    ("linear-study", finetune_module, CLS, brightness_task, lambda m: m.backbone),
    ("seg-linear-study", segmentation_module, SEG, disc_task, lambda m: m.encoder)])
def test_a_study_protocol_fails_when_the_encoder_weights_move(monkeypatch, protocol, module, task, make, part):
    real = module.fit

    def fit(model, *args, **kwargs):
        log = real(model, *args, **kwargs)
        with torch.no_grad():
            next(part(model).parameters()).add_(1e-3)  # a bug that let the encoder train
        return log

    monkeypatch.setattr(module, "fit", fit)
    with pytest.raises(JobError, match="frozen encoder's weights"):
        PROTOCOLS.get(protocol).run(_context(task, *make()))


def test_head_bias_follows_the_recipe(monkeypatch):
    seen = _capture_fit(monkeypatch, finetune_module)
    ctx = _with_training(_context(CLS, *brightness_task()), head_bias=False)
    hyper = PROTOCOLS.get("linear-study").run(ctx).hyperparameters
    assert seen["model"].head.bias is None and hyper["head_bias"] is False
    PROTOCOLS.get("finetune").run(_context(CLS, *brightness_task()))
    assert seen["model"].head.bias is not None
    image = torch.zeros(2, 3, SIZE, SIZE)
    assert Classifier(_backbone(), 2, image, bias=False).head.bias is None


def _multilabel_task() -> tuple[TaskSpec, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 112
    labels = rng.integers(0, 2, (n, 2))
    images = rng.uniform(0, 0.2, (n, 3, SIZE, SIZE))
    images[:, 0] += 0.6 * labels[:, 0, None, None]
    images[:, 2] += 0.6 * labels[:, 1, None, None]
    task = TaskSpec(name="multi", version="1", domain="xray", kind="multilabel", class_names=["a", "b"],
                    metrics=["auc"], main_metric="auc")
    return task, images, labels


def test_multilabel_bce_weights_are_per_label():
    loss_fn, record = classification_loss("multilabel", [1.0, 0.0], 2, torch.device("cpu"))
    assert record == {"loss": "bce", "loss_weights": [1.0, 0.0]}
    y = torch.tensor([[1, 0], [0, 1]])
    logits = torch.tensor([[2.0, -1.0], [-0.5, 3.0]])
    other = logits.clone()
    other[:, 1] = torch.tensor([5.0, -7.0])  # only the weight-0 label's logits change
    assert torch.equal(loss_fn(logits, y), loss_fn(other, y))
    other[:, 0] += 1.0
    assert not torch.equal(loss_fn(logits, y), loss_fn(other, y))
    with pytest.raises(JobError, match="3 class weights for 2 labels"):
        classification_loss("multilabel", [1.0, 1.0, 1.0], 2, torch.device("cpu"))


def test_multilabel_linear_study_trains_with_the_recipes_label_weights(monkeypatch):
    task, images, labels = _multilabel_task()
    seen = _capture_fit(monkeypatch, finetune_module)
    outcome = PROTOCOLS.get("linear-study").run(_context(_with_recipe(task, class_weights=[1.0, 0.0]), images, labels))
    assert outcome.predictions["probabilities"].shape == (32, 2)
    assert outcome.hyperparameters["loss"] == "bce" and outcome.hyperparameters["loss_weights"] == [1.0, 0.0]
    logits, y = torch.zeros(4, 2), torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]])
    moved = logits.clone()
    moved[:, 1] = 9.0
    assert torch.equal(seen["loss_fn"](logits, y), seen["loss_fn"](moved, y))  # label b does not count
    unweighted = PROTOCOLS.get("finetune").run(_context(task, images, labels)).hyperparameters
    assert unweighted["loss_weights"] is None
