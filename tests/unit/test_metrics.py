"""Unit tests of the model metrics (pure functions)."""
from __future__ import annotations

import numpy as np
import pytest

from ml.model.metrics import (auc, brier, calibration_table, classification_report, expected_calibration_error,
                        gains_table, lift_at, recall_at, segment_auc)


def test_auc_and_single_class():
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auc([0, 1, 0, 1], [0.9, 0.1, 0.8, 0.2]) == 0.0
    assert np.isnan(auc([1, 1, 1], [0.1, 0.2, 0.3]))


def test_ece_is_zero_when_predictions_match_rates_and_large_when_not():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 200_000)
    y = rng.uniform(0, 1, len(p)) < p
    assert expected_calibration_error(y, p) < 0.005
    assert expected_calibration_error(y, np.clip(p + 0.1, 0, 1)) == pytest.approx(0.1, abs=0.01)
    assert brier(y, p) == pytest.approx(1 / 6, abs=0.003)  # E[p(1-p)] for p ~ U(0,1)


def test_lift_and_recall_in_the_top_share():
    y = np.array([1] * 10 + [0] * 90)
    perfect = -np.arange(100.0)  # the churners first
    assert lift_at(y, perfect, 0.10) == pytest.approx(10.0)
    assert recall_at(y, perfect, 0.10) == pytest.approx(1.0)
    assert recall_at(y, perfect, 0.20) == pytest.approx(1.0)
    assert lift_at(y, np.zeros(100), 0.10) == pytest.approx(1.0)  # all tied: as good as random
    assert recall_at(y, np.r_[np.ones(5), np.zeros(95)], 0.10) == pytest.approx(0.5 + 0.5 * 5 / 95)


def test_segment_auc_skips_single_class_segments():
    y = np.array([0, 1, 0, 1, 1, 1])
    s = np.array([0.1, 0.9, 0.2, 0.8, 0.5, 0.6])
    seg = np.array(["a", "a", "b", "b", "c", "c"])
    assert segment_auc(y, s, seg) == {"a": 1.0, "b": 1.0}


def test_curves_for_plots():
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 5000)
    y = (rng.uniform(0, 1, 5000) < p).astype(int)
    t = calibration_table(y, p, 10)
    assert np.all(np.diff(t["predicted"]) > 0) and t["share"].sum() == pytest.approx(1.0)
    assert np.max(np.abs(t["predicted"] - t["observed"])) < 0.06
    g = gains_table(y, p)
    assert g["gains"][-1] == pytest.approx(1.0) and np.all(np.diff(g["gains"]) >= 0)
    assert g["lift"][0] > 1.5


def test_report_has_the_stable_names():
    r = classification_report([0, 1, 0, 1], [0.2, 0.7, 0.4, 0.9])
    assert {"auc", "pr_auc", "brier", "ece", "lift_at_10pct", "lift_at_20pct", "recall_at_10pct",
            "recall_at_20pct", "base_rate"} <= set(r)
