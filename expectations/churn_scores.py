"""Gate on the scores before they are published.

One row per active customer (every customer with an order on or before the as-of date, counted
from ``raw.orders`` independently of the feature layer), probabilities in [0, 1], every customer
in a known risk tier, value at risk never negative, one model version, the run's as-of and horizon.
"""
from __future__ import annotations

import datetime as dt

import great_expectations as gx

TIERS = ["high", "medium", "low"]


def build(params: dict) -> list:
    e = gx.expectations
    out = [
        e.ExpectColumnValuesToNotBeNull(column="customer_id"),
        e.ExpectColumnValuesToBeUnique(column="customer_id"),
        e.ExpectColumnValuesToNotBeNull(column="churn_probability"),
        e.ExpectColumnValuesToBeBetween(column="churn_probability", min_value=0, max_value=1),
        e.ExpectColumnValuesToNotBeNull(column="risk_tier"),
        e.ExpectColumnValuesToBeInSet(column="risk_tier", value_set=TIERS),
        e.ExpectColumnValuesToBeBetween(column="value_at_risk", min_value=0),
        e.ExpectColumnValuesToNotBeNull(column="model_version"),
        e.ExpectColumnUniqueValueCountToBeBetween(column="model_version", min_value=1, max_value=1),
    ]
    if params.get("expected_rows") is not None:
        out.append(e.ExpectTableRowCountToEqual(value=int(params["expected_rows"])))
    if params.get("as_of") is not None:  # a datetime range: GX cannot store dates in a value set
        as_of = dt.datetime.combine(params["as_of"], dt.time())
        out.append(e.ExpectColumnValuesToBeBetween(column="as_of_date", min_value=as_of, max_value=as_of))
    if params.get("horizon_days") is not None:
        out.append(e.ExpectColumnValuesToBeInSet(column="horizon_days", value_set=[int(params["horizon_days"])]))
    return out
