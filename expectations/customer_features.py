"""Gate on ``marts.customer_features`` at the scoring cutoff, before training or scoring.

Fixed rules — one row per customer at the run's as-of date, recency and counts in range, rates
in [0, 1], the freshest customer ordered recently — plus bounds learnt from the last good run
(``params["baseline"]``, kept in ``quality.feature_baselines``): the row count, each feature's
null share and mean may only move so far. A shop whose amounts suddenly arrive in cents, or whose
events export is silently empty, fails here rather than reaching a model.
"""
from __future__ import annotations

import datetime as dt
import math

import great_expectations as gx

KEYS = ("customer_id", "as_of_date")
RATES = ("cancellation_rate", "return_rate", "return_rate_365d", "share_orders_discounted",
         "share_orders_with_coupon", "discount_share_of_spend")
NULL_SHARE_SLACK = 0.10  # a feature's null share may rise this much above the last good run's
ROW_COUNT_SLACK = 0.5  # the population may shrink or grow by this share between good runs


def build(params: dict) -> list:
    e = gx.expectations
    columns = set(params.get("columns", ()))
    out = [
        e.ExpectTableRowCountToBeBetween(min_value=params.get("min_rows", 1)),
        e.ExpectColumnValuesToNotBeNull(column="customer_id"),
        e.ExpectColumnValuesToBeUnique(column="customer_id"),
        e.ExpectColumnValuesToNotBeNull(column="as_of_date"),
        e.ExpectColumnValuesToNotBeNull(column="days_since_last_order"),
        e.ExpectColumnValuesToBeBetween(column="days_since_last_order", min_value=0),
    ]
    if params.get("as_of") is not None:  # a datetime range: GX cannot store dates in a value set
        as_of = dt.datetime.combine(params["as_of"], dt.time())
        out.append(e.ExpectColumnValuesToBeBetween(column="as_of_date", min_value=as_of, max_value=as_of))
    if params.get("max_staleness_days") is not None:  # freshness: somebody ordered lately
        out.append(e.ExpectColumnMinToBeBetween(column="days_since_last_order", min_value=0,
                                                max_value=params["max_staleness_days"]))
    if "days_since_first_order" in columns:
        out.append(e.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="days_since_first_order", column_B="days_since_last_order", or_equal=True))
    for col in sorted(columns):
        if col.startswith(("count_orders_", "amount_")):
            out.append(e.ExpectColumnValuesToBeBetween(column=col, min_value=0))
    for col in RATES:
        if col in columns:
            out.append(e.ExpectColumnValuesToBeBetween(column=col, min_value=0, max_value=1))
    out += _learnt(params.get("baseline") or {}, columns, params.get("drift_sd", 0.5))
    return out


def _learnt(baseline: dict, columns: set[str], drift_sd: float) -> list:
    """Bounds from the last good run: row count, null share and mean per feature."""
    e = gx.expectations
    if not baseline or drift_sd <= 0:
        return []
    out = []
    rows = baseline.get("_rows", {}).get("row_count")
    if rows:
        out.append(e.ExpectTableRowCountToBeBetween(min_value=int(rows * (1 - ROW_COUNT_SLACK)),
                                                    max_value=int(math.ceil(rows * (1 + ROW_COUNT_SLACK)))))
    for col, stats in sorted(baseline.items()):
        if col not in columns or col in KEYS:
            continue
        allowed_null = stats["null_share"] + NULL_SHARE_SLACK
        if allowed_null < 1:
            out.append(e.ExpectColumnValuesToNotBeNull(column=col, mostly=round(1 - allowed_null, 6)))
        mean, sd = stats.get("mean"), stats.get("stddev")
        if mean is None or sd is None or not math.isfinite(mean) or not math.isfinite(sd):
            continue
        width = max(drift_sd * sd, 0.05 * abs(mean), 1e-9)
        out.append(e.ExpectColumnMeanToBeBetween(column=col, min_value=mean - width, max_value=mean + width))
    return out
