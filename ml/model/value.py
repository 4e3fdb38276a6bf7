"""Customer value: expected spend over the next 365 days *if the customer stays*.

``value_at_risk = churn_probability × predicted_value`` is then the spend the shop stands to lose.
Two models, the better one the data allows:

- ``SpendRegressor`` (LightGBM, Tweedie loss) when the training cutoffs span a year: every cutoff
  ``c`` with a cutoff about a year later (``e``) gives labels, the spend in ``(c, e]`` (the
  difference of lifetime spend), for the customers who did not churn at ``c`` (they ordered within
  the horizon): value if retained. Its error is honest: fitted on the earlier origins, measured on
  the latest one, beside the naive guess "as much as in the past year" and BG/NBD × Gamma-Gamma.
- ``BTYDValue`` (BG/NBD purchases × Gamma-Gamma spend) otherwise: label-free, value if alive. Its
  error is measured on the window closest to a year the data can check (fitted at a past cutoff,
  the plain expectation against the spend that followed).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.model.baselines import btyd_inputs, fit_bgnbd
from ml.model.btyd import BGNBD, GammaGamma

VALUE_DAYS = 365
YEAR_TOLERANCE_DAYS = 31  # an origin pairs with a cutoff 334..365 days later (the 30-day grid has 360)
REGRESSOR_PARAMS = {"objective": "tweedie", "tweedie_variance_power": 1.3, "learning_rate": 0.03, "num_leaves": 15,
                    "min_data_in_leaf": 100, "feature_fraction": 0.8, "lambda_l2": 10.0, "verbose": -1,
                    "deterministic": True, "force_row_wise": True}
REGRESSOR_ROUNDS = 400


@dataclass
class BTYDValue:
    purchases: BGNBD
    spend: GammaGamma
    days: int = VALUE_DAYS
    kind = "bgnbd_gamma_gamma"

    @classmethod
    def fit(cls, frame: pd.DataFrame, days: int = VALUE_DAYS, purchases: BGNBD | None = None, seed: int = 0) -> "BTYDValue":
        purchases = purchases or fit_bgnbd(frame, seed=seed)
        s = btyd_inputs(frame)
        return cls(purchases, GammaGamma.fit(s["n_orders"], s["mean_value"]), days)

    def predict(self, frame: pd.DataFrame, days: int | None = None, if_active: bool = True) -> np.ndarray:
        """Expected spend over the next ``days`` (default 365); if alive, or the plain expectation."""
        s = btyd_inputs(frame)
        orders = self.purchases.expected_purchases(days or self.days, s["x"], s["t_x"], s["T"])
        if if_active:
            orders = orders / np.maximum(self.purchases.p_alive(s["x"], s["t_x"], s["T"]), 1e-6)
        per_order = self.spend.expected_order_value(s["n_orders"], s["mean_value"])
        return np.nan_to_num(np.clip(orders * per_order, 0.0, None))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "bgnbd": self.purchases.to_dict(), "gamma_gamma": self.spend.to_dict()}


@dataclass
class SpendRegressor:
    """LightGBM on the churn model's features → spend over the next 365 days if retained."""

    spec: object  # ml.model.churn_model.FeatureSpec
    booster: object
    scale: float  # 365 / the label window's days
    kind = "lightgbm_tweedie"

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.clip(self.booster.predict(self.spec.matrix(frame)), 0.0, None) * self.scale

    def to_dict(self) -> dict:
        return {"kind": self.kind, "trees": self.booster.current_iteration(), "scale": self.scale}


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


def year_pairs(cutoffs) -> list[tuple]:
    """(origin, end) cutoff pairs about a year apart, oldest first."""
    cutoffs = sorted(cutoffs)
    pairs = []
    for c in cutoffs:
        ends = [e for e in cutoffs if VALUE_DAYS - YEAR_TOLERANCE_DAYS <= (e - c).days <= VALUE_DAYS]
        if ends:
            pairs.append((c, max(ends)))
    return pairs


def spend_between(info: pd.DataFrame, cutoff: np.ndarray, origin, end, retained: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows at ``origin`` of retained customers and their spend until ``end`` (lifetime difference)."""
    at_origin = np.flatnonzero((cutoff == np.datetime64(origin, "D")) & retained)
    later = info.loc[cutoff == np.datetime64(end, "D"), ["customer_id", "amount_lifetime"]].set_index("customer_id")
    after = later["amount_lifetime"].reindex(info["customer_id"].to_numpy()[at_origin]).to_numpy(float)
    spend = np.clip(np.nan_to_num(after - info["amount_lifetime"].to_numpy(float)[at_origin], nan=0.0), 0.0, None)
    return at_origin, spend


def fit_value(fit, spec, X: np.ndarray, y: np.ndarray, cutoff: np.ndarray, info: pd.DataFrame, params: dict,
              btyd_fallback, rows: np.ndarray | None = None) -> tuple[object, dict[str, float]]:
    """The value model and its honest error, as ``value_*`` metrics.

    ``fit`` is ``lightgbm.train`` (or a timed wrapper); ``btyd_fallback()`` returns (model, metrics)
    when the cutoffs do not span a year. ``rows`` (default: all) limits the customers it learns from.
    """
    pairs = year_pairs({pd.Timestamp(c).date() for c in np.unique(cutoff)})
    if len(pairs) < 2:
        return btyd_fallback()
    import lightgbm as lgb

    retained = (y == 0) if rows is None else (y == 0) & rows
    examples = [spend_between(info, cutoff, origin, end, retained) for origin, end in pairs]
    params = {**REGRESSOR_PARAMS, **params}

    def booster(parts):
        rows = np.concatenate([r for r, _ in parts])
        return fit(params, lgb.Dataset(X[rows], np.concatenate([s for _, s in parts])), REGRESSOR_ROUNDS)

    # honest error: fitted on the earlier origins, measured on the latest
    rows, actual = examples[-1]
    window = (pairs[-1][1] - pairs[-1][0]).days
    model = booster(examples[:-1])
    frame = info.iloc[rows].reset_index(drop=True)
    metrics = {"value_eval_window_days": float(window), "value_eval_customers": float(len(rows)),
               "value_train_origins": float(len(pairs) - 1)}
    metrics.update({f"value_{k}": v for k, v in value_errors(actual, model.predict(X[rows])).items()})
    naive = frame["amount_365d"].fillna(0.0).to_numpy(float) * window / VALUE_DAYS
    metrics.update({f"value_naive_{k}": v for k, v in value_errors(actual, naive).items()})
    btyd = BTYDValue.fit(frame, window).predict(frame, window, if_active=True)
    metrics.update({f"value_btyd_{k}": v for k, v in value_errors(actual, btyd).items()})
    # the model that travels: every origin
    return SpendRegressor(spec, booster(examples), VALUE_DAYS / window), metrics


def evaluate_btyd(origin: pd.DataFrame, later_spend: pd.Series, days: int, seed: int = 0) -> dict[str, float]:
    """BTYD fitted at a past cutoff, its plain ``days``-ahead expectation against the spend that followed.

    ``origin`` holds the features at that cutoff (with ``customer_id``); ``later_spend`` maps
    customer_id → lifetime spend ``days`` later. Returns ``value_*`` and ``value_naive_*`` errors.
    """
    frame = origin.reset_index(drop=True)
    actual = later_spend.reindex(frame["customer_id"]).to_numpy(float) - frame["amount_lifetime"].to_numpy(float)
    keep = np.isfinite(actual)
    frame, actual = frame[keep], np.clip(actual[keep], 0.0, None)
    model = BTYDValue.fit(frame, days, seed=seed)
    naive = frame["amount_365d"].fillna(0.0).to_numpy(float) * days / VALUE_DAYS
    out = {"value_eval_window_days": float(days), "value_eval_customers": float(len(frame))}
    out.update({f"value_{k}": v for k, v in value_errors(actual, model.predict(frame, days, if_active=False)).items()})
    out.update({f"value_naive_{k}": v for k, v in value_errors(actual, naive).items()})
    return out
