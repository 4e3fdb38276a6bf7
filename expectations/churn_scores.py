"""Gate on the scores before they are published: one row per customer, probabilities in [0, 1]."""
from __future__ import annotations

import great_expectations as gx


def build(params: dict) -> list:
    e = gx.expectations
    expected = params.get("expected_rows")
    out = [
        e.ExpectColumnValuesToNotBeNull(column="customer_id"),
        e.ExpectColumnValuesToBeUnique(column="customer_id"),
        e.ExpectColumnValuesToNotBeNull(column="churn_probability"),
        e.ExpectColumnValuesToBeBetween(column="churn_probability", min_value=0, max_value=1),
        e.ExpectColumnValuesToBeInSet(column="risk_tier", value_set=["high", "medium", "low"]),
    ]
    if expected is not None:
        out.append(e.ExpectTableRowCountToEqual(value=int(expected)))
    return out
