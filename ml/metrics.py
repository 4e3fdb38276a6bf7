"""Model metrics as pure functions (a leaf: imports nothing of ours).

MLflow's ``evaluate`` yields no AUC for a LightGBM-flavour model, so we compute what we report.
"""
from __future__ import annotations

import numpy as np


def auc(y_true, score) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y_true)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, score))


def pr_auc(y_true, score) -> float:
    from sklearn.metrics import average_precision_score

    y = np.asarray(y_true)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(average_precision_score(y, score))


def brier(y_true, prob) -> float:
    y, p = np.asarray(y_true, float), np.asarray(prob, float)
    return float(np.mean((p - y) ** 2))


def expected_calibration_error(y_true, prob, n_bins: int = 10) -> float:
    """ECE with equal-mass bins: the share-weighted gap between mean prediction and outcome."""
    y, p = np.asarray(y_true, float), np.asarray(prob, float)
    if len(y) == 0:
        return float("nan")
    order = np.argsort(p, kind="stable")
    bins = np.array_split(order, n_bins)
    return float(sum(len(b) / len(y) * abs(p[b].mean() - y[b].mean()) for b in bins if len(b)))


def lift_at(y_true, score, share: float) -> float:
    """Churn rate among the top ``share`` by score ÷ overall churn rate."""
    y, s = np.asarray(y_true, float), np.asarray(score, float)
    k = max(1, int(round(len(y) * share)))
    top = np.argsort(-s, kind="stable")[:k]
    base = y.mean()
    return float(y[top].mean() / base) if base > 0 else float("nan")


def recall_at(y_true, score, share: float) -> float:
    """Share of all churners found in the top ``share`` by score."""
    y, s = np.asarray(y_true, float), np.asarray(score, float)
    k = max(1, int(round(len(y) * share)))
    top = np.argsort(-s, kind="stable")[:k]
    total = y.sum()
    return float(y[top].sum() / total) if total > 0 else float("nan")


def classification_report(y_true, prob) -> dict[str, float]:
    """The metrics every model version is judged by, with stable names."""
    return {
        "auc": auc(y_true, prob),
        "pr_auc": pr_auc(y_true, prob),
        "brier": brier(y_true, prob),
        "ece": expected_calibration_error(y_true, prob),
        "lift_at_10pct": lift_at(y_true, prob, 0.10),
        "lift_at_20pct": lift_at(y_true, prob, 0.20),
        "recall_at_10pct": recall_at(y_true, prob, 0.10),
        "recall_at_20pct": recall_at(y_true, prob, 0.20),
        "base_rate": float(np.mean(np.asarray(y_true, float))) if len(y_true) else float("nan"),
    }
