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


def _top_share_positives(y: np.ndarray, score: np.ndarray, share: float) -> tuple[float, int]:
    """Expected positives among the top ``share`` by score, ties at the boundary shared evenly."""
    k = max(1, int(round(len(y) * share)))
    threshold = np.partition(score, len(score) - k)[len(score) - k]  # the k-th largest, without a full sort
    above, tied = score > threshold, score == threshold
    fraction = (k - above.sum()) / tied.sum()
    return float(y[above].sum() + fraction * y[tied].sum()), k


def lift_at(y_true, score, share: float) -> float:
    """Churn rate among the top ``share`` by score ÷ overall churn rate."""
    y, s = np.asarray(y_true, float), np.asarray(score, float)
    found, k = _top_share_positives(y, s, share)
    base = y.mean()
    return float(found / k / base) if base > 0 else float("nan")


def recall_at(y_true, score, share: float) -> float:
    """Share of all churners found in the top ``share`` by score."""
    y, s = np.asarray(y_true, float), np.asarray(score, float)
    found, _ = _top_share_positives(y, s, share)
    total = y.sum()
    return float(found / total) if total > 0 else float("nan")


def segment_auc(y_true, score, segments) -> dict[str, float]:
    """AUC within each segment (segments with one class only are left out)."""
    import pandas as pd

    y, s, g = np.asarray(y_true), np.asarray(score, float), np.asarray(segments, dtype=object)
    codes, levels = pd.factorize(g)  # one hashing pass, not one comparison per level
    if (codes < 0).any():  # missing values: name them as str() does
        codes, levels = pd.factorize(g.astype(str))
    names = np.array([str(v) for v in levels], dtype=object)
    out = {}
    for name in sorted(set(names.tolist())):
        mask = np.isin(codes, np.flatnonzero(names == name))
        value = auc(y[mask], s[mask])
        if value == value:
            out[name] = value
    return out


def calibration_table(y_true, prob, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Equal-mass bins: mean predicted probability, observed rate and share per bin (for plots)."""
    y, p = np.asarray(y_true, float), np.asarray(prob, float)
    bins = [b for b in np.array_split(np.argsort(p, kind="stable"), n_bins) if len(b)]
    return {
        "predicted": np.array([p[b].mean() for b in bins]),
        "observed": np.array([y[b].mean() for b in bins]),
        "share": np.array([len(b) / len(y) for b in bins]),
    }


def gains_table(y_true, score, points: int = 100) -> dict[str, np.ndarray]:
    """Cumulative gains and lift: share of churners found in the top share of customers by score."""
    y = np.asarray(y_true, float)
    order = np.argsort(-np.asarray(score, float), kind="stable")
    found = np.cumsum(y[order])
    idx = np.unique(np.linspace(1, len(y), min(points, len(y))).round().astype(int)) - 1
    share = (idx + 1) / len(y)
    gains = found[idx] / max(found[-1], 1.0)
    return {"share": share, "gains": gains, "lift": gains / share}


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
