"""Downstream training augmentations, built from a recipe's ``Augmentation`` spec.

Random resized crop, horizontal flip, colour jitter, grayscale, Gaussian blur and sharpness,
each applied with the spec's probability ``p``, as torchvision v2 transforms so that a
segmentation mask follows every geometric change of its image (nearest-neighbour) and no
photometric one. The transforms run on [0, 1] planes in the checkpoint's channel count, between
``InputPipeline.unit`` and ``standardize``. Each sample draws its own parameters from torch's
global generator, which the runner seeds per job.

The default ``Augmentation()`` is the study's light set (p 0.2, crop 0.5-1, jitter 0.1, blur,
sharpness 2), built in the same order as before specs existed, so seeded runs draw the same
random numbers and give the same results.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from benchmark.core.specs import Augmentation

if TYPE_CHECKING:  # torchvision's v2 takes seconds to import; a finished grid never needs it
    from torchvision.transforms import v2


def blur_kernel(spec: Augmentation, size: int) -> int:
    """The spec's kernel; None: odd, about 10 % of the side as in SimCLR; 0: no blur."""
    return max(3, (size // 10) | 1) if spec.blur_kernel is None else spec.blur_kernel


def augmentation(spec: Augmentation, size: int, channels: int) -> "v2.Compose":
    """Crop, flip, jitter, [grayscale], blur, sharpness: the order fixes the random draws."""
    from torchvision.transforms import v2

    p = spec.p
    steps: list = []
    if spec.crop_scale is not None:
        steps.append(v2.RandomApply([v2.RandomResizedCrop(size, scale=tuple(spec.crop_scale), antialias=True)], p=p))
    if spec.hflip:
        steps.append(v2.RandomHorizontalFlip(p=p))
    if spec.jitter is not None:
        brightness, contrast, saturation, hue = spec.jitter
        # hue and saturation are undefined for one channel; brightness and contrast still apply
        jitter = (v2.ColorJitter(brightness, contrast, saturation, hue) if channels == 3
                  else v2.ColorJitter(brightness, contrast))
        steps.append(v2.RandomApply([jitter], p=p))
    if spec.grayscale and channels == 3:  # a grey image is already grey
        steps.append(v2.RandomGrayscale(p=p))
    kernel = blur_kernel(spec, size)
    if kernel:
        steps.append(v2.RandomApply([v2.GaussianBlur(kernel, sigma=tuple(spec.blur_sigma))], p=p))
    if spec.sharpness is not None:
        steps.append(v2.RandomAdjustSharpness(sharpness_factor=spec.sharpness, p=p))
    return v2.Compose(steps)


def augment_batch(transform: "v2.Compose", images: torch.Tensor,
                  masks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-sample parameters (a batched call would give the whole batch one crop)."""
    from torchvision import tv_tensors

    out_images, out_masks = [], []
    for i in range(len(images)):
        image = tv_tensors.Image(images[i])
        if masks is None:
            out_images.append(transform(image).clamp_(0, 1))
            continue
        image, mask = transform(image, tv_tensors.Mask(masks[i]))
        out_images.append(image.clamp_(0, 1))
        out_masks.append(mask)
    return torch.stack(out_images).as_subclass(torch.Tensor), (
        torch.stack(out_masks).as_subclass(torch.Tensor) if masks is not None else None)


def describe(spec: Augmentation) -> dict:
    """What a result records of its augmentations: the spec itself."""
    return spec.model_dump(mode="json")
