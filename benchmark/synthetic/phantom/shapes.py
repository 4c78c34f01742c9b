"""Geometric primitives in millimetres, painted into a tissue label map.

Anatomy is described in patient millimetres (x to the patient's left, y
posterior, as DICOM's LPS frame), never in pixels, so the same patient renders
correctly at any matrix size or field of view. Each primitive is evaluated on
its bounding box only: a slice paints dozens of small structures and full-grid
evaluation would dominate the generation time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.synthetic.phantom.hounsfield import Tissue


@dataclass(frozen=True, eq=False)
class Grid:
    xs: np.ndarray  # (n,) column centres, mm
    ys: np.ndarray  # (n,) row centres, mm
    spacing: float

    @classmethod
    def square(cls, n: int, fov: float, centre: tuple[float, float] = (0.0, 0.0)) -> "Grid":
        spacing = fov / n
        offsets = (np.arange(n) + 0.5 - n / 2) * spacing
        return cls(centre[0] + offsets, centre[1] + offsets, spacing)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.ys.size, self.xs.size)

    def _index_range(self, axis: np.ndarray, lo: float, hi: float) -> slice:
        start = int(np.floor((lo - axis[0]) / self.spacing))
        stop = int(np.ceil((hi - axis[0]) / self.spacing)) + 1
        return slice(max(start, 0), min(max(stop, 0), axis.size))


def wobble_params(rng: np.random.Generator, amplitude: float, harmonics=(2, 3, 4)) -> np.ndarray:
    """Low-order outline harmonics: turns an ellipse into an organ-like blob."""
    k = np.asarray(harmonics, dtype=float)
    amp = rng.uniform(0.0, amplitude, k.size)
    phase = rng.uniform(0.0, 2 * np.pi, k.size)
    return np.stack([k, amp, phase], axis=1)


class Shape:
    """A boolean mask stored on its bounding box only."""

    __slots__ = ("rows", "cols", "mask", "shape")

    def __init__(self, rows: slice, cols: slice, mask: np.ndarray, shape: tuple[int, int]):
        self.rows, self.cols, self.mask, self.shape = rows, cols, mask, shape

    def full(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=bool)
        out[self.rows, self.cols] = self.mask
        return out

    def above(self, ys: np.ndarray, y: float) -> "Shape":
        """Only the part anterior to `y` (gas rises to the non-dependent side)."""
        return Shape(self.rows, self.cols, self.mask & (ys[self.rows][:, None] < y), self.shape)


class Canvas:
    """A label map plus the primitives that paint into it."""

    def __init__(self, grid: Grid):
        self.grid = grid
        self.labels = np.zeros(grid.shape, dtype=np.uint8)

    def ellipse(self, cx: float, cy: float, a: float, b: float, angle: float = 0.0,
                wobble: np.ndarray | None = None) -> Shape:
        """Mask of a rotated ellipse; `a` runs along `angle`, `b` across it."""
        empty = Shape(slice(0, 0), slice(0, 0), np.zeros((0, 0), dtype=bool), self.grid.shape)
        if a <= 0 or b <= 0:
            return empty
        reach = max(a, b) * (1.0 + (wobble[:, 1].sum() if wobble is not None else 0.0))
        rows = self.grid._index_range(self.grid.ys, cy - reach, cy + reach)
        cols = self.grid._index_range(self.grid.xs, cx - reach, cx + reach)
        if rows.start >= rows.stop or cols.start >= cols.stop:
            return empty
        dx = self.grid.xs[cols][None, :] - cx
        dy = self.grid.ys[rows][:, None] - cy
        cos, sin = np.cos(angle), np.sin(angle)
        u = (dx * cos + dy * sin) / a
        v = (-dx * sin + dy * cos) / b
        r2 = u * u + v * v
        if wobble is None:
            return Shape(rows, cols, r2 <= 1.0, self.grid.shape)
        theta = np.arctan2(v, u)
        scale = 1.0 + (wobble[:, 1, None, None]
                       * np.cos(wobble[:, 0, None, None] * theta + wobble[:, 2, None, None])).sum(0)
        return Shape(rows, cols, r2 <= scale * scale, self.grid.shape)

    def paint(self, shape: Shape, tissue: Tissue, over: tuple[Tissue, ...] | None = None) -> None:
        """Paint `tissue`; with `over`, only where one of those tissues already is."""
        if shape.mask.size == 0:
            return
        region = self.labels[shape.rows, shape.cols]  # a view: writes land in the label map
        mask = shape.mask
        if over is not None:
            allowed = np.zeros(256, dtype=bool)
            allowed[list(over)] = True
            mask = mask & allowed[region]
        region[mask] = tissue

    def bone(self, cx: float, cy: float, a: float, b: float, angle: float = 0.0,
             cortex: float = 1.5, over: tuple[Tissue, ...] | None = None,
             wobble: np.ndarray | None = None) -> None:
        """Cortical shell around a cancellous core, as every bone cross-section is."""
        self.paint(self.ellipse(cx, cy, a, b, angle, wobble), Tissue.CORTICAL_BONE, over)
        self.paint(self.ellipse(cx, cy, a - cortex, b - cortex, angle, wobble), Tissue.CANCELLOUS_BONE,
                   over=(Tissue.CORTICAL_BONE,) if over is not None else None)


def section(semi_z: float, dz: float) -> float:
    """Scale of an ellipsoid's axial cross-section at distance `dz` from its centre."""
    t = 1.0 - (dz / semi_z) ** 2
    return float(np.sqrt(t)) if t > 0 else 0.0
