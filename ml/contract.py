"""The raw input contract: which sources exist, their columns and types.

One place that ingest, the generator, dbt sources and the tests agree on. Identifiers are
opaque text (VARCHAR) so leading zeros survive; every timestamp is a naive UTC TIMESTAMP.
Columns marked ``required`` must be present in a source file for it to be usable; the rest
are filled with NULL when absent. ``pii`` columns are hashed with a secret salt at ingest and
never stored in clear text.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # DuckDB type
    required: bool = False
    key: bool = False  # not null (and part of the row identity)
    pii: bool = False


@dataclass(frozen=True)
class Source:
    name: str
    columns: tuple[Column, ...]
    required: bool = False  # the whole source must be present
    ts_column: str | None = None  # the event time; rows after as-of are ignored
    unique_key: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]


def _c(name: str, type_: str, **kw) -> Column:
    return Column(name, type_, **kw)


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "orders",
            (
                _c("order_id", "VARCHAR", required=True, key=True),
                _c("customer_id", "VARCHAR", required=True, key=True),
                _c("order_ts", "TIMESTAMP", required=True, key=True),
                _c("amount", "DOUBLE", required=True, key=True),
                _c("discount_amount", "DOUBLE"),
                _c("coupon_code", "VARCHAR"),
                _c("status", "VARCHAR"),  # completed | cancelled | returned
                _c("channel", "VARCHAR"),
            ),
            required=True,
            ts_column="order_ts",
            unique_key=("order_id",),
        ),
        Source(
            "customers",
            (
                _c("customer_id", "VARCHAR", required=True, key=True),
                _c("signup_ts", "TIMESTAMP"),
                _c("country", "VARCHAR"),
                _c("region", "VARCHAR"),
                _c("age", "INTEGER"),
                _c("gender", "VARCHAR"),
                _c("acquisition_channel", "VARCHAR"),
                _c("email", "VARCHAR", pii=True),
                _c("phone", "VARCHAR", pii=True),
            ),
            unique_key=("customer_id",),
        ),
        Source(
            "order_items",
            (
                _c("order_id", "VARCHAR", required=True, key=True),
                _c("product_id", "VARCHAR", required=True, key=True),
                _c("category", "VARCHAR"),
                _c("quantity", "INTEGER"),
                _c("unit_price", "DOUBLE"),
            ),
        ),
        Source(
            "events",
            (
                _c("customer_id", "VARCHAR", required=True, key=True),
                _c("event_ts", "TIMESTAMP", required=True, key=True),
                _c("event_type", "VARCHAR", required=True, key=True),
                _c("session_id", "VARCHAR"),
                _c("product_id", "VARCHAR"),
                _c("device", "VARCHAR"),
            ),
            ts_column="event_ts",
        ),
        Source(
            "reviews",
            (
                _c("customer_id", "VARCHAR", required=True, key=True),
                _c("order_id", "VARCHAR"),
                _c("review_ts", "TIMESTAMP", required=True, key=True),
                _c("rating", "INTEGER", required=True, key=True),
            ),
            ts_column="review_ts",
        ),
        Source(
            "support_tickets",
            (
                _c("customer_id", "VARCHAR", required=True, key=True),
                _c("ticket_id", "VARCHAR"),
                _c("opened_ts", "TIMESTAMP", required=True, key=True),
                _c("resolved_ts", "TIMESTAMP"),
                _c("topic", "VARCHAR"),
                _c("satisfaction", "INTEGER"),
            ),
            ts_column="opened_ts",
        ),
        Source(
            "campaign_contacts",
            (
                _c("campaign_id", "VARCHAR", required=True, key=True),
                _c("customer_id", "VARCHAR", required=True, key=True),
                _c("contact_ts", "TIMESTAMP", required=True, key=True),
                _c("is_control", "BOOLEAN", required=True),
                _c("offer_code", "VARCHAR"),
                _c("channel", "VARCHAR"),
            ),
            ts_column="contact_ts",
        ),
    )
}

EVENT_TYPES = ("view", "search", "add_to_cart", "checkout", "purchase", "login")
ORDER_STATUSES = ("completed", "cancelled", "returned")
