"""L2-regularised logistic regression in torch, the C grid as one warm-started path, on the job's device.

Written by hand because no library fits scikit-learn's objective on a GPU from one copy of
memory-mapped rows: scikit-learn copies the features to float64 (peak 2.8x the array) and runs on
the CPU (2.5-4.4 s per lbfgs iteration at 820k x 2048). The objective is scikit-learn's, so its
fits are the reference this must match:
features standardised (StandardScaler: ddof 0, a constant feature's scale is 1), then per C
``mean log-loss + ||W||^2 / (2 C n)``, intercept unpenalised; softmax over every class present
in training, or one logistic column for two classes, as scikit-learn fits them.

The grid is fitted as scikit-learn's sweep fits it, a warm-started regularisation path, by its
optimiser (scipy's L-BFGS-B) on an objective evaluated in torch on one copy of the rows, on the
job's device (see ``fit``); every evaluation is one (n x D) @ (D x K) product and its gradient,
and only the D x K parameters cross to the host.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

GATHER_ROWS = 4096  # rows per block copied out of the feature memmap: 32 MiB at 2048 dims
FLOAT64_BYTES = 64 * 2**20  # below this a float64 copy on the CPU is free: full sklearn parity


@dataclass
class Standardized:
    """Rows standardised in place in one tensor, with the statistics that map other rows alike."""
    x: torch.Tensor
    mean: torch.Tensor
    scale: torch.Tensor

    def transform(self, block: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(block)).to(self.x.device, self.x.dtype)
        return x.sub_(self.mean).div_(self.scale)


def working_dtype(n_rows: int, dim: int, device: torch.device) -> torch.dtype:
    """float64 where its copy is small and on the CPU; float32 otherwise, so that the one copy of
    the rows stays within the feature array's own size."""
    return torch.float64 if device.type == "cpu" and n_rows * dim * 8 <= FLOAT64_BYTES else torch.float32


def standardized_rows(features: np.ndarray, rows: np.ndarray, device: torch.device) -> Standardized:
    """``features[rows]`` gathered block by block (from a memmap) into one tensor, then standardised
    in place: the only copy of the rows this fit makes."""
    dtype = working_dtype(len(rows), features.shape[1], device)
    x = torch.empty((len(rows), features.shape[1]), dtype=dtype, device=device)
    for start in range(0, len(rows), GATHER_ROWS):
        x[start:start + GATHER_ROWS] = torch.from_numpy(np.asarray(features[rows[start:start + GATHER_ROWS]]))
    mean, scale = _moments(x)
    for block in x.split(GATHER_ROWS):
        block.sub_(mean).div_(scale)
    return Standardized(x, mean, scale)


def _moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation in float64, two passes over blocks (no full-size temporary)."""
    total = sum(block.sum(0, dtype=torch.float64) for block in x.split(GATHER_ROWS))
    mean = total / max(len(x), 1)
    squares = sum(((block.double() - mean) ** 2).sum(0) for block in x.split(GATHER_ROWS))
    scale = torch.sqrt(squares / max(len(x), 1))
    scale = torch.where(scale < 10 * torch.finfo(torch.float64).eps, torch.ones_like(scale), scale)
    return mean.to(x.dtype), scale.to(x.dtype)


@dataclass
class Heads:
    """One fitted head per C: weight (n_C, D, K), bias (n_C, K); K = 1 for a binary problem."""
    weight: torch.Tensor
    bias: torch.Tensor
    n_classes: int  # classes present in training; the columns of ``proba``
    iterations: int

    def proba(self, x: torch.Tensor) -> torch.Tensor:
        """(n_C, n, n_classes) probabilities, in float64."""
        z = _logits(x, self.weight, self.bias).double()
        if self.n_classes == 2:
            p = torch.sigmoid(z[..., 0])
            prob = torch.stack([1 - p, p], dim=-1)
        else:
            prob = torch.softmax(z, dim=-1)
        return prob.permute(1, 0, 2)


def _logits(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """(n, n_C, K): every head in one matrix product."""
    n_c, dim, k = weight.shape
    return (x @ weight.permute(1, 0, 2).reshape(dim, n_c * k)).view(len(x), n_c, k) + bias


def fit(x: torch.Tensor, y: np.ndarray, n_classes: int, cs: tuple[float, ...], tol: float, max_iter: int) -> Heads:
    """Heads for every C in ``cs`` (ascending) on standardised rows ``x``; ``y`` holds class indices.

    The optimiser is scikit-learn's own (scipy's L-BFGS-B with its options), warm-started along
    the path as its sweep is, while the objective and its gradient (the part that touches every
    row) run in torch on ``x``'s device: the iterates then follow scikit-learn's, so the sweep
    chooses the C it chooses. A joint L-BFGS over the whole grid (the heads are separable) was
    measured first and dropped: it paid the slowest C's iterations for every C (25k x 2048, one CPU
    thread: 29 s against scikit-learn's 7.9 s), and its weak-C heads, stopped at a tolerance that
    only ranks C, landed elsewhere than the warm-started ones (another C in a third of the jobs).
    """
    k = 1 if n_classes == 2 else n_classes
    target = torch.as_tensor(y, device=x.device).long()
    theta = np.zeros((x.shape[1] + 1) * k)
    weights, biases, iterations = [], [], 0
    for c in cs:
        theta, steps = _fit_one(x, target, k, c, theta, tol, max_iter)
        weight, bias = _unpack(torch.from_numpy(theta).to(x.device, x.dtype), x.shape[1], k)
        weights.append(weight[None])
        biases.append(bias[None])
        iterations += steps
    return Heads(torch.cat(weights), torch.cat(biases), n_classes, iterations)


def _fit_one(x: torch.Tensor, target: torch.Tensor, k: int, c: float, theta: np.ndarray, tol: float,
             max_iter: int) -> tuple[np.ndarray, int]:
    """One C from ``theta``: mean log-loss + ||W||^2 / (2 C n), scikit-learn's objective and options."""
    from scipy import optimize

    penalty = 1 / (2 * c * len(x))

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        params = torch.from_numpy(flat).to(x.device, x.dtype).requires_grad_(True)
        weight, bias = _unpack(params, x.shape[1], k)
        loss = _loss(torch.addmm(bias, x, weight), target) / len(x) + penalty * weight.pow(2).sum()
        loss.backward()
        return float(loss), params.grad.double().cpu().numpy()

    result = optimize.minimize(objective, theta, method="L-BFGS-B", jac=True,
                               options={"maxiter": max_iter, "maxls": 50, "gtol": tol, "ftol": 64 * np.finfo(float).eps})
    return result.x, int(result.nit)


def _unpack(params: torch.Tensor, dim: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A flat parameter vector as (D, K) weights and K intercepts."""
    return params[: dim * k].view(dim, k), params[dim * k:]


def _loss(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The summed log-loss of (n, K) logits: one logistic column (K = 1) or a softmax."""
    if z.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(z[:, 0], target.to(z.dtype), reduction="sum")
    return F.cross_entropy(z, target, reduction="sum")
