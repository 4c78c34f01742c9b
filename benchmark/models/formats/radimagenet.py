"""RadImageNet's PyTorch port: a Keras ResNet50 converted weight by weight, loaded into timm's ``radimagenet_resnet50``.

Matched layout: the converted ``RadImageNet-ResNet50_notop.pth`` of github.com/Warvito/radimagenet-models
(``radimagenet_models/models/resnet.py`` + ``scripts/resnet_keras_to_pytorch.py``; the same file is
mirrored as MONAI/checkpoints on the Hugging Face hub and used by MONAI's FID code). Its keys are
torchvision-like names, but every convolution has a bias (``conv1.bias``, ``layerN.i.convK.bias``,
``layerN.i.downsample.0.bias``), the strides are Keras', and there is no ``fc`` (``_notop``): the
network is :class:`benchmark.models.radimagenet_resnet.RadImageNetResNet50`, registered with timm.
The file records no architecture name; it is a ResNet50, so ``--arch resnet50`` (or the timm name
``radimagenet_resnet50``) builds the port, and any other architecture is refused.
The port expects Keras' "caffe" input convention: BGR order, 0-1 intensities minus the mean
(0.406, 0.456, 0.485) per channel, no std division (MONAI's radimagenet_intensity_normalisation).
"""
from __future__ import annotations

from pathlib import Path

from benchmark.core.errors import CheckpointError
from benchmark.core.specs import InputConvention
from benchmark.models.formats.base import Evidence, Extracted, Format, Rule
from benchmark.models.formats.keys import tensor_dict, unwrap
from benchmark.models.radimagenet_resnet import (  # noqa: F401 - KERAS_BN_EPS and the class are re-exported
    INPUT_MEAN,
    INPUT_STD,
    KERAS_BN_EPS,
    TIMM_NAME,
    RadImageNetResNet50,
)

ARCH = "resnet50"


def is_radimagenet(keys) -> bool:
    keys = set(keys)
    return "conv1.bias" in keys and "layer1.0.conv1.bias" in keys and "layer1.0.downsample.0.bias" in keys


def extract(obj: object, path: Path) -> Extracted:
    return Extracted(tensor_dict(unwrap(obj), path), arch=ARCH, arch_source="the RadImageNet port is a ResNet50",
                     method="supervised (RadImageNet labels)",
                     notes=["Keras-converted RadImageNet ResNet50: biased convs, strides on the 1x1 convs; "
                            "input convention BGR, mean (0.406, 0.456, 0.485), std 1"])


def timm_model(arch: str, path: Path) -> str:
    if arch not in (ARCH, TIMM_NAME):
        raise CheckpointError(f"the RadImageNet port is a ResNet50, not {arch}", path)
    return TIMM_NAME


def _biased_convs(evidence: Evidence) -> str | None:
    if is_radimagenet(evidence.keys):
        return "biased convolutions (conv1.bias, layer1.0.conv1.bias): the Keras-converted RadImageNet ResNet50"
    return None


FORMAT = Format("radimagenet", extract, rules=(Rule(80, _biased_convs),),
                input_hint={"mean": INPUT_MEAN, "std": INPUT_STD, "channel_order": "BGR"},
                convention=InputConvention(name="radimagenet_caffe", mean=INPUT_MEAN, std=INPUT_STD),
                timm_model=timm_model, arch_aliases=(TIMM_NAME,), resnet_layout=False)
