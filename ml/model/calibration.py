"""Probability calibration on a held-out cutoff (a leaf: numpy and scikit-learn only).

The booster's margin (log-odds) is mapped to an honest probability by one of two monotone maps
fitted on the validation cutoff: Platt scaling (a logistic regression on the margin, two
parameters, smooth) or isotonic regression (free-form, needs more rows). ``fit_calibrator``
picks between them by cross-validated Brier score on the calibration rows (a fixed random
``SELECTION_ROWS`` of them on large data) with fixed folds, so the choice is reproducible; the
chosen map is then fitted on every calibration row.

Isotonic regression is a step function: customers inside one step would tie and lose the
ranking the booster gave them, which costs AUC. A negligible, strictly increasing term of the
margin breaks those ties, so calibration never changes the order of customers.
"""
from __future__ import annotations

import numpy as np

SELECTION_ROWS = 100_000  # enough to tell two calibrators' Brier scores apart; ten fits each otherwise cost seconds
_TIE_BREAK = 1e-6  # at most this much is added to a probability; far below any reported digit


def _tie_break(margin: np.ndarray) -> np.ndarray:
    return _TIE_BREAK * (1.0 / (1.0 + np.exp(-np.clip(margin, -50, 50))))


class PlattCalibrator:
    """p = σ(a · margin + b)."""

    method = "platt"

    def __init__(self, a: float = 1.0, b: float = 0.0):
        self.a, self.b = float(a), float(b)

    def fit(self, margin, y) -> "PlattCalibrator":
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=1e6, solver="lbfgs", max_iter=1000)
        lr.fit(np.asarray(margin, float).reshape(-1, 1), np.asarray(y, int))
        self.a, self.b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        return self

    def predict(self, margin) -> np.ndarray:
        z = self.a * np.asarray(margin, float) + self.b
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


class IsotonicCalibrator:
    """A non-decreasing step function of the margin, with ties broken by the margin itself."""

    method = "isotonic"

    def __init__(self):
        self.thresholds = np.zeros(0)
        self.values = np.zeros(0)

    def fit(self, margin, y) -> "IsotonicCalibrator":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        iso.fit(np.asarray(margin, float), np.asarray(y, float))
        self.thresholds, self.values = iso.X_thresholds_.copy(), iso.y_thresholds_.copy()
        return self

    def predict(self, margin) -> np.ndarray:
        m = np.asarray(margin, float)
        p = np.interp(m, self.thresholds, self.values)
        return np.clip(p * (1 - _TIE_BREAK) + _tie_break(m), 0.0, 1.0)


CALIBRATORS = {"platt": PlattCalibrator, "isotonic": IsotonicCalibrator}


def _folds(n: int, k: int, seed: int) -> list[np.ndarray]:
    return np.array_split(np.random.default_rng(seed).permutation(n), k)


def cross_validated_brier(method: str, margin, y, k: int = 5, seed: int = 0) -> float:
    """Out-of-fold Brier score of a calibration method on the calibration rows."""
    m, t = np.asarray(margin, float), np.asarray(y, float)
    squared = np.empty(len(t))
    for fold in _folds(len(t), k, seed):
        train = np.ones(len(t), bool)
        train[fold] = False
        fitted = CALIBRATORS[method]().fit(m[train], t[train])
        squared[fold] = (fitted.predict(m[fold]) - t[fold]) ** 2
    return float(squared.mean())


def fit_calibrator(margin, y, method: str = "auto", seed: int = 0):
    """Fit the chosen calibrator; ``auto`` picks the lower cross-validated Brier score."""
    if method == "auto":
        m, t = np.asarray(margin, float), np.asarray(y, float)
        if len(t) > SELECTION_ROWS:
            pick = np.sort(np.random.default_rng(seed).choice(len(t), SELECTION_ROWS, replace=False))
            m, t = m[pick], t[pick]
        scores = {name: cross_validated_brier(name, m, t, seed=seed) for name in CALIBRATORS}
        method = min(scores, key=scores.get)
    return CALIBRATORS[method]().fit(margin, y)
