"""Evaluate: the backtest scorer on the test cutoff, beside three baselines, over time and by segment.

A model is only worth its cost if it beats what a shop could do without it, so the test cutoff's
metrics come with those of the baselines (days since last order, an RFM logistic regression and
BG/NBD, all fitted on the same honest rows); the rolling origins replay the whole recipe at earlier
cutoffs, to show whether one good test cutoff was luck; segment AUCs show whom the ranking fails.
"""
from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd

from ml.core.settings import Settings
from ml.model.baselines import fit_baselines, fit_bgnbd
from ml.model.metrics import auc, classification_report, segment_auc
from ml.model.value import BTYDValue, evaluate_btyd
from ml.stages.train.examples import INFO_COLUMNS, Examples, spend_later
from ml.stages.train.fit import CrossFit, _calibration_rows, _dataset, cross_fit, fit_scorer
from ml.stages.train.split import btyd_origin, origin_cutoffs
from ml.stages.train.timer import Timer


def evaluate(timer: Timer, settings: Settings, data: Examples, best: CrossFit,
             p_test: np.ndarray, customers: np.ndarray) -> tuple[dict, dict, dict, object]:
    """Test-cutoff metrics of the model and the baselines, rolling origins and segment AUCs.

    Returns the metrics, the test scores of the model and each baseline (for the plots), the
    segment AUCs and the BG/NBD baseline (logged beside the value model).
    """
    split = data.split
    honest, test = data.rows(split.honest), data.rows([split.test])
    y_test = data.y[test]
    metrics = {f"test_{k}": v for k, v in classification_report(y_test, p_test).items()}
    metrics.update({"test_rows": float(len(y_test)), "cv_auc": best.score})
    info_honest, info_test = data.info[honest], data.info[test]
    bgnbd = fit_bgnbd(info_honest, seed=settings.seed)
    scores = {"model": p_test}
    for baseline in fit_baselines(info_honest, data.y[honest], settings.horizon_days, bgnbd, settings.seed):
        s = baseline.score(info_test)
        scores[baseline.name] = s
        report = classification_report(y_test, s) if baseline.gives_probability else {"auc": auc(y_test, s)}
        for k in ("auc", "pr_auc", "brier", "ece", "lift_at_10pct"):
            if k in report:
                metrics[f"baseline_{baseline.name}_{k}"] = report[k]
    origins = {f"origin/{split.test}/{k}": metrics[f"test_{k}"] for k in ("auc", "ece", "brier", "base_rate")}
    origins.update(rolling_origins(timer, settings, data, best.params, customers))
    aucs = [v for k, v in origins.items() if k.endswith("/auc")]
    metrics.update({**origins, "backtest_origins": float(len(aucs)), "backtest_auc_mean": float(np.mean(aucs)),
                    "backtest_auc_min": float(np.min(aucs)),
                    "backtest_ece_max": max(v for k, v in origins.items() if k.endswith("/ece"))})
    segments = segment_report(info_test.reset_index(drop=True), y_test, p_test)
    for dim, values in segments.items():
        for level, value in values.items():
            metrics[f"segment_auc/{_metric_key(dim)}/{_metric_key(level)}"] = value
    return metrics, scores, segments, bgnbd


def rolling_origins(timer: Timer, settings: Settings, data: Examples, params: dict,
                    customers: np.ndarray) -> dict[str, float]:
    """The recipe again, standing at earlier cutoffs: how stable the backtest is over time.

    At each origin o (the cutoffs before the test cutoff, newest first) only labels observable at
    o fit the booster, early-stopped out of fold at the latest of them and calibrated out of fold
    on all of them; the tuned settings are kept (the search ran once, at the test cutoff). Rows
    come from ``customers`` (the search sample on large data); the origin is scored on all its
    customers (on large data: a stable sample of about ORIGIN_SCORE_ROWS, see read_examples).
    """
    out: dict[str, float] = {}
    for origin in origin_cutoffs(settings, data.split):
        honest = [c for c in data.split.full if c + dt.timedelta(days=settings.horizon_days) <= origin]
        if not honest:
            break
        fit_rows = data.rows(honest) & customers
        ds, idx = _dataset(timer, data, fit_rows, settings.train_threads)
        cf = cross_fit(timer, data, ds, idx, data.rows([honest[-1]]), params, settings.train_cv_folds,
                       calibrate_on=_calibration_rows(fit_rows, settings.train_calibration_max_rows, settings.seed))
        scorer = fit_scorer(timer, settings, ds, cf)
        rows = data.rows([origin]) if data.origin_rows is None else data.rows([origin]) & data.origin_rows
        report = classification_report(data.y[rows], scorer.proba(data.X[rows]))
        out.update({f"origin/{origin}/{k}": report[k] for k in ("auc", "ece", "brier", "base_rate")})
        out[f"origin/{origin}/scored_rows"] = float(rows.sum())
    return out


def tenure_band(days: np.ndarray) -> np.ndarray:
    return np.select([days < 90, days < 365], ["lt90d", "90-364d"], "365d_plus").astype(object)


def orders_band(count: np.ndarray) -> np.ndarray:
    return np.select([count <= 1, count <= 4], ["1", "2-4"], "5_plus").astype(object)


def segment_report(info: pd.DataFrame, y: np.ndarray, prob: np.ndarray) -> dict[str, dict[str, float]]:
    """AUC per segment: tenure, order count and every low-cardinality categorical feature."""
    segments = {
        "tenure": tenure_band(info["days_since_first_order"].fillna(0).to_numpy(float)),
        "orders": orders_band(info["count_orders_lifetime"].fillna(0).to_numpy(float)),
    }
    for c in info.columns:
        if c not in ("customer_id", "as_of_date", *INFO_COLUMNS):
            segments[c] = info[c].astype("string").fillna("unknown").to_numpy(object)
    return {name: segment_auc(y, prob, values) for name, values in segments.items()}


def _metric_key(text: str) -> str:
    """A segment level as MLflow accepts it in a metric name."""
    return re.sub(r"[^0-9A-Za-z_\-. /]", "_", str(text))


def btyd_value(settings: Settings, data: Examples):
    """BG/NBD × Gamma-Gamma fitted at the test cutoff; its error from a cutoff about a year back
    (the value model's fallback when the history holds too few year-apart cutoffs to learn one)."""
    model, metrics = BTYDValue.fit(data.info[data.rows([data.split.test])], seed=settings.seed), {}
    origin = btyd_origin(settings, data.split)
    if origin is not None:
        later = spend_later(settings)
        if len(later):
            metrics = evaluate_btyd(data.info[data.rows([origin])], later, (settings.as_of - origin).days, settings.seed)
    return model, metrics
