"""RadImageNet's Keras ResNet50, ported to PyTorch and registered with timm as ``radimagenet_resnet50``.

The port's weights are the Keras ResNet50's, converted weight by weight (see
:mod:`benchmark.models.formats.radimagenet` for the file layout), so the network must be Keras'
and not torchvision's:

* every convolution has a bias (Keras ``Conv2D`` default);
* strides follow Keras ResNet50 (Caffe style): the stride-2 of a downsampling bottleneck is on its
  first 1x1 conv (``conv1``) and on the shortcut conv, not on the 3x3 conv as in torchvision/timm;
* BatchNorm epsilon is Keras' 1.001e-5;
* there is no ``fc`` (``_notop``): like a timm ``num_classes=0`` model, ``forward`` average-pools
  the 7x7 map to 2048 features.

Keras' explicit zero padding before the 7x7 stem conv and the 3x3 max-pool equals PyTorch's
``padding=3`` / ``padding=1``: the max-pool follows a ReLU, so padding with 0 or -inf is the same.
Registering it with timm means it is built like every other architecture
(``timm.create_model("radimagenet_resnet50", num_classes=0, in_chans=...)``), with its own
pretrained config (first conv, classifier, and the port's "caffe" mean/std).
"""
from __future__ import annotations

import torch
from timm.models import build_model_with_cfg, register_model
from torch import nn

KERAS_BN_EPS = 1.001e-5
#: channel-wise mean in the port's (BGR) channel order, and a std of one (mean subtraction only)
INPUT_MEAN = (0.406, 0.456, 0.485)
INPUT_STD = (1.0, 1.0, 1.0)
TIMM_NAME = "radimagenet_resnet50"

# timm's register_model reads the pretrained config of each entrypoint from its module's ``default_cfgs``
default_cfgs = {TIMM_NAME: {"url": "", "num_classes": 0, "input_size": (3, 224, 224), "mean": INPUT_MEAN,
                            "std": INPUT_STD, "first_conv": "conv1", "classifier": "fc"}}


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
    """The Keras-converted RadImageNet ResNet50; with ``num_classes=0``, ``forward`` returns pooled 2048-d features."""

    num_features = 2048

    def __init__(self, in_chans: int = 3, num_classes: int = 0):
        super().__init__()
        self.num_classes = num_classes
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
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

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
        return self.fc(self.global_pool(self.forward_features(x)).flatten(1))


@register_model
def radimagenet_resnet50(pretrained: bool = False, **kwargs) -> RadImageNetResNet50:
    """The RadImageNet port; its weights come only from a checkpoint file (there is no hub download)."""
    return build_model_with_cfg(RadImageNetResNet50, TIMM_NAME, pretrained, **kwargs)
