"""RadImageNet's PyTorch port: a Keras ResNet50 converted weight by weight, and the model class it needs.

Matched layout: the converted ``RadImageNet-ResNet50_notop.pth`` of github.com/Warvito/radimagenet-models
(``radimagenet_models/models/resnet.py`` + ``scripts/resnet_keras_to_pytorch.py``; the same file is
mirrored as MONAI/checkpoints on the Hugging Face hub and used by MONAI's FID code). Its keys are
torchvision-like names, but

* every convolution has a bias (Keras ``Conv2D`` default): ``conv1.bias``, ``layerN.i.convK.bias``,
  ``layerN.i.downsample.0.bias``;
* strides follow Keras ResNet50 (Caffe style): the stride-2 of a downsampling bottleneck is on its
  first 1x1 conv (``conv1``) and on the shortcut conv, not on the 3x3 conv as in torchvision/timm;
* BatchNorm epsilon is Keras' 1.001e-5;
* there is no ``fc`` (``_notop``), and the port's forward returns the 7x7 map: here the model
  average-pools it to 2048 features like a timm ``num_classes=0`` model.

Keras' explicit zero padding before the 7x7 stem conv and the 3x3 max-pool equals PyTorch's
``padding=3`` / ``padding=1``: the max-pool follows a ReLU, so padding with 0 or -inf is the same.
The port expects Keras' "caffe" input convention: BGR order, 0-1 intensities minus the mean
(0.406, 0.456, 0.485) per channel, no std division (MONAI's radimagenet_intensity_normalisation).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from benchmark.models.formats.base import Extracted
from benchmark.models.formats.keys import tensor_dict, unwrap

KERAS_BN_EPS = 1.001e-5
#: channel-wise mean in the port's (BGR) channel order, and a std of one (mean subtraction only)
INPUT_MEAN = (0.406, 0.456, 0.485)
INPUT_STD = (1.0, 1.0, 1.0)


class KerasBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=stride, bias=True)  # Keras: stride on the 1x1
        self.bn1 = nn.BatchNorm2d(planes, eps=KERAS_BN_EPS)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=True)
        self.bn2 = nn.BatchNorm2d(planes, eps=KERAS_BN_EPS)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=True)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion, eps=KERAS_BN_EPS)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class RadImageNetResNet50(nn.Module):
    """The Keras-converted RadImageNet ResNet50; ``forward`` returns pooled 2048-d features."""

    num_features = 2048
    pretrained_cfg = {"first_conv": "conv1", "classifier": "fc", "mean": INPUT_MEAN, "std": INPUT_STD,
                      "architecture": "radimagenet_resnet50"}

    def __init__(self, in_chans: int = 3):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=True)
        self.bn1 = nn.BatchNorm2d(64, eps=KERAS_BN_EPS)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._stage(64, 3, stride=1)
        self.layer2 = self._stage(128, 4, stride=2)
        self.layer3 = self._stage(256, 6, stride=2)
        self.layer4 = self._stage(512, 3, stride=2)
        self.global_pool = nn.AdaptiveAvgPool2d(1)

    def _stage(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        out = planes * KerasBottleneck.expansion
        downsample = nn.Sequential(nn.Conv2d(self.inplanes, out, 1, stride=stride, bias=True),
                                   nn.BatchNorm2d(out, eps=KERAS_BN_EPS))
        layers = [KerasBottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = out
        layers += [KerasBottleneck(out, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.global_pool(self.forward_features(x)).flatten(1)


def is_radimagenet(keys) -> bool:
    keys = set(keys)
    return "conv1.bias" in keys and "layer1.0.conv1.bias" in keys and "layer1.0.downsample.0.bias" in keys


def extract(obj: object, path: Path) -> Extracted:
    return Extracted(tensor_dict(unwrap(obj), path), arch="resnet50", arch_source="the RadImageNet port is a ResNet50",
                     method="supervised (RadImageNet labels)", family="radimagenet",
                     notes=["Keras-converted RadImageNet ResNet50: biased convs, strides on the 1x1 convs; "
                            "input convention BGR, mean (0.406, 0.456, 0.485), std 1"])
