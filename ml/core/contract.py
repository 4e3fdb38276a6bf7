"""The raw input contract: which sources exist, their columns and types.

One place that ingest, the generator, dbt sources and the tests agree on. Identifiers are
opaque text (VARCHAR) so leading zeros survive; every timestamp is a naive UTC TIMESTAMP.
Columns marked ``required`` must be present in a source file for it to be usable; the rest
are filled with NULL when absent. ``pii`` columns are hashed with a secret salt at ingest and
never stored in clear text.

Timestamps are read as ISO 8601 unless a source's export uses another layout: the setting
``timestamp_formats`` (``CHURNWATCH_TIMESTAMP_FORMATS``, ``--timestamp-format``) names DuckDB
strptime formats per source, parsed and checked here so that a typo fails before any work.
"""
from __future__ import annotations

import csv
import datetime as dt
import functools
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # DuckDB type
    required: bool = False
    key: bool = False  # not null (and part of the row identity)
    not_null: bool = False  # a row without a value is quarantined (keys are not null too)
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
                _c("is_control", "BOOLEAN", required=True, not_null=True),
                _c("offer_code", "VARCHAR"),  # blank: no offer; else one of the offer catalog's
                _c("channel", "VARCHAR"),
            ),
            ts_column="contact_ts",
        ),
    )
}

EVENT_TYPES = ("view", "search", "add_to_cart", "checkout", "purchase", "login")
ORDER_STATUSES = ("completed", "cancelled", "returned")


# ---- timestamp formats ------------------------------------------------------------------------

ISO_TIMESTAMP = "YYYY-MM-DD[ HH:MM:SS][±HH:MM]"  # what the default cast reads (ml/stages/ingest.py _typed)
# day 31 and hour 13 make every example unambiguous: day before month or not, 24-hour clock or not
EXAMPLE_TIMESTAMP = dt.datetime(2025, 12, 31, 13, 45, 30)


def offer_codes(dbt_project_dir: Path) -> tuple[str, ...]:
    """The offer catalog's codes (``seeds/offer_catalog.csv``): the offers a campaign contact may name."""
    with open(Path(dbt_project_dir) / "seeds" / "offer_catalog.csv", newline="") as f:
        return tuple(row["offer_code"] for row in csv.DictReader(f))


def timestamp_sources() -> list[str]:
    return [s.name for s in SOURCES.values() if any(c.type == "TIMESTAMP" for c in s.columns)]


@functools.lru_cache(maxsize=32)
def timestamp_formats(spec: str) -> dict[str, tuple[str, ...]]:
    """Parse ``"orders=%d/%m/%Y; events=%d/%m/%Y %H:%M"`` into source → strptime formats.

    Entries are separated by ``;``; an entry without ``source=`` applies to every source with a
    timestamp; a source may be named more than once (its formats are tried in the order given,
    the general ones after its own). Each format is checked with DuckDB itself, so an unknown
    %-code or a format without a full date is a one-line ``ValueError`` here, not a failed run.
    """
    own: dict[str, list[str]] = {}
    general: list[str] = []
    with_ts = timestamp_sources()
    for entry in (e.strip() for e in spec.split(";")):
        if not entry:
            continue
        name, sep, fmt = entry.partition("=")
        if not sep:
            name, fmt = "", entry
        name, fmt = name.strip().lower(), fmt.strip()
        if name and name not in with_ts:
            kind = "has no timestamp columns" if name in SOURCES else "is not a source"
            raise ValueError(f"timestamp format {entry!r}: '{name}' {kind} (sources with timestamps: {', '.join(with_ts)})")
        if not fmt:
            raise ValueError(f"timestamp format {entry!r}: the format is empty (e.g. {name or 'orders'}=%d/%m/%Y)")
        _check_format(fmt)
        (own.setdefault(name, []) if name else general).append(fmt)
    if not own and not general:
        return {}
    return {name: tuple(dict.fromkeys(own.get(name, []) + general)) for name in with_ts if own.get(name) or general}


def has_offset(fmt: str) -> bool:
    """A format with a UTC offset or zone name (%z, %Z) parses to an instant, stored as naive UTC."""
    return "%z" in fmt or "%Z" in fmt


def timestamp_example(fmt: str) -> str:
    """EXAMPLE_TIMESTAMP written in ``fmt`` by DuckDB (the same library that parses it)."""
    import duckdb

    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        literal = "timestamptz '2025-12-31 13:45:30+00'" if has_offset(fmt) else f"timestamp '{EXAMPLE_TIMESTAMP}'"
        return con.execute(f"select strftime({literal}, ?)", [fmt]).fetchone()[0]


def expected_timestamp(formats: tuple[str, ...]) -> str:
    """The words a quarantine reason uses for what was expected, with an example of each format."""
    if not formats:
        return f"expected {ISO_TIMESTAMP}, e.g. {EXAMPLE_TIMESTAMP}"
    return f"expected {' or '.join(formats)}, e.g. {' or '.join(timestamp_example(f) for f in formats)}"


def _check_format(fmt: str) -> None:
    import duckdb

    try:
        example = timestamp_example(fmt)
    except duckdb.Error as exc:
        raise ValueError(f"timestamp format {fmt!r}: {str(exc).strip().splitlines()[0].split('Error: ', 1)[-1]}") from None
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        back = con.execute("select try_strptime(?, ?)::date", [example, fmt]).fetchone()[0]
    if back != EXAMPLE_TIMESTAMP.date():
        raise ValueError(
            f"timestamp format {fmt!r}: does not read back a full date (day, month and year), "
            f"e.g. %d/%m/%Y or %d/%m/%Y %H:%M"
        )
