"""Self-supervised methods, built from lightly's heads and losses around a timm backbone.

Each method is one ``nn.Module`` whose ``state_dict`` is the whole trainable state
(backbone, heads, momentum copies), so the training state saves and resumes it as one.
``backbone`` is always the timm model that ends up in the safetensors file.
"""
from __future__ import annotations

import copy

import torch
from lightly.loss import NegativeCosineSimilarity, NTXentLoss
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead, SimCLRProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.scheduler import cosine_schedule
from torch import nn

from benchmark.core.errors import ConfigError
from benchmark.pretrain.recipe import METHODS, Recipe


class SimCLR(nn.Module):
    """SimCLR: both views through backbone + projection head, NT-Xent over the batch.

    The two views go through the network as one batch, so BatchNorm sees both views,
    like SimCLR's global BN."""

    def __init__(self, backbone: nn.Module, recipe: Recipe):
        super().__init__()
        width = backbone.num_features
        self.backbone = backbone
        self.projection_head = SimCLRProjectionHead(input_dim=width, hidden_dim=width,
                                                    output_dim=recipe.projection_dim)
        self.criterion = NTXentLoss(temperature=recipe.temperature)

    def training_loss(self, x0: torch.Tensor, x1: torch.Tensor, step: int, total_steps: int) -> torch.Tensor:
        z0, z1 = self.projection_head(self.backbone(torch.cat([x0, x1]))).chunk(2)
        return self.criterion(z0, z1)


class BYOL(nn.Module):
    """BYOL: an online network (backbone, projector, predictor) regresses a momentum copy;
    the momentum rises from ``byol_base_momentum`` to 1 along a cosine, as in the paper."""

    def __init__(self, backbone: nn.Module, recipe: Recipe):
        super().__init__()
        width, hidden, out = backbone.num_features, recipe.byol_hidden_dim, recipe.projection_dim
        self.backbone = backbone
        self.projection_head = BYOLProjectionHead(width, hidden, out)
        self.prediction_head = BYOLPredictionHead(out, hidden, out)
        self.backbone_momentum = copy.deepcopy(backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)
        self.criterion = NegativeCosineSimilarity()
        self.base_momentum = recipe.byol_base_momentum

    def training_loss(self, x0: torch.Tensor, x1: torch.Tensor, step: int, total_steps: int) -> torch.Tensor:
        momentum = cosine_schedule(step, total_steps, self.base_momentum, 1.0)
        update_momentum(self.backbone, self.backbone_momentum, m=momentum)
        update_momentum(self.projection_head, self.projection_head_momentum, m=momentum)
        x = torch.cat([x0, x1])
        p0, p1 = self.prediction_head(self.projection_head(self.backbone(x))).chunk(2)
        with torch.no_grad():
            z0, z1 = self.projection_head_momentum(self.backbone_momentum(x)).chunk(2)
        return 0.5 * (self.criterion(p0, z1) + self.criterion(p1, z0))


def build_method(backbone: nn.Module, recipe: Recipe) -> nn.Module:
    if recipe.method == "simclr":
        return SimCLR(backbone, recipe)
    if recipe.method == "byol":
        return BYOL(backbone, recipe)
    raise ConfigError(f"unknown pretraining method {recipe.method!r}; choose one of {', '.join(METHODS)}")
