"""Customer value: expected spend over the next 365 days from BG/NBD purchases × Gamma-Gamma spend.

No labels are needed to fit it (only each customer's order history up to the cutoff), so it is
fitted on the training cutoffs and travels inside the churn model. Its error is measured on the
longest window the data can check: fitted at the earliest training cutoff c, it predicts spend
over (c, as_of], which is compared with what the customers actually spent (the difference of
their lifetime spend at the two dates), beside the naive guess "as much as in the past year".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.baselines import btyd_inputs, fit_bgnbd
from ml.btyd import BGNBD, GammaGamma

VALUE_DAYS = 365


@dataclass
class ValueModel:
    purchases: BGNBD
    spend: GammaGamma
    days: int = VALUE_DAYS

    @classmethod
    def fit(cls, frame: pd.DataFrame, days: int = VALUE_DAYS, purchases: BGNBD | None = None, seed: int = 0) -> "ValueModel":
        purchases = purchases or fit_bgnbd(frame, seed=seed)
        s = btyd_inputs(frame)
        return cls(purchases, GammaGamma.fit(s["n_orders"], s["mean_value"]), days)

    def predict(self, frame: pd.DataFrame, days: int | None = None) -> np.ndarray:
        """Expected spend over the next ``days`` (default 365) per row; never negative or NaN."""
        s = btyd_inputs(frame)
        orders = self.purchases.expected_purchases(days or self.days, s["x"], s["t_x"], s["T"])
        per_order = self.spend.expected_order_value(s["n_orders"], s["mean_value"])
        return np.nan_to_num(np.clip(orders * per_order, 0.0, None))

    def to_dict(self) -> dict:
        return {"bgnbd": self.purchases.to_dict(), "gamma_gamma": self.spend.to_dict(), "days": self.days}


def value_errors(actual, predicted) -> dict[str, float]:
    """Absolute and relative errors of a spend prediction, and how well it ranks customers."""
    from scipy.stats import spearmanr

    a, p = np.asarray(actual, float), np.asarray(predicted, float)
    total = a.sum()
    return {
        "mae": float(np.mean(np.abs(p - a))),
        "rmse": float(np.sqrt(np.mean((p - a) ** 2))),
        "total_relative_error": float((p.sum() - total) / total) if total else float("nan"),
        "spearman": float(spearmanr(a, p).statistic) if len(a) > 2 else float("nan"),
    }


def evaluate_value(earliest: pd.DataFrame, later_spend: pd.Series, days: int, seed: int = 0) -> dict[str, float]:
    """Fit at the earliest cutoff, predict ``days`` ahead, compare with the spend that followed.

    ``earliest`` holds the features at the earliest cutoff (with ``customer_id``); ``later_spend``
    maps customer_id → lifetime spend ``days`` later. Returns the model's errors and the naive
    guess's (past 365-day spend scaled to the window) as ``value_*`` and ``value_naive_*``.
    """
    frame = earliest.reset_index(drop=True)
    actual = later_spend.reindex(frame["customer_id"]).to_numpy(float) - frame["amount_lifetime"].to_numpy(float)
    keep = np.isfinite(actual)
    frame, actual = frame[keep], np.clip(actual[keep], 0.0, None)
    model = ValueModel.fit(frame, days, seed=seed)
    naive = frame["amount_365d"].fillna(0.0).to_numpy(float) * days / 365.0
    out = {"value_eval_window_days": float(days), "value_eval_customers": float(len(frame))}
    out.update({f"value_{k}": v for k, v in value_errors(actual, model.predict(frame, days)).items()})
    out.update({f"value_naive_{k}": v for k, v in value_errors(actual, naive).items()})
    return out
