"""``linear``: logistic regression on cached frozen features, regularisation tuned in-budget.

The C sweep runs on the validation patients carved out of the label budget, then the
head is refit on the whole budget (train + val) with the chosen C, as CLIP_benchmark's
probe does; the sweep and the choice are recorded.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import ThreadpoolController

from benchmark.core.errors import JobError
from benchmark.evaluation.metrics import compute
from benchmark.evaluation.protocols.base import JobContext, Outcome, Protocol

C_GRID = tuple(float(c) for c in np.logspace(-4, 2, 7))  # ascending: the warm-started path needs it
MAX_ITER = 2000
PATH_TOL = 1e-3  # the sweep only ranks C on val; the refit runs at sklearn's default 1e-4


class LinearProbe(Protocol):
    name = "linear"
    version = "3"  # 2: warm-started C path; 3: the path at tol 1e-3 (it only ranks C)
    kinds = frozenset({"classification", "multilabel"})
    uses_features = True

    def run(self, ctx: JobContext) -> Outcome:
        features = ctx.features()
        # A head on ~1k x 512 features is too small for BLAS threads: one thread is ~2x faster here.
        with _threadpools().limit(limits=1):
            if ctx.task.kind == "multilabel":
                return self._multilabel(ctx, features)
            prob, choice = self._head(ctx, features, ctx.slices.labels, len(ctx.task.class_names),
                                      ctx.task.main_metric, ctx.task.higher_is_better)
        return Outcome(ctx.score(ctx.test, {"probabilities": prob}), choice, {"probabilities": prob})

    def _multilabel(self, ctx: JobContext, features: np.ndarray) -> Outcome:
        """One binary head per label, each with its own C chosen by that label's validation AUC."""
        columns, choices = [], {}
        for j, label in enumerate(ctx.task.class_names):
            prob, choices[label] = self._head(ctx, features, ctx.slices.labels[:, j], 2, "auc", True)
            columns.append(prob[:, 1])
        prob = np.stack(columns, axis=1)
        return Outcome(ctx.score(ctx.test, {"probabilities": prob}), {"per_label": choices},
                       {"probabilities": prob})

    def _head(self, ctx: JobContext, features: np.ndarray, labels: np.ndarray, n_classes: int, metric: str,
              higher_is_better: bool) -> tuple[np.ndarray, dict]:
        """Sweep C on the validation split, refit on train + val, return test probabilities and the record."""
        _require_two_classes(labels[ctx.train], ctx)
        sweep = {c: self._score(model, features[ctx.val], labels[ctx.val], n_classes, metric)
                 for c, model in self._path(features[ctx.train], labels[ctx.train], ctx.seed)}
        best_c = _best(sweep, higher_is_better)
        fit_rows = np.concatenate([ctx.train, ctx.val])
        head = self._fit(features[fit_rows], labels[fit_rows], best_c, ctx.seed)
        return _full_proba(head, features[ctx.test], n_classes), {
            "C": best_c, "selection": "val:" + metric, "refit": "train+val",
            "sweep": {f"{c:g}": s for c, s in sweep.items()}, "solver": "lbfgs", "standardize": True}

    @staticmethod
    def _fit(x: np.ndarray, y: np.ndarray, c: float, seed: int):
        return _quiet_fit(make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=MAX_ITER,
                                                                             random_state=seed)), x, y)

    @staticmethod
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

    @staticmethod
    def _score(model, x: np.ndarray, y: np.ndarray, n_classes: int, metric: str) -> float:
        return compute([metric], y, _full_proba(model, x, n_classes))[metric]


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


def _best(sweep: dict[float, float], higher_is_better: bool) -> float:
    """Ties go to the strongest regularisation (smallest C); NaN scores never win."""
    finite = {c: s for c, s in sweep.items() if np.isfinite(s)}
    if not finite:
        return 1.0
    sign = 1 if higher_is_better else -1
    return max(sorted(finite), key=lambda c: sign * finite[c])


def _require_two_classes(y: np.ndarray, ctx: JobContext) -> None:
    if len(np.unique(y)) < 2:
        raise JobError(f"the training budget of task {ctx.task.name} holds a single class; "
                       "use a larger data scale")
