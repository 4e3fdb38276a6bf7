"""The three baselines every model version must beat on the test cutoff (a leaf over ml.model.btyd).

- ``days_since_last_order``: the rule of thumb, the longer since the last order the likelier churn;
- ``rfm_logistic``: a logistic regression on log recency, frequency and monetary value;
- ``bgnbd``: BG/NBD's probability of no order within the horizon, from the order history alone.

Each has ``fit(frame, y)`` and ``score(frame)`` (higher = likelier to churn); the last two give
probabilities. ``btyd_inputs`` turns the feature columns into BG/NBD's (x, t_x, T), and
``btyd_features`` turns a fitted BG/NBD into model features, so the booster can build on it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ml.model.btyd import BGNBD

RFM_COLUMNS = ("days_since_last_order", "count_orders_lifetime", "amount_lifetime")
BTYD_FEATURES = ("bgnbd_p_alive", "bgnbd_expected_orders_horizon", "bgnbd_p_no_order_horizon")


def _column(frame: pd.DataFrame, name: str, fill: float = 0.0) -> np.ndarray:
    if name not in frame:
        return np.full(len(frame), fill)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(float)


def btyd_inputs(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """BG/NBD's summary per row, in days: repeat order days x, last-order time t_x, age T.

    The features carry the mean gap between order days, and ``t_x = gap · x``, so the number of
    repeat order days is recovered exactly without another column.
    """
    T = np.nan_to_num(_column(frame, "days_since_first_order"), nan=0.0).clip(0)
    recency = np.nan_to_num(_column(frame, "days_since_last_order"), nan=0.0).clip(0)
    t_x = np.clip(T - recency, 0, None)
    gap = _column(frame, "mean_days_between_orders", np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where((gap > 0) & (t_x > 0), np.round(t_x / gap), 0.0)
    n_orders = np.nan_to_num(_column(frame, "count_orders_lifetime"), nan=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_value = np.where(n_orders > 0, _column(frame, "amount_lifetime") / n_orders, np.nan)
    return {"x": x, "t_x": np.where(x > 0, t_x, 0.0), "T": T, "n_orders": n_orders, "mean_value": mean_value}


def fit_bgnbd(frame: pd.DataFrame, max_rows: int = 100_000, seed: int = 0) -> BGNBD:
    """BG/NBD on (a fixed random subsample of) the rows; 100k rows pin four parameters down."""
    if len(frame) > max_rows:
        frame = frame.iloc[np.sort(np.random.default_rng(seed).choice(len(frame), max_rows, replace=False))]
    s = btyd_inputs(frame)
    return BGNBD.fit(s["x"], s["t_x"], s["T"])


def btyd_features(model: BGNBD, frame: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """BG/NBD's view of each row as features: alive, expected orders and P(no order) in the horizon."""
    s = btyd_inputs(frame)
    return pd.DataFrame(
        {
            "bgnbd_p_alive": model.p_alive(s["x"], s["t_x"], s["T"]),
            "bgnbd_expected_orders_horizon": model.expected_purchases(horizon_days, s["x"], s["t_x"], s["T"]),
            "bgnbd_p_no_order_horizon": model.p_no_purchase(horizon_days, s["x"], s["t_x"], s["T"]),
        },
        index=frame.index,
    )


# ---- the baselines ---------------------------------------------------------------------------------


class RecencyBaseline:
    """Days since the last order, as a score."""

    name = "days_since_last_order"
    gives_probability = False

    def fit(self, frame: pd.DataFrame, y) -> "RecencyBaseline":
        return self

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        days = _column(frame, "days_since_last_order", np.nan)
        return np.where(np.isnan(days), np.nanmax(days, initial=0.0) + 1.0, days)


class RFMLogisticBaseline:
    """Logistic regression on standardised log(1 + R), log(1 + F), log(1 + M)."""

    name = "rfm_logistic"
    gives_probability = True

    def _matrix(self, frame: pd.DataFrame) -> np.ndarray:
        cols = [np.log1p(np.nan_to_num(_column(frame, c), nan=0.0).clip(0)) for c in RFM_COLUMNS]
        return np.column_stack(cols)

    def fit(self, frame: pd.DataFrame, y) -> "RFMLogisticBaseline":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        self.model.fit(self._matrix(frame), np.asarray(y, int))
        return self

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(self._matrix(frame))[:, 1]


class BGNBDBaseline:
    """BG/NBD P(no order in the horizon); fitted on order histories, labels unused."""

    name = "bgnbd"
    gives_probability = True

    def __init__(self, horizon_days: int, model: BGNBD | None = None, seed: int = 0):
        self.horizon_days, self.model, self.seed = horizon_days, model, seed

    def fit(self, frame: pd.DataFrame, y=None) -> "BGNBDBaseline":
        if self.model is None:
            self.model = fit_bgnbd(frame, seed=self.seed)
        return self

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        s = btyd_inputs(frame)
        return self.model.p_no_purchase(self.horizon_days, s["x"], s["t_x"], s["T"])


def fit_baselines(frame: pd.DataFrame, y, horizon_days: int, bgnbd: BGNBD | None = None, seed: int = 0) -> list:
    """The three baselines fitted on the training rows (BG/NBD reused when already fitted)."""
    return [
        RecencyBaseline().fit(frame, y),
        RFMLogisticBaseline().fit(frame, y),
        BGNBDBaseline(horizon_days, bgnbd, seed).fit(frame, y),
    ]
