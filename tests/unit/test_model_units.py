"""Unit tests of the model's parts: BG/NBD and Gamma-Gamma, baselines, calibration, split, features."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ml.model.baselines import btyd_inputs, fit_baselines
from ml.model.btyd import BGNBD, GammaGamma
from ml.model.calibration import IsotonicCalibrator, PlattCalibrator, fit_calibrator
from ml.model.metrics import auc, expected_calibration_error
from ml.model.churn_model import FeatureSpec
from ml.stages.train.examples import Examples
from ml.stages.train.fit import _calibration_rows, search_candidates
from ml.stages.train.split import customer_folds, customer_sample, plan_split


def simulate_bgnbd(n: int, r=0.8, alpha=30.0, a=0.7, b=3.0, horizon=90.0, seed=0):
    """Customers from the BG/NBD story itself: (x, t_x, T) and purchases in (T, T + horizon]."""
    rng = np.random.default_rng(seed)
    lam, p, T = rng.gamma(r, 1 / alpha, n), rng.beta(a, b, n), rng.uniform(30, 700, n)
    x, t_x, future = np.zeros(n), np.zeros(n), np.zeros(n)
    alive, t = np.ones(n, bool), np.zeros(n)
    while alive.any():  # vectorised over customers, one purchase per step
        t = np.where(alive, t + rng.exponential(1 / lam), t)
        alive &= t <= T + horizon
        past, ahead = alive & (t <= T), alive & (t > T)
        x[past] += 1
        t_x[past] = t[past]
        future[ahead] += 1
        alive &= rng.uniform(size=n) >= p
    return x, t_x, T, future


def test_bgnbd_recovers_its_parameters_and_predicts_the_future():
    x, t_x, T, future = simulate_bgnbd(20_000)
    m = BGNBD.fit(x, t_x, T)
    assert m.r == pytest.approx(0.8, rel=0.15) and m.alpha == pytest.approx(30, rel=0.2)
    assert m.a == pytest.approx(0.7, rel=0.25) and m.b == pytest.approx(3.0, rel=0.35)
    expected = m.expected_purchases(90, x, t_x, T)
    assert expected.sum() == pytest.approx(future.sum(), rel=0.06)
    p0 = m.p_no_purchase(90, x, t_x, T)
    assert p0.mean() == pytest.approx((future == 0).mean(), abs=0.02)
    assert auc(future == 0, p0) > 0.8
    assert np.all((m.p_alive(x, t_x, T) > 0) & (m.p_alive(x, t_x, T) <= 1))


def test_gamma_gamma_shrinks_towards_the_population_mean():
    rng = np.random.default_rng(3)
    n = rng.integers(1, 8, 5000).astype(float)
    nu = rng.gamma(4.0, 1 / 0.1, len(n))  # per-customer scale: mean order value p/nu
    mean_value = np.array([rng.gamma(3.0, 1 / v, int(k)).mean() for v, k in zip(nu, n)])
    gg = GammaGamma.fit(n, mean_value)
    e = gg.expected_order_value(n, mean_value)
    pop = gg.expected_order_value(np.array([0.0]), np.array([np.nan]))[0]
    assert np.all(np.isfinite(e)) and pop == pytest.approx(mean_value.mean(), rel=0.2)
    one, many = gg.expected_order_value(np.array([1.0, 20.0]), np.array([3 * pop, 3 * pop]))
    assert pop < one < many < 3 * pop  # few orders: pulled to the mean; many: close to own mean


def _features(x, t_x, T):
    """The customer_features columns that carry BG/NBD's summary (days)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.where(x > 0, t_x / x, np.nan)
    return pd.DataFrame({"days_since_first_order": np.floor(T), "days_since_last_order": np.floor(T) - np.floor(t_x),
                         "mean_days_between_orders": gap, "count_orders_lifetime": x + 1,
                         "amount_lifetime": (x + 1) * 50.0})


def test_btyd_inputs_recover_repeat_order_days_from_the_mean_gap():
    x = np.array([0.0, 1.0, 5.0, 12.0])
    t_x = np.array([0.0, 30.0, 100.0, 400.0])
    s = btyd_inputs(_features(x, t_x, np.array([50.0, 60.0, 300.0, 500.0])))
    assert list(s["x"]) == list(x) and list(s["t_x"]) == list(t_x)


def test_baselines_rank_future_churn():
    x, t_x, T, future = simulate_bgnbd(6000, seed=5)
    frame = _features(x, t_x, T)
    y = (future == 0).astype(int)
    for baseline in fit_baselines(frame, y, 90):
        assert auc(y, baseline.score(frame)) > 0.7, baseline.name


def test_calibrators_are_monotone_and_calibrated():
    rng = np.random.default_rng(2)
    margin = rng.normal(0, 2, 20_000)
    y = (rng.uniform(size=len(margin)) < 1 / (1 + np.exp(-(0.5 * margin - 0.3)))).astype(int)
    for cal in (PlattCalibrator().fit(margin, y), IsotonicCalibrator().fit(margin, y), fit_calibrator(margin, y)):
        p = cal.predict(margin)
        assert expected_calibration_error(y, p) < 0.02
        order = np.argsort(margin)
        assert np.all(np.diff(p[order]) >= 0)
        assert auc(y, p) == pytest.approx(auc(y, margin), abs=1e-9)  # no ties introduced: ranking kept


def test_split_is_honest_and_reports_short_history():
    cutoffs = [dt.date(2025, 1, 1) + dt.timedelta(days=30 * k) for k in range(8)]
    s = plan_split(cutoffs, 90, cutoffs[-1])
    assert s.test == cutoffs[-1] and s.is_honest
    assert all(c + dt.timedelta(days=90) <= s.test for c in s.honest) and s.valid == s.honest[-1]
    assert s.valid == cutoffs[-4] and len(s.full) == 8
    short = plan_split(cutoffs[:2], 90, cutoffs[1])
    assert not short.is_honest and short.honest == (cutoffs[0],)
    with pytest.raises(RuntimeError, match="at least 2"):
        plan_split(cutoffs[:1], 90, cutoffs[0])


def test_split_tests_on_the_cutoff_dbt_marks_and_refuses_a_stale_mark():
    """The test cutoff is dbt's is_backtest_cutoff; a mark that is not the latest full-label cutoff
    (features built for another as-of date) or no mark at all stops training instead of testing on the past."""
    cutoffs = [dt.date(2025, 1, 1) + dt.timedelta(days=30 * k) for k in range(8)]
    assert plan_split(cutoffs, 90, pd.Timestamp(cutoffs[-1])).test == cutoffs[-1]
    for stale in (cutoffs[-2], None):
        with pytest.raises(RuntimeError, match="built for another as-of date"):
            plan_split(cutoffs, 90, stale)


def test_folds_are_stable_per_customer_and_search_is_seeded():
    ids = np.array(["001", "002", "001", "abc", "002"], dtype=object)
    f = customer_folds(ids, 3)
    assert f[0] == f[2] and f[1] == f[4] and set(f) <= {0, 1, 2}
    assert list(customer_folds(ids, 3)) == list(f)
    a, b = search_candidates(6, 42), search_candidates(6, 42)
    assert a == b and a[0] == {} and len(a) == 6 and len({str(sorted(c.items())) for c in a}) == 6


def test_search_sample_keeps_whole_customers_and_is_stable():
    ids = np.array([f"c{i:05d}" for i in range(2_000)] * 5, dtype=object)  # 5 cutoffs per customer
    data = Examples(FeatureSpec([]), np.zeros((len(ids), 0), np.float32), np.zeros(len(ids), np.int8),
                    np.zeros(len(ids), "datetime64[D]"), customer_folds(ids, 3), pd.DataFrame({"customer_id": ids}))
    everything = np.ones(len(ids), bool)
    assert customer_sample(data, everything, len(ids)) is everything  # small data: all rows
    sample = customer_sample(data, everything, 2_500)
    assert 1_800 < sample.sum() < 3_200 and sample.sum() % 5 == 0  # whole customers, about the size asked
    kept = set(ids[sample])
    assert all(sample[np.isin(ids, list(kept))]) and np.array_equal(sample, customer_sample(data, everything, 2_500))
    smaller = customer_sample(data, sample, 1_000)  # nested: the search sample inside the fit sample
    assert 500 < smaller.sum() < 1_500 and not (smaller & ~sample).any()
    calibrate = _calibration_rows(everything, 1_000, seed=1)
    assert calibrate.sum() == 1_000 and np.array_equal(calibrate, _calibration_rows(everything, 1_000, seed=1))


def test_feature_spec_codes_text_and_keeps_unknowns_missing():
    train = pd.DataFrame({"n": [1, 2, None], "channel": ["web", "app", None]})
    spec = FeatureSpec.from_data(train, ["n", "channel"])
    assert spec.categories == {"channel": ["app", "web"]} and spec.categorical_indices == [1]
    X = spec.matrix(pd.DataFrame({"n": [5], "channel": ["fax"]}))
    assert X.dtype == np.float32 and X[0, 0] == 5 and np.isnan(X[0, 1])
    X = spec.matrix(pd.DataFrame({"channel": ["web"]}))  # a missing column is missing, never invented
    assert np.isnan(X[0, 0]) and X[0, 1] == 1
    assert list(spec.value_side(pd.DataFrame({"n": [3.0, 1.0, None], "channel": ["a", "b", "c"]}))["n"]) == [1, 0, -1]
