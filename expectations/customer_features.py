"""Gate on ``marts.customer_features`` at the scoring cutoff, before training or scoring."""
from __future__ import annotations

import great_expectations as gx


def build(params: dict) -> list:
    e = gx.expectations
    return [
        e.ExpectTableRowCountToBeBetween(min_value=params.get("min_rows", 1)),
        e.ExpectColumnValuesToNotBeNull(column="customer_id"),
        e.ExpectColumnValuesToBeUnique(column="customer_id"),
        e.ExpectColumnValuesToNotBeNull(column="as_of_date"),
        e.ExpectColumnValuesToNotBeNull(column="days_since_last_order"),
        e.ExpectColumnValuesToBeBetween(column="days_since_last_order", min_value=0),
        e.ExpectColumnValuesToBeBetween(column="count_orders_90d", min_value=0),
    ]
