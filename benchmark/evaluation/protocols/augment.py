"""Downstream training augmentations, built from a recipe's ``Augmentation`` spec, run batched on the device.

Random resized crop, horizontal flip, colour jitter, grayscale, Gaussian blur and sharpness,
each applied with the spec's probability ``p``, as one kornia ``AugmentationSequential``: every
image in a batch draws its own parameters in one batched pass (torchvision's v2 on a batch
would give the whole batch one crop, and a per-image loop on the host starves a GPU), and a
segmentation mask follows every geometric change of its image (nearest-neighbour) and no
photometric one. The transforms run on [0, 1] planes in the checkpoint's channel count, between
``InputPipeline.unit`` and ``standardize``, on whatever device the batch is on.

kornia draws every random parameter on the CPU from torch's global generator (which the runner
seeds per job), whatever the batch's device, so a CPU run is bit-reproducible under a seed. The
step formulas are torchvision's (kornia's ``ColorJitter`` is its port of torchvision's; the
sharpness and blur kernels are the same); the differences: jitter's random order of the four
operations is drawn per batch rather than per image, and grayscale's weights are 0.299 rather
than 0.2989 for red.
"""
from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import torch

from benchmark.core.specs import Augmentation

if TYPE_CHECKING:  # kornia takes a while to import; a finished grid never needs it
    import kornia.augmentation as K


def blur_kernel(spec: Augmentation, size: int) -> int:
    """The spec's kernel; None: odd, about 10 % of the side as in SimCLR; 0: no blur."""
    return max(3, (size // 10) | 1) if spec.blur_kernel is None else spec.blur_kernel


def augmentation(spec: Augmentation, size: int, channels: int) -> "K.AugmentationSequential":
    """Crop, flip, jitter, [grayscale], blur, sharpness: the study's order."""
    import kornia.augmentation as K

    p = spec.p
    steps: list = []
    if spec.crop_scale is not None:
        steps.append(_per_image_crop()(size, tuple(spec.crop_scale), p))
    if spec.hflip:
        steps.append(K.RandomHorizontalFlip(p=p))
    if spec.jitter is not None:
        brightness, contrast, saturation, hue = spec.jitter
        # hue and saturation are undefined for one channel; brightness and contrast still apply
        steps.append(K.ColorJitter(brightness, contrast, saturation, hue, p=p) if channels == 3
                     else K.ColorJitter(brightness, contrast, p=p))
    if spec.grayscale and channels == 3:  # a grey image is already grey
        steps.append(K.RandomGrayscale(p=p))
    kernel = blur_kernel(spec, size)
    if kernel:
        steps.append(K.RandomGaussianBlur((kernel, kernel), sigma=tuple(spec.blur_sigma), p=p))
    if spec.sharpness is not None:  # a degenerate range: torchvision's RandomAdjustSharpness uses a fixed factor
        steps.append(K.RandomSharpness(sharpness=(spec.sharpness, spec.sharpness), p=p))
    return K.AugmentationSequential(*steps)


@cache
def _per_image_crop() -> type:
    """kornia's crop takes ``p`` per batch (a skipped row would change shape); the study's is per image.

    Hand-written because kornia has no per-image gate for it: every image draws a crop, and
    those not picked (probability 1 - p) get the whole image, an exact identity resize.
    """
    import kornia.augmentation as K

    class RandomResizedCropPerImage(K.RandomResizedCrop):
        def __init__(self, size: int, scale: tuple[float, float], p: float):
            # align_corners=False: torchvision's resize convention
            super().__init__((size, size), scale=scale, p=1.0, align_corners=False)
            self.p_image = p

        def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
            params = super().generate_parameters(batch_shape)
            skipped = torch.rand(batch_shape[0]) >= self.p_image
            height, width = batch_shape[-2:]
            whole = torch.tensor([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]],
                                 dtype=params["src"].dtype, device=params["src"].device)
            params["src"] = torch.where(skipped.to(whole.device)[:, None, None], whole, params["src"])
            return params

    return RandomResizedCropPerImage


def augment_batch(transform: "K.AugmentationSequential", images: torch.Tensor,
                  masks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, C, H, W) [0, 1] images and optional (B, H, W) integer masks, each sample its own parameters.

    Masks travel as float (small labels are exact in float32) so kornia need not check an integer
    round trip, which would be a host sync on a GPU.
    """
    if len(transform) == 0:
        return images, masks
    if masks is None:
        return transform(images, data_keys=["input"]).clamp_(0, 1), None
    images, out = transform(images, masks[:, None].float(), data_keys=["input", "mask"])
    return images.clamp_(0, 1), out[:, 0].round().to(masks.dtype)


def describe(spec: Augmentation) -> dict:
    """What a result records of its augmentations: the spec, and the code that applied it."""
    import kornia

    return {**spec.model_dump(mode="json"), "implementation": "kornia", "implementation_version": kornia.__version__}
