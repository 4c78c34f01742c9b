"""``linear``: logistic regression on cached frozen features, regularisation tuned in-budget.

The C sweep runs on the validation patients carved out of the label budget, then the
head is refit on the whole budget (train + val) with the chosen C, as CLIP_benchmark's
probe does; the sweep and the choice are recorded.

Two solvers of one objective: scikit-learn's lbfgs (the reference) for small jobs, and above
``TORCH_MIN_CELLS`` (train + val rows x feature width) ``logreg``'s torch fit of the same
warm-started C path on one copy of the rows, on the job's device. ``CTBENCH_LINEAR_SOLVER`` (or ``SOLVER``) forces either.
"""
from __future__ import annotations

import functools
import logging
import os
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import ThreadpoolController

from benchmark.core.errors import JobError
from benchmark.evaluation.metrics import compute
from benchmark.evaluation.protocols import logreg
from benchmark.evaluation.protocols.base import JobContext, Outcome, Protocol

log = logging.getLogger(__name__)

C_GRID = tuple(float(c) for c in np.logspace(-4, 2, 7))  # ascending: the warm-started path needs it
MAX_ITER = 2000
PATH_TOL = 1e-3  # the sweep only ranks C on val; the refit runs at sklearn's default 1e-4
REFIT_TOL = 1e-4
SOLVER_ENV = "CTBENCH_LINEAR_SOLVER"
SOLVER = "auto"  # sklearn | torch | auto; the environment variable wins
# Train + val rows x feature width from which the torch solver takes over. Measured on a CPU with
# tests/perf/test_linear_probe_scale_bench.py (one thread, 2048 dims, 6 classes; same C, iterations
# and accuracy on both): 25k rows 4.2 s against scikit-learn's 5.9 s, 100k 15.8 s against 26.4 s,
# peak memory 1.0-1.5x the feature array against 2.8x; so from 25k x 2048. Below, scikit-learn's
# is the reference and costs nothing. CUDA: not measured (no GPU was lent); from modest sizes.
TORCH_MIN_CELLS: dict[str, int] = {"cpu": 25_000 * 2048, "cuda": 20_000 * 512}


@dataclass(frozen=True)
class Target:
    """One head to fit: the task's labels, or one label of a multilabel task."""
    name: str
    labels: np.ndarray  # every row's class index
    n_classes: int
    metric: str
    higher_is_better: bool


class LinearProbe(Protocol):
    name = "linear"
    version = "4"  # 2: warm-started C path; 3: the path at tol 1e-3; 4: the torch solver for large jobs
    kinds = frozenset({"classification", "multilabel"})
    uses_features = True

    def run(self, ctx: JobContext) -> Outcome:
        features = ctx.features()
        targets = _targets(ctx)
        for target in targets:
            _require_two_classes(target.labels[ctx.train], ctx)
        if solver_for(len(ctx.train) + len(ctx.val), features.shape[1], ctx.accel.device.type) == "torch":
            heads = _torch_heads(ctx, features, targets)
        else:
            # A head on ~1k x 512 features is too small for BLAS threads: one thread is ~2x faster here.
            with _threadpools().limit(limits=1):
                heads = [_sklearn_head(ctx, features, target) for target in targets]
        return _outcome(ctx, heads)


def solver_for(n_rows: int, dim: int, device_type: str) -> str:
    choice = os.environ.get(SOLVER_ENV) or SOLVER
    if choice not in ("sklearn", "torch", "auto"):
        raise JobError(f"{SOLVER_ENV}={choice!r}: expected sklearn, torch or auto")
    if choice != "auto":
        return choice
    threshold = TORCH_MIN_CELLS.get(device_type, TORCH_MIN_CELLS["cuda"])
    return "torch" if n_rows * dim >= threshold else "sklearn"


def _targets(ctx: JobContext) -> list[Target]:
    """A multilabel task gets one binary head per label, each with its own C chosen by its val AUC."""
    labels, task = ctx.slices.labels, ctx.task
    if task.kind == "multilabel":
        return [Target(name, labels[:, j], 2, "auc", True) for j, name in enumerate(task.class_names)]
    return [Target(task.name, labels, len(task.class_names), task.main_metric, task.higher_is_better)]


def _outcome(ctx: JobContext, heads: list[tuple[np.ndarray, dict]]) -> Outcome:
    if ctx.task.kind != "multilabel":
        prob, choice = heads[0]
        return Outcome(ctx.score(ctx.test, {"probabilities": prob}), choice, {"probabilities": prob})
    prob = np.stack([p[:, 1] for p, _ in heads], axis=1)
    choices = {label: choice for label, (_, choice) in zip(ctx.task.class_names, heads)}
    return Outcome(ctx.score(ctx.test, {"probabilities": prob}),
                   {"per_label": choices, "sweep_undefined": any(c["sweep_undefined"] for c in choices.values())},
                   {"probabilities": prob})


def _record(ctx: JobContext, target: Target, sweep: dict[float, float], solver: str, iterations: dict) -> dict:
    best_c, undefined = choose(sweep, target.higher_is_better, ctx.task.name, f"linear C sweep of {target.name}")
    return {"C": best_c, "selection": "val:" + target.metric, "refit": "train+val",
            "sweep": {f"{c:g}": s for c, s in sweep.items()}, "sweep_undefined": undefined, "solver": solver,
            "standardize": True, "iterations": iterations, "device": str(ctx.accel.device)}


# --------------------------------------------------------------------------------------------
# scikit-learn: the reference, for small jobs
# --------------------------------------------------------------------------------------------

def _sklearn_head(ctx: JobContext, features: np.ndarray, target: Target) -> tuple[np.ndarray, dict]:
    """Sweep C on the validation split, refit on train + val, return test probabilities and the record."""
    y, x_val = target.labels, features[ctx.val]
    sweep, sweep_iterations = {}, 0
    for c, model in _path(features[ctx.train], y[ctx.train], ctx.seed):
        sweep[c] = compute([target.metric], y[ctx.val], _full_proba(model, x_val, target.n_classes))[target.metric]
        sweep_iterations += int(model[-1].n_iter_.max())
    record = _record(ctx, target, sweep, "sklearn-lbfgs", {"sweep": sweep_iterations})
    fit_rows = np.concatenate([ctx.train, ctx.val])
    head = _fit(features[fit_rows], y[fit_rows], record["C"], ctx.seed)
    record["iterations"]["refit"] = int(head[-1].n_iter_.max())
    return _full_proba(head, features[ctx.test], target.n_classes), record


def _fit(x: np.ndarray, y: np.ndarray, c: float, seed: int):
    return _quiet_fit(make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=MAX_ITER, tol=REFIT_TOL,
                                                                         random_state=seed)), x, y)


def _path(x: np.ndarray, y: np.ndarray, seed: int):
    """The C sweep as a regularisation path: each fit starts from the previous, weaker-C
    solution (warm start), which converges in far fewer lbfgs steps than from zero."""
    scaler = StandardScaler().fit(x)
    scaled = scaler.transform(x)
    head = LogisticRegression(max_iter=MAX_ITER, tol=PATH_TOL, random_state=seed, warm_start=True)
    model = make_pipeline(scaler, head)
    for c in C_GRID:
        _quiet_fit(head.set_params(C=c), scaled, y)
        yield c, model


def _quiet_fit(model, x: np.ndarray, y: np.ndarray):
    """A C at the edge of the grid may stop at MAX_ITER; the sweep records how it scored."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)


@functools.cache
def _threadpools() -> ThreadpoolController:
    """Inspecting the loaded BLAS/OpenMP libraries costs ~7 ms; once per process is enough."""
    return ThreadpoolController()


def _full_proba(model, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Columns for every class, also those absent from a small training budget."""
    prob = np.zeros((len(x), n_classes))
    prob[:, model.classes_] = model.predict_proba(x)
    return prob


# --------------------------------------------------------------------------------------------
# torch: the C path on one copy of the rows, on the job's device, for large jobs
# --------------------------------------------------------------------------------------------

def _torch_heads(ctx: JobContext, features: np.ndarray, targets: list[Target]) -> list[tuple[np.ndarray, dict]]:
    """The rows are copied once per stage (train for the sweep, then train + val for the refit),
    standardised in place, and shared by every target (a multilabel task's labels)."""
    device = ctx.accel.device
    train = logreg.standardized_rows(features, ctx.train, device)
    records = []
    for target in targets:
        classes, y = np.unique(target.labels[ctx.train], return_inverse=True)
        heads = logreg.fit(train.x, y, len(classes), C_GRID, PATH_TOL, MAX_ITER)
        val_prob = _torch_proba(heads, train, features, ctx.val, classes, target.n_classes)
        sweep = {c: compute([target.metric], target.labels[ctx.val], p)[target.metric] for c, p in zip(C_GRID, val_prob)}
        records.append(_record(ctx, target, sweep, "torch-lbfgs", {"sweep": heads.iterations}))
    del train, heads  # freed before the train + val copy: one copy of the rows at a time
    fit_rows = np.concatenate([ctx.train, ctx.val])
    both = logreg.standardized_rows(features, fit_rows, device)
    out = []
    for target, record in zip(targets, records):
        classes, y = np.unique(target.labels[fit_rows], return_inverse=True)
        head = logreg.fit(both.x, y, len(classes), (record["C"],), REFIT_TOL, MAX_ITER)
        record["iterations"]["refit"] = head.iterations
        out.append((_torch_proba(head, both, features, ctx.test, classes, target.n_classes)[0], record))
    return out


def _torch_proba(heads: logreg.Heads, stats: logreg.Standardized, features: np.ndarray, rows: np.ndarray,
                 classes: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_C, len(rows), n_classes) probabilities, rows standardised block by block with ``stats``."""
    prob = np.zeros((len(heads.weight), len(rows), n_classes))
    for start in range(0, len(rows), logreg.GATHER_ROWS):
        block = rows[start:start + logreg.GATHER_ROWS]
        prob[:, start:start + len(block), classes] = heads.proba(stats.transform(features[block])).cpu().numpy()
    return prob


# --------------------------------------------------------------------------------------------
# Choosing on the validation sweep
# --------------------------------------------------------------------------------------------

def _best(sweep: dict[float, float], higher_is_better: bool, default: float = 1.0) -> float:
    """Ties go to the strongest regularisation (smallest C); NaN scores never win."""
    finite = {c: s for c, s in sweep.items() if np.isfinite(s)}
    if not finite:
        return default
    sign = 1 if higher_is_better else -1
    return max(sorted(finite), key=lambda c: sign * finite[c])


def choose(sweep: dict[float, float], higher_is_better: bool, task: str, what: str,
           default: float = 1.0) -> tuple[float, bool]:
    """The best value, and whether every score was undefined (e.g. a validation split missing a
    class): then the default is used, and that is said and recorded, never silent."""
    undefined = not any(np.isfinite(s) for s in sweep.values())
    if undefined:
        log.warning("task %s: every score of the %s is undefined (a validation split missing a class?); "
                    "using the default %g", task, what, default)
    return _best(sweep, higher_is_better, default), undefined


def _require_two_classes(y: np.ndarray, ctx: JobContext) -> None:
    if len(np.unique(y)) < 2:
        raise JobError(f"the training budget of task {ctx.task.name} holds a single class; "
                       "use a larger data scale")
