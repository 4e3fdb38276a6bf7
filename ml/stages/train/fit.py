"""Fit: the seeded search, customer-fold cross-fits, and the two scorers (booster + calibrator).

The same customers appear at every cutoff, and a customer who has left stays left, so a
validation set of the *same* customers at a later cutoff rewards memorising customers: early
stopping then runs to thousands of trees that do worse on new data. Hence every fit is
cross-fitted over customer folds: fold k's booster trains on the other folds' customers and is
early-stopped on fold k's customers at the validation cutoff. The folds' out-of-fold margins pick
the hyper-parameters, fix the number of trees and fit the calibrator.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np

from ml.core.settings import Settings
from ml.model.calibration import fit_calibrator
from ml.model.churn_model import Scorer
from ml.model.metrics import auc
from ml.stages.train.examples import Examples
from ml.stages.train.split import customer_sample
from ml.stages.train.timer import Timer

log = logging.getLogger(__name__)

LGBM_PARAMS = {
    "objective": "binary",
    "metric": "binary_logloss",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 100,
    "feature_fraction": 0.7,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 10.0,
    "cat_smooth": 50.0,
    "min_data_per_group": 200,
    "max_cat_to_onehot": 8,
    "verbose": -1,
    "deterministic": True,
    "force_row_wise": True,
}
SEARCH_SPACE = {  # bounded: every trial is one draw from these, seeded
    "num_leaves": [7, 15, 31, 63],
    "min_data_in_leaf": [50, 100, 200, 400],
    "feature_fraction": [0.5, 0.7, 0.9],
    "lambda_l2": [0.0, 1.0, 10.0, 30.0],
    "balance_classes": [False, True],  # scale_pos_weight = negatives / positives
}
MAX_ROUNDS, PATIENCE = 1000, 50  # a cap keeps reason codes cheap (their cost grows with trees × leaves)


@dataclass
class CrossFit:
    params: dict
    iterations: list[int]
    margin: np.ndarray  # out-of-fold margin on the calibration rows
    y: np.ndarray
    score: float  # out-of-fold AUC on the early-stopping rows (the validation cutoff)

    @property
    def num_iteration(self) -> int:
        return max(1, int(round(float(np.mean(self.iterations)))))


def _dataset(timer: Timer, data: Examples, rows: np.ndarray, threads: int):
    """One binned LightGBM Dataset over ``rows``; folds and refits take subsets of it."""
    import lightgbm as lgb

    idx = np.flatnonzero(rows)
    ds = lgb.Dataset(
        data.X[idx], data.y[idx].astype(float), categorical_feature=data.spec.categorical_indices,
        params={"feature_pre_filter": False, "verbose": -1, "num_threads": threads}, free_raw_data=True,
    )
    return timer.construct(ds), idx


def _calibration_rows(rows: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    """A fixed random subset of ``rows`` (all of them when few): enough to pin a calibrator down."""
    n = int(rows.sum())
    if n <= max_rows:
        return rows
    keep = np.zeros_like(rows)
    keep[np.sort(np.random.default_rng(seed).choice(np.flatnonzero(rows), max_rows, replace=False))] = True
    return keep


def cross_fit(timer: Timer, data: Examples, ds, idx: np.ndarray, stop_on: np.ndarray, params: dict,
              folds: int, rounds: int | None = None, calibrate_on: np.ndarray | None = None) -> CrossFit:
    """Customer-fold boosters on ``ds`` (rows ``idx``); out-of-fold margins on ``calibrate_on`` rows.

    Without ``rounds`` each fold is early-stopped on its own customers' ``stop_on`` rows (the
    validation cutoff), which also give the out-of-fold AUC that ranks search candidates.
    ``calibrate_on`` (default: ``stop_on``) may span every cutoff of the fit: fold k's customers
    are unseen by fold k's booster at all of them, and more rows make a steadier calibrator.
    """
    import lightgbm as lgb

    fold = data.fold[idx]
    target = stop_on[idx]
    calibrate = target if calibrate_on is None else calibrate_on[idx]
    margin = np.full(len(idx), np.nan)
    iterations = []
    for k in range(folds):
        train_local = np.flatnonzero(fold != k)
        valid_local = np.flatnonzero(target & (fold == k))
        dtrain = ds.subset(train_local)
        if rounds is None:
            booster = timer.fit(params, dtrain, MAX_ROUNDS, valid_sets=[ds.subset(valid_local)],
                                callbacks=[lgb.early_stopping(PATIENCE, first_metric_only=True, verbose=False)])
            iterations.append(int(booster.best_iteration or booster.current_iteration()))
        else:
            booster = timer.fit(params, dtrain, rounds)
            iterations.append(rounds)
        out_local = np.flatnonzero((target | calibrate) & (fold == k))
        margin[out_local] = booster.predict(data.X[idx[out_local]], num_iteration=iterations[-1], raw_score=True)
    y = data.y[idx]
    return CrossFit(params, iterations, margin[calibrate], y[calibrate], auc(y[target], margin[target]))


def lgbm_params(settings: Settings, overrides: dict, y: np.ndarray) -> dict:
    """The defaults with one search draw applied (``balance_classes`` becomes a class weight)."""
    params = {**LGBM_PARAMS, "seed": settings.seed, "num_threads": settings.train_threads}
    overrides = dict(overrides)
    if overrides.pop("balance_classes", False):
        positives = max(float(y.sum()), 1.0)
        params["scale_pos_weight"] = (len(y) - positives) / positives
        params["metric"] = "auc"  # a reweighted log-loss would judge the reweighting, not the ranking
    return {**params, **overrides}


def search_candidates(trials: int, seed: int) -> list[dict]:
    """The defaults first, then seeded draws from SEARCH_SPACE (no duplicates): reproducible."""
    rng = np.random.default_rng(seed)
    out, seen = [{}], {json.dumps({}, sort_keys=True)}
    for _ in range(50 * max(trials, 1)):
        if len(out) >= trials:
            break
        draw = {k: v[int(rng.integers(len(v)))] for k, v in SEARCH_SPACE.items()}
        draw = {k: (v.item() if hasattr(v, "item") else v) for k, v in draw.items()}
        key = json.dumps(draw, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(draw)
    return out[: max(trials, 1)]


def tune(timer: Timer, settings: Settings, data: Examples, ds, idx, stop_on,
         calibrate_on=None) -> tuple[CrossFit, list[dict]]:
    """Bounded search: each candidate cross-fitted and early-stopped; best out-of-fold AUC wins."""
    best, history = None, []
    for i, overrides in enumerate(search_candidates(settings.train_search_trials, settings.seed)):
        params = lgbm_params(settings, overrides, data.y[idx])
        cf = cross_fit(timer, data, ds, idx, stop_on, params, settings.train_cv_folds, calibrate_on=calibrate_on)
        history.append({"trial": i, **overrides, "cv_auc": cf.score, "iterations": cf.iterations})
        log.info("trial %d %s: cv auc %.4f, trees %s", i, overrides, cf.score, cf.iterations)
        if best is None or cf.score > best.score + 1e-6:  # ties keep the earlier (simpler) candidate
            best = cf
    return best, history


def fit_scorer(timer: Timer, settings: Settings, ds, cf: CrossFit) -> Scorer:
    """One booster on all of ``ds`` with the cross-fit's settings and tree count, and a calibrator
    fitted on the cross-fit's out-of-fold margins."""
    booster = timer.fit(cf.params, ds, cf.num_iteration)
    calibrator = fit_calibrator(cf.margin, cf.y, settings.calibration_method, seed=settings.seed)
    return Scorer(booster, cf.num_iteration, calibrator)


@dataclass
class Backtest:
    """The backtest's fit: the chosen cross-fit, the search's trials, its scorer and rows."""

    best: CrossFit
    trials: list[dict]
    scorer: Scorer
    searched: np.ndarray  # the rows the search ran on


def fit_backtest(timer: Timer, settings: Settings, data: Examples, honest: np.ndarray) -> Backtest:
    """Tune and fit on the ``honest`` rows: early-stopped out of fold at the validation cutoff,
    calibrated on out-of-fold margins at every honest cutoff.

    On large data the search runs on a stable sample of customers; the chosen settings are then
    cross-fitted on all honest rows (the search's own early stopping saw fewer rows).
    """
    at_valid = data.rows([data.split.valid])
    searched = customer_sample(data, honest, settings.train_search_max_rows)
    calibrate = _calibration_rows(honest, settings.train_calibration_max_rows, settings.seed)
    ds, idx = _dataset(timer, data, searched, settings.train_threads)
    if searched.sum() == honest.sum():
        best, trials = tune(timer, settings, data, ds, idx, at_valid, calibrate)
    else:
        chosen, trials = tune(timer, settings, data, ds, idx, at_valid)
        del ds
        ds, idx = _dataset(timer, data, honest, settings.train_threads)
        best = cross_fit(timer, data, ds, idx, at_valid, chosen.params, settings.train_cv_folds,
                         calibrate_on=calibrate)
    return Backtest(best, trials, fit_scorer(timer, settings, ds, best), searched)


def fit_production(timer: Timer, settings: Settings, data: Examples, full: np.ndarray,
                   best: CrossFit) -> tuple[CrossFit, Scorer]:
    """The backtest's recipe one horizon later, on every full-label row (the test cutoff's too):
    the tuned settings and tree count, calibrated out of fold at every full-label cutoff, so the
    customers scored today get the freshest labels and the latest season's calibration."""
    ds, idx = _dataset(timer, data, full, settings.train_threads)
    cf = cross_fit(timer, data, ds, idx, data.rows([data.split.test]), best.params, settings.train_cv_folds,
                   rounds=best.num_iteration,
                   calibrate_on=_calibration_rows(full, settings.train_calibration_max_rows, settings.seed))
    return cf, fit_scorer(timer, settings, ds, cf)
