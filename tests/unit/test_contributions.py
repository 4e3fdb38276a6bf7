"""Reason-code contributions per distinct route (ml/model/contributions.py) equal LightGBM's pred_contrib."""
from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from ml.model import contributions
from ml.model.contributions import explain, pred_contrib


def _data(n: int = 3000, seed: int = 0):
    """Numeric features with NaNs and exact zeros, integer counts, and two categorical columns."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([
        rng.normal(size=n),
        rng.poisson(2.0, size=n).astype(float),  # many exact zeros and ties
        rng.exponential(3.0, size=n),
        rng.integers(0, 12, size=n).astype(float),  # categorical with 12 levels
        rng.integers(0, 3, size=n).astype(float),  # categorical with 3 levels (one-hot style splits)
        rng.uniform(-1, 1, size=n),
    ]).astype(np.float32)
    X[rng.random(n) < 0.15, 0] = np.nan
    X[rng.random(n) < 0.10, 2] = np.nan
    X[rng.random(n) < 0.10, 3] = np.nan
    X[rng.random(n) < 0.05, 1] = 0.0
    logit = (np.nan_to_num(X[:, 0]) - 0.4 * X[:, 1] + np.isin(X[:, 3], [1, 4, 7]) * 1.5
             + (X[:, 4] == 2) * 0.8 + np.isnan(X[:, 2]) * 0.7 + X[:, 5])
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    return X, y


def _train(X, y, **params) -> lgb.Booster:
    base = {"objective": "binary", "num_leaves": 31, "min_data_in_leaf": 20, "learning_rate": 0.1,
            "max_cat_to_onehot": 4, "min_data_per_group": 20, "cat_smooth": 5, "verbose": -1,
            "seed": 1, "deterministic": True, "num_threads": 1}
    data = lgb.Dataset(X, y, categorical_feature=[3, 4], free_raw_data=False)
    return lgb.train({**base, **params}, data, num_boost_round=25)


@pytest.mark.parametrize("params", [
    {},  # missing type NaN where NaNs were seen, None elsewhere
    {"zero_as_missing": True},  # missing type Zero
    {"use_missing": False},  # missing type None everywhere (NaN reads as 0)
    {"num_leaves": 7},  # small trees: the whole tree is one group
    {"num_leaves": 90, "min_data_in_leaf": 5},  # wide trees (> 64 nodes): directions per node
])
def test_equals_lightgbm_pred_contrib(params):
    X, y = _data()
    booster = _train(X, y, **params)
    # rows the model never saw, incl. unseen and negative categories and values on thresholds
    X_new, _ = _data(2000, seed=1)
    X_new[:50, 3] = 15.0
    X_new[50:60, 3] = -2.0
    X_new[60:70, 3] = 2.7  # truncated to category 2, as LightGBM does
    X_new[70:80, 1] = 1e-40  # read as zero
    stats = {}
    got = pred_contrib(booster, X_new, stats=stats, group_bits=6, chunk_rows=512)
    want = booster.predict(X_new, pred_contrib=True)[:, :-1]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert "fallback" not in stats
    # one native TreeSHAP evaluation per distinct code of a group, never per row
    assert stats["representatives"] <= len(np.unique(X_new, axis=0)) * stats["groups"]
    if params.get("num_leaves") == 7:  # 6 internal nodes: at most 64 codes per tree
        assert stats["groups"] == stats["trees"] and stats["representatives"] <= 64 * stats["trees"]


@pytest.mark.parametrize("params", [{}, {"zero_as_missing": True}, {"num_leaves": 7}, {"num_leaves": 90, "min_data_in_leaf": 5}])
def test_margin_is_lightgbms_raw_score_bit_for_bit(params):
    """explain's margin sums the leaves in LightGBM's order: the very same float64, not a close one."""
    X, y = _data()
    booster = _train(X, y, **params)
    X_new, _ = _data(2000, seed=2)
    X_new[:40, 3] = 15.0
    X_new[40:60, 1] = 1e-40
    for k in (None, 3):
        contrib, margin = explain(booster, X_new, num_iteration=k, group_bits=6, chunk_rows=512)
        np.testing.assert_array_equal(margin, booster.predict(X_new, num_iteration=k, raw_score=True))
        np.testing.assert_allclose(contrib, booster.predict(X_new, num_iteration=k, pred_contrib=True)[:, :-1],
                                   rtol=1e-9, atol=1e-12)


def test_a_tree_without_splits_still_counts_in_the_margin():
    X, y = _data()
    booster = _train(X, y, min_data_in_leaf=2000)  # too few rows to split: one-leaf trees
    contrib, margin = explain(booster, X[:300])
    np.testing.assert_array_equal(margin, booster.predict(X[:300], raw_score=True))
    np.testing.assert_allclose(contrib, booster.predict(X[:300], pred_contrib=True)[:, :-1], rtol=1e-9, atol=1e-12)


def test_repeated_rows_reuse_their_codes():
    X, y = _data()
    booster = _train(X, y)
    stats = {}
    X_rep = np.tile(X[:100], (20, 1))
    got = pred_contrib(booster, X_rep, stats=stats, chunk_rows=256)
    np.testing.assert_allclose(got, booster.predict(X_rep, pred_contrib=True)[:, :-1], rtol=1e-9, atol=1e-12)
    assert stats["representatives"] <= 100 * stats["groups"]


def test_num_iteration_is_respected():
    X, y = _data()
    booster = _train(X, y)
    for k in (1, 10):
        np.testing.assert_allclose(pred_contrib(booster, X[:500], num_iteration=k),
                                   booster.predict(X[:500], num_iteration=k, pred_contrib=True)[:, :-1],
                                   rtol=1e-9, atol=1e-12)


def test_routing_disagreement_falls_back_to_pred_contrib(monkeypatch):
    X, y = _data()
    booster = _train(X, y)
    real = contributions.goes_left
    monkeypatch.setattr(contributions, "goes_left", lambda node, x: ~real(node, x))  # wrong on purpose
    stats = {}
    got = pred_contrib(booster, X[:300], stats=stats)
    assert "routes row" in stats["fallback"]
    np.testing.assert_allclose(got, booster.predict(X[:300], pred_contrib=True)[:, :-1], rtol=1e-12)


def test_reasons_of_the_churn_model_use_it(tmp_path):
    """ChurnModel.contributions: the production scorer's num_iteration, a frame with feature columns."""
    import pandas as pd

    from ml.model.churn_model import ChurnModel, FeatureSpec, Scorer

    X, y = _data()
    booster = _train(X, y)
    names = ["a", "b", "c", "d", "e", "f"]
    frame = pd.DataFrame(X[:400], columns=names)
    spec = FeatureSpec(names)
    scorer = Scorer(booster, 7, None)
    model = ChurnModel(spec, scorer, scorer, 90)
    got = model.contributions(frame)
    assert list(got.columns) == names
    np.testing.assert_allclose(got.to_numpy(), booster.predict(X[:400], num_iteration=7, pred_contrib=True)[:, :-1],
                               rtol=1e-9, atol=1e-12)
    proba, explained = model.explain(frame)
    np.testing.assert_array_equal(proba, model.predict_proba(frame))  # scoring's probability, unchanged
    np.testing.assert_array_equal(explained.to_numpy(), got.to_numpy())
