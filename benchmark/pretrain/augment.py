"""SimCLR's augmentations, vectorised over a batch, drawn from one explicit generator.

The study's set: random resized crop (scale 0.08-1, ratio 3/4-4/3), horizontal flip,
colour jitter (brightness 0.8, contrast 0.8, saturation 0.8, hue 0.2, applied with
p 0.8, its four operations in a random order per image) and random grayscale (p 0.2).
They follow torchvision's definitions (the ones lightly's ``SimCLRTransform`` composes),
but every image gets its own parameters in one batched pass: torchvision's v2
transforms on a batch tensor would give the whole batch the same crop and jitter,
and a per-image Python loop costs more than the network at 64 px on a CPU.

The same set is applied to both corpora. On CT the three channels are HU windows, not
colours, so jitter and grayscale perturb and mix the windows' intensities; that is what
running the study's colour augmentations on 3-window CT inputs does.

Differences from lightly's ``SimCLRTransform``, on purpose:
- no Gaussian blur (SimCLR drops it for small images; see recipe.py);
- the crop is resampled bilinearly from the cached, already-resized image, so a crop is
  upsampled to the output size (torchvision crops the full-resolution file);
- all randomness comes from the ``torch.Generator`` passed in (CPU), so a run is
  reproducible and its augmentation stream can be saved and resumed.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from benchmark.pretrain.recipe import Recipe

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale


def _uniform(gen: torch.Generator, shape, low: float, high: float) -> torch.Tensor:
    return torch.rand(shape, generator=gen) * (high - low) + low


def crop_flip_params(n: int, size: int, gen: torch.Generator, min_scale: float, hflip_p: float,
                     attempts: int = 10) -> torch.Tensor:
    """(n, 2, 3) affine matrices for ``affine_grid``: torchvision's RandomResizedCrop sampling
    (10 attempts, then the whole image) with the horizontal flip folded in."""
    area = float(size * size)
    target = area * _uniform(gen, (n, attempts), min_scale, 1.0)
    log_ratio = _uniform(gen, (n, attempts), math.log(3 / 4), math.log(4 / 3))
    ratio = torch.exp(log_ratio)
    w = torch.round(torch.sqrt(target * ratio))
    h = torch.round(torch.sqrt(target / ratio))
    ok = (w > 0) & (w <= size) & (h > 0) & (h <= size)
    first = torch.argmax(ok.to(torch.int8), dim=1, keepdim=True)
    found = ok.any(dim=1)
    w = torch.where(found, w.gather(1, first)[:, 0], torch.full((n,), float(size)))
    h = torch.where(found, h.gather(1, first)[:, 0], torch.full((n,), float(size)))
    top = torch.floor(torch.rand(n, generator=gen) * (size - h + 1))
    left = torch.floor(torch.rand(n, generator=gen) * (size - w + 1))
    flip = torch.rand(n, generator=gen) < hflip_p
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = torch.where(flip, -w / size, w / size)
    theta[:, 0, 2] = (2 * left + w) / size - 1
    theta[:, 1, 1] = h / size
    theta[:, 1, 2] = (2 * top + h) / size - 1
    return theta


def grayscale(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def _blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = factor.view(-1, 1, 1, 1)
    return (f * a + (1 - f) * b).clamp_(0, 1)


def adjust_brightness(x, f):
    return _blend(x, torch.zeros_like(x), f)


def adjust_contrast(x, f):
    return _blend(x, grayscale(x).mean(dim=(1, 2, 3), keepdim=True), f)


def adjust_saturation(x, f):
    return _blend(x, grayscale(x), f)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    equal = maxc == minc
    ones = torch.ones_like(maxc)
    chroma = maxc - minc
    s = chroma / torch.where(equal, ones, maxc)
    div = torch.where(equal, ones, chroma)
    rc, gc, bc = (maxc - r) / div, (maxc - g) / div, (maxc - b) / div
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack((h, s, maxc), dim=1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(1)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int64) % 6
    p = (v * (1.0 - s)).clamp(0, 1)
    q = (v * (1.0 - s * f)).clamp(0, 1)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0, 1)
    r = torch.stack((v, q, p, p, t, v), dim=1).gather(1, i.unsqueeze(1))
    g = torch.stack((t, v, v, q, p, p), dim=1).gather(1, i.unsqueeze(1))
    b = torch.stack((p, p, t, v, v, q), dim=1).gather(1, i.unsqueeze(1))
    return torch.cat((r, g, b), dim=1)


def adjust_hue(x, f):
    hsv = rgb_to_hsv(x)
    hsv[:, 0] = torch.remainder(hsv[:, 0] + f.view(-1, 1, 1), 1.0)
    return hsv_to_rgb(hsv)


_JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


class SimCLRAugment:
    """Callable: float (N, 3, S, S) in [0, 1] -> one augmented view, normalised by ``mean``/``std``."""

    def __init__(self, recipe: Recipe, mean: tuple[float, ...], std: tuple[float, ...]):
        self.recipe = recipe
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        r = self.recipe
        n, _, size, _ = x.shape
        theta = crop_flip_params(n, size, gen, r.crop_min_scale, r.hflip_p)
        grid = F.affine_grid(theta, [n, x.shape[1], r.image_size, r.image_size], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False).clamp_(0, 1)
        x = self._jitter(x, gen)
        gray = torch.rand(n, generator=gen) < r.grayscale_p
        if gray.any():
            x[gray] = grayscale(x[gray]).expand(-1, 3, -1, -1)
        return (x - self.mean) / self.std

    def _jitter(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n = len(x)
        b, c, s, h = self.recipe.jitter
        apply = torch.rand(n, generator=gen) < self.recipe.jitter_p
        factors = torch.stack([_uniform(gen, n, max(0.0, 1 - b), 1 + b), _uniform(gen, n, max(0.0, 1 - c), 1 + c),
                               _uniform(gen, n, max(0.0, 1 - s), 1 + s), _uniform(gen, n, -h, h)], dim=1)
        order = torch.argsort(torch.rand(n, 4, generator=gen), dim=1)  # a random order per image
        for position in range(4):
            for op_index, op in enumerate(_JITTER_OPS):
                chosen = apply & (order[:, position] == op_index)
                if chosen.any():
                    x[chosen] = op(x[chosen], factors[chosen, op_index])
        return x
