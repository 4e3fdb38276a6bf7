"""The pictures logged with every training run (headless: matplotlib's Agg backend).

Each function takes plain arrays and returns a matplotlib Figure; ml/stages/train/record.py logs them with
``mlflow.log_figure`` and closes them. Curves come from ml.model.metrics, so a plot and the number in
the run's metrics always agree; on large data the curves are drawn from a stable sample of the
customers and the legend is handed the numbers computed on all of them (``labels``).
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ml.model.metrics import auc, calibration_table, gains_table, pr_auc  # noqa: E402

_SIZE = (6.0, 4.5)


def _figure(title: str):
    fig, ax = plt.subplots(figsize=_SIZE, dpi=110)
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    return fig, ax


def roc(y, scores: dict[str, np.ndarray], labels: dict[str, float] | None = None):
    """ROC curves of the model and the baselines on the test cutoff (``labels``: AUC per name)."""
    from sklearn.metrics import roc_curve

    fig, ax = _figure("ROC on the test cutoff")
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(y, s)
        value = (labels or {}).get(name)
        ax.plot(fpr, tpr, lw=2 if name == "model" else 1, label=f"{name} (AUC {auc(y, s) if value is None else value:.3f})")
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def precision_recall(y, scores: dict[str, np.ndarray], labels: dict[str, float] | None = None):
    """Precision-recall curves (``labels``: average precision per name)."""
    from sklearn.metrics import precision_recall_curve

    fig, ax = _figure("Precision-recall on the test cutoff")
    for name, s in scores.items():
        precision, recall, _ = precision_recall_curve(y, s)
        value = (labels or {}).get(name)
        ax.plot(recall, precision, lw=2 if name == "model" else 1,
                label=f"{name} (AP {pr_auc(y, s) if value is None else value:.3f})")
    ax.axhline(float(np.mean(y)), ls=":", c="grey", label="churn rate")
    ax.set(xlabel="recall", ylabel="precision", ylim=(0, 1.02))
    ax.legend(fontsize=8, loc="lower left")
    return fig


def calibration(y, probabilities: dict[str, np.ndarray], n_bins: int = 15):
    """Reliability diagram (equal-mass bins) with the distribution of predictions below."""
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(6.0, 6.0), dpi=110, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.set_title("Calibration on the test cutoff", fontsize=11)
    ax.grid(alpha=0.3)
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    for name, p in probabilities.items():
        t = calibration_table(y, p, n_bins)
        ax.plot(t["predicted"], t["observed"], marker="o", ms=3, lw=2 if name.startswith("model") else 1, label=name)
    ax.set(ylabel="observed churn rate", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8, loc="upper left")
    main = next(iter(probabilities.values()))
    hist.hist(main, bins=40, range=(0, 1), color="tab:blue", alpha=0.7)
    hist.set(xlabel="predicted churn probability", ylabel="customers")
    return fig


def gains(y, scores: dict[str, np.ndarray]):
    """Cumulative gains (share of churners found) and lift by share of customers contacted."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.0, 4.2), dpi=110)
    for name, s in scores.items():
        g = gains_table(y, s)
        lw = 2 if name == "model" else 1
        left.plot(g["share"], g["gains"], lw=lw, label=name)
        right.plot(g["share"], g["lift"], lw=lw, label=name)
    left.plot([0, 1], [0, 1], ls=":", c="grey")
    left.set(title="Cumulative gains", xlabel="share of customers (by risk)", ylabel="share of churners found")
    right.axhline(1.0, ls=":", c="grey")
    right.set(title="Lift", xlabel="share of customers (by risk)", ylabel="lift over random")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.axvline(0.1, c="grey", lw=0.5)
        ax.axvline(0.2, c="grey", lw=0.5)
    left.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def feature_importance(names: list[str], gain: np.ndarray, top: int = 20):
    """Total split gain per feature, the largest ``top``."""
    order = np.argsort(gain)[::-1][:top][::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(order) + 1.2), dpi=110)
    share = gain[order] / max(gain.sum(), 1e-12)
    ax.barh([names[i] for i in order], share, color="tab:blue")
    ax.set(title="Feature importance (share of total gain)", xlabel="share of gain")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def shap_summary(names: list[str], contributions: np.ndarray, values: np.ndarray, top: int = 15, seed: int = 0):
    """SHAP-style summary from LightGBM's exact TreeSHAP contributions (``pred_contrib``).

    One row per feature (largest mean |contribution| on top), one dot per customer at its
    contribution to the log-odds, coloured by the feature's value (rank within the sample).
    """
    rng = np.random.default_rng(seed)
    mean_abs = np.abs(contributions).mean(axis=0)
    order = np.argsort(mean_abs)[::-1][:top]
    fig, ax = plt.subplots(figsize=(7.0, 0.35 * len(order) + 1.5), dpi=110)
    for row, j in enumerate(order[::-1]):
        x = contributions[:, j]
        v = values[:, j].astype(float)
        ranks = np.full(len(v), 0.5)
        finite = np.isfinite(v)
        if finite.sum() > 1:
            ranks[finite] = v[finite].argsort().argsort() / (finite.sum() - 1)
        jitter = rng.uniform(-0.3, 0.3, len(x))
        ax.scatter(x, row + jitter, c=ranks, cmap="coolwarm", s=4, alpha=0.6, vmin=0, vmax=1, linewidths=0)
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels([names[j] for j in order[::-1]], fontsize=8)
    ax.axvline(0, c="grey", lw=0.8)
    ax.set(title="SHAP summary (TreeSHAP via LightGBM pred_contrib)", xlabel="contribution to churn log-odds")
    sm = plt.cm.ScalarMappable(cmap="coolwarm", norm=plt.Normalize(0, 1))
    fig.colorbar(sm, ax=ax, label="feature value (low → high)", fraction=0.04)
    fig.tight_layout()
    return fig


def close(fig) -> None:
    plt.close(fig)
