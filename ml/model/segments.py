"""Tiers and named segments of scored customers (a leaf: pure functions, nothing of ours imported).

Three independent views of a customer, each a column of ``marts.customer_segments``:

- **risk tier** (``high`` / ``medium`` / ``low``): calibrated churn probability against two
  thresholds (``settings.risk_tier_high``, ``settings.risk_tier_medium``). Thresholds, not
  quantiles, because a calibrated probability means the same thing in every run.
- **value tier** (``high`` / ``medium`` / ``low``): predicted value ranked within the run: the
  top ``value_tier_high_share`` are high, the next ``value_tier_medium_share`` medium. Value has no
  natural scale across shops, so shares are the portable choice.
- **RFM segment**: recency, frequency and monetary scores 1–5 (5 = best: most recent, most
  orders, most spend), each the quintile of the customer's percentile rank in this run (ties share
  a score). The segment is the first rule that matches, in this order:

  =====================  ==========================================================
  segment                rule (R, F, M scores; "orders" = lifetime order count)
  =====================  ==========================================================
  champions              R >= 4 and F >= 4 and M >= 4
  loyal                  R >= 3 and F >= 4
  new_customers          R >= 4 and orders = 1
  potential_loyalists    R >= 4
  needs_attention        R = 3
  at_risk                R <= 2 and F >= 3   (bought often, not lately)
  hibernating            R = 2
  lost                   R = 1
  =====================  ==========================================================
"""
from __future__ import annotations

import numpy as np
import pandas as pd

RISK_TIER_NAMES = ("high", "medium", "low")
VALUE_TIER_NAMES = ("high", "medium", "low")
SEGMENTS = ("champions", "loyal", "new_customers", "potential_loyalists", "needs_attention",
            "at_risk", "hibernating", "lost")


def risk_tiers(probability: np.ndarray, high: float, medium: float) -> np.ndarray:
    """``high`` at or above ``high``, ``medium`` at or above ``medium``, else ``low``."""
    if not 0.0 <= medium <= high <= 1.0:
        raise ValueError(f"risk tier thresholds must satisfy 0 <= medium <= high <= 1, got {medium}, {high}")
    p = np.asarray(probability, float)
    return np.where(p >= high, "high", np.where(p >= medium, "medium", "low")).astype(object)


def value_tiers(value: np.ndarray, high_share: float, medium_share: float) -> np.ndarray:
    """Top ``high_share`` of value → ``high``, the next ``medium_share`` → ``medium``, rest ``low``."""
    if high_share < 0 or medium_share < 0 or high_share + medium_share > 1:
        raise ValueError("value tier shares must be non-negative and sum to at most 1")
    v = pd.Series(np.asarray(value, float)).fillna(0.0)
    share_above = (v.rank(ascending=False, method="min").to_numpy() - 1) / max(len(v), 1)  # ties share a tier
    return np.where(share_above < high_share, "high",
                    np.where(share_above < high_share + medium_share, "medium", "low")).astype(object)


def quintile_score(values: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """1–5 by percentile rank within the run (ties share a score); NaN counts as the worst."""
    s = pd.Series(np.asarray(values, float))
    worst = -np.inf if higher_is_better else np.inf
    s = s.fillna(worst)
    if not higher_is_better:
        s = -s
    pct = s.rank(pct=True, method="average").to_numpy()
    return np.clip(np.ceil(pct * 5), 1, 5).astype(np.int8)


def rfm_segments(recency_score: np.ndarray, frequency_score: np.ndarray, monetary_score: np.ndarray,
                 order_count: np.ndarray) -> np.ndarray:
    """The named segment of each customer (rules in the module docstring, first match wins)."""
    r, f, m = (np.asarray(a) for a in (recency_score, frequency_score, monetary_score))
    orders = np.nan_to_num(np.asarray(order_count, float), nan=0.0)
    rules = [
        (r >= 4) & (f >= 4) & (m >= 4),
        (r >= 3) & (f >= 4),
        (r >= 4) & (orders <= 1),
        r >= 4,
        r == 3,
        (r <= 2) & (f >= 3),
        r == 2,
        np.ones(len(r), bool),
    ]
    return np.select(rules, list(SEGMENTS), default="lost").astype(object)


def segment_customers(frame: pd.DataFrame, *, risk_high: float, risk_medium: float,
                      value_high_share: float, value_medium_share: float) -> pd.DataFrame:
    """Tiers, RFM scores and segment for a frame with churn_probability, predicted_value,
    days_since_last_order, order_count and spend (one row per customer of one scoring run)."""
    out = pd.DataFrame(index=frame.index)
    out["risk_tier"] = risk_tiers(frame["churn_probability"].to_numpy(), risk_high, risk_medium)
    out["value_tier"] = value_tiers(frame["predicted_value"].to_numpy(), value_high_share, value_medium_share)
    out["recency_score"] = quintile_score(frame["days_since_last_order"].to_numpy(), higher_is_better=False)
    out["frequency_score"] = quintile_score(frame["order_count"].to_numpy())
    out["monetary_score"] = quintile_score(frame["spend"].to_numpy())
    out["segment"] = rfm_segments(out["recency_score"], out["frequency_score"], out["monetary_score"],
                                  frame["order_count"].to_numpy())
    return out
