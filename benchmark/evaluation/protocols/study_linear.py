"""``linear-study`` and ``seg-linear-study``: the study's own linear evaluation, reproduced.

The field's standard frozen-feature evaluation is what ``linear`` (a logistic-regression probe
on cached, eval-mode features) and ``seg-linear`` (a U-Net decoder on an encoder frozen in eval
mode, bit-identical afterwards) measure: how good the pretrained representation is as it stands.
The study's "linear evaluation" was different: it trained a fresh linear head (or decoder) with
its finetuning recipe (optimiser, learning rate, schedule, epochs, augmentations, class weights)
through the training loop, with every encoder weight frozen but the encoder's BatchNorm layers
in train mode, so their running statistics adapt to the downstream data. That lets the
normalisation statistics do some domain adaptation (a natural-image checkpoint's BatchNorm
statistics re-estimated on CT), which may narrow the gap an off-domain checkpoint shows under the
standard probe. These protocols reproduce that measurement, so the study's linear numbers can be
compared like for like; they sit beside the standard ones, never replace them.

Both record that the encoder's weights are frozen and its BatchNorm is in train mode, and both
check after training that no encoder parameter changed (its buffers may, by design).
"""
from __future__ import annotations

from benchmark.evaluation.protocols.finetune import Finetune
from benchmark.evaluation.protocols.segmentation import _Segmentation


class LinearStudy(Finetune):
    """A linear head on the frozen encoder, BatchNorm in train mode, with the finetuning recipe."""

    name = "linear-study"
    version = "1"
    freeze_encoder = True
    frozen_bn = "train"


class SegLinearStudy(_Segmentation):
    """A U-Net decoder on the frozen encoder, BatchNorm in train mode, with the task's recipe."""

    name = "seg-linear-study"
    version = "1"
    freeze_encoder = True
    frozen_bn = "train"
