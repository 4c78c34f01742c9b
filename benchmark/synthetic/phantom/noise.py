"""CT noise and parenchymal texture.

Filtered back-projection multiplies projection noise by a ramp filter, so CT
noise power rises with spatial frequency until the reconstruction kernel's
apodisation rolls it off: NPS(f) ~ |f| * window(f). White noise would look
like film grain, not like CT, and would let a model learn the wrong texture.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def nps_amplitude(n: int, cutoff: float) -> np.ndarray:
    """sqrt(NPS) on the 2-D FFT grid: ramp times a Hann window ending at cutoff*Nyquist."""
    f = np.hypot(np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :])  # cycles/pixel
    fc = 0.5 * cutoff
    window = np.where(f < fc, 0.5 * (1.0 + np.cos(np.pi * f / fc)), 0.0)
    return np.sqrt(f * window)


def ct_noise(rng: np.random.Generator, n: int, sigma: float, cutoff: float) -> np.ndarray:
    """Stationary CT-like noise with standard deviation `sigma` (in expectation)."""
    amplitude = nps_amplitude(n, cutoff)
    white = rng.standard_normal((n, n))
    shaped = np.fft.ifft2(np.fft.fft2(white) * amplitude).real
    return shaped * (sigma / np.sqrt(np.mean(amplitude ** 2)))


def radial_nps(images: np.ndarray, bins: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged noise power spectrum of a stack of noise-only images."""
    n = images.shape[-1]
    power = np.mean(np.abs(np.fft.fft2(images - images.mean(axis=(-2, -1), keepdims=True))) ** 2, axis=0)
    f = np.hypot(np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :]).ravel()
    edges = np.linspace(0.0, 0.5, bins + 1)
    which = np.clip(np.digitize(f, edges) - 1, 0, bins - 1)
    inside = f <= 0.5
    sums = np.bincount(which[inside], power.ravel()[inside], bins)
    counts = np.maximum(np.bincount(which[inside], minlength=bins), 1)
    return (edges[:-1] + edges[1:]) / 2, sums / counts


def texture(rng: np.random.Generator, n: int, amplitude: float, smooth_px: float) -> np.ndarray:
    """Smooth random field: organs are not flat, and a flat organ is a shortcut to learn."""
    field = ndimage.gaussian_filter(rng.standard_normal((n, n)), smooth_px, mode="wrap")
    return field * (amplitude / max(float(field.std()), 1e-12))
