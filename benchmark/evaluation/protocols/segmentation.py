"""``seg-linear`` and ``seg-finetune``: a U-Net on the backbone's feature pyramid, or a DPT on a ViT's tokens.

Both are segmentation-models-pytorch's, with a ``tu-<arch>`` encoder: timm's view of the same
architecture, built as the backbone was, into which the checkpoint's weights are loaded, every
encoder key filled (seg_models.py: which decoder, and how the keys map). ``seg-linear`` is the
study's linear evaluation for segmentation in the field's standard form: the decoder trains on
a frozen encoder in eval mode (no dropout, no drop-path), whose weights and BatchNorm statistics
stay bit-identical. ``seg-finetune`` trains everything. ``seg-linear-study`` (study_linear.py) is
the study's own variant: the encoder's weights frozen but its BatchNorm in train mode.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from benchmark.core.errors import JobError
from benchmark.core.hashing import state_sha256
from benchmark.evaluation.protocols.augment import describe
from benchmark.evaluation.protocols.base import JobContext, Outcome, Protocol
from benchmark.evaluation.protocols.feed import SliceBatches, predict
from benchmark.evaluation.protocols.trainer import check_frozen, fit, parameters_sha256


def build_segmenter(backbone: nn.Module, arch: str, in_channels: int, n_classes: int,
                    decoder_channels: tuple[int, ...], dpt_features: int = 256) -> tuple[nn.Module, dict]:
    """A U-Net, or a DPT for a single-stride transformer (seg_models.py), with the backbone's weights."""
    from benchmark.evaluation.protocols import seg_models  # imports smp: a linear-only run never needs it

    return seg_models.build(backbone, arch, in_channels, n_classes, decoder_channels, dpt_features)


build_unet = build_segmenter  # the name it had when every encoder got a U-Net


class _Segmentation(Protocol):
    kinds = frozenset({"segmentation"})
    trains = True
    freeze_encoder: bool
    frozen_bn: Literal["eval", "train"] = "eval"  # a frozen encoder's BatchNorm mode while training

    def run(self, ctx: JobContext) -> Outcome:
        task, recipe = ctx.task, ctx.recipe()
        unet, record = build_segmenter(ctx.model(), ctx.checkpoint.arch, ctx.inputs.convention.channels,
                                       len(task.class_names), ctx.profile.decoder_channels, ctx.profile.dpt_features)
        encoder_before = state_sha256(unet.encoder)
        if self.freeze_encoder:
            unet.encoder.requires_grad_(False)
        weights_before = parameters_sha256(unet.encoder) if self.freeze_encoder else ""
        model = ctx.accel.prepare(unet)
        data = SliceBatches(ctx.slices.images, ctx.slices.labels, ctx.inputs, ctx.accel, segmentation=True,
                            augmentation=recipe.augmentation)
        loss_fn = _loss(recipe.class_weights, recipe.dice_loss, len(task.class_names), ctx.accel.device)
        batch = ctx.profile.batch_size

        def masks(rows: np.ndarray) -> dict[str, np.ndarray]:
            return {"masks": predict(model, data, rows, batch, lambda logits: logits.argmax(1).to(torch.uint8))}

        def validate(m: nn.Module) -> float:
            return ctx.score(ctx.val, masks(ctx.val))[task.main_metric]

        log = fit(model, loss_fn, data, ctx.train, recipe, ctx.seed, validate,
                  frozen=unet.encoder if self.freeze_encoder else None, frozen_bn=self.frozen_bn,
                  higher_is_better=task.higher_is_better, checkpointing=ctx.checkpointing)
        encoder_after = state_sha256(unet.encoder)
        frozen = {"encoder_frozen": self.freeze_encoder}
        if self.freeze_encoder:
            frozen.update(encoder_batchnorm=self.frozen_bn,
                          encoder_params_sha256=check_frozen(self.name, unet.encoder, weights_before))
        if self.freeze_encoder and self.frozen_bn == "eval" and encoder_after != encoder_before:
            raise JobError(f"{self.name} changed its frozen encoder (sha256 {encoder_before[:12]} -> "
                           f"{encoder_after[:12]}): a bug, please report it")
        predictions = masks(ctx.test)
        return Outcome(ctx.score(ctx.test, predictions),
                       {"recipe": recipe.model_dump(mode="json"), "augmentation": describe(recipe.augmentation),
                        **frozen, "encoder_sha256": {"before": encoder_before, "after": encoder_after}, **record,
                        "loss": "weighted_cross_entropy" + ("+dice" if recipe.dice_loss else ""),
                        "loss_weights": list(recipe.class_weights) if recipe.class_weights else None,
                        **log.as_dict()},
                       predictions, notes={"throughput": log.throughput, "resumed": log.resumed})


def _loss(class_weights: list[float] | None, dice: bool, n_classes: int, device: torch.device):
    if class_weights is not None and len(class_weights) != n_classes:
        raise JobError(f"{len(class_weights)} class weights for {n_classes} classes")
    weights = torch.tensor(class_weights, device=device) if class_weights else None
    cross_entropy = nn.CrossEntropyLoss(weight=weights)
    if not dice:
        return cross_entropy
    from segmentation_models_pytorch.losses import DiceLoss

    dice_loss = DiceLoss(mode="multiclass", from_logits=True)
    return lambda logits, y: cross_entropy(logits, y) + dice_loss(logits, y)


class SegLinear(_Segmentation):
    name = "seg-linear"
    version = "1"
    freeze_encoder = True


class SegFinetune(_Segmentation):
    name = "seg-finetune"
    version = "1"
    freeze_encoder = False
