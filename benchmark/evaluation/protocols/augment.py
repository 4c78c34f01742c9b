"""The study's light downstream augmentations, each applied with probability 0.2.

Random resized crop, horizontal flip, colour jitter 0.1, Gaussian blur and sharpness, as
torchvision v2 transforms so that a segmentation mask follows every geometric change of
its image (nearest-neighbour) and no photometric one. Each sample draws its own
parameters from torch's global generator, which the runner seeds per job.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # torchvision's v2 takes seconds to import; a finished grid never needs it
    from torchvision.transforms import v2

P = 0.2
CROP_SCALE = (0.5, 1.0)  # "light": torchvision's default 0.08 would crop away most of a 64 px lesion


def light_augmentation(size: int, channels: int) -> "v2.Compose":
    from torchvision.transforms import v2

    # hue and saturation are undefined for one channel; brightness and contrast still apply
    jitter = v2.ColorJitter(0.1, 0.1, 0.1, 0.1) if channels == 3 else v2.ColorJitter(0.1, 0.1)
    kernel = max(3, (size // 10) | 1)  # odd, about 10 % of the side as in SimCLR
    return v2.Compose([
        v2.RandomApply([v2.RandomResizedCrop(size, scale=CROP_SCALE, antialias=True)], p=P),
        v2.RandomHorizontalFlip(p=P),
        v2.RandomApply([jitter], p=P),
        v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=P),
        v2.RandomAdjustSharpness(sharpness_factor=2.0, p=P),
    ])


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


def describe() -> dict:
    return {"p": P, "random_resized_crop_scale": list(CROP_SCALE), "hflip": True, "color_jitter": 0.1,
            "gaussian_blur_sigma": [0.1, 2.0], "sharpness_factor": 2.0}
