"""Fingerprints of the raw layer per source and day: which days of which source changed.

Shops send full re-exports that correct, add late, delete or quarantine rows dated in the
past. The feature layer is incremental (built cutoffs are kept, daily tables re-read only
their newest days), so a change to an old day must be found and its consequences rebuilt
(``ml.stages.features.rebuild``). Ingest writes ``raw._day_fingerprints`` in the same transaction that
replaces ``raw.*``: one row per source and day with the day's row count and the sum of the
rows' hashes (order-free, and unlike an XOR a repeated row does not cancel itself out).

A row's day is the day of the column the feature layer dates it by: the source's event time,
a customer's signup (customers are joined to every cutoff on or after it), an order line's
order. Order lines without a staged order feed nothing and are left out; an undated row
(a customer without a signup date) falls under a NULL day, which every cutoff depends on.
"""
from __future__ import annotations

import duckdb

from ml.core.contract import SOURCES
from ml.core.warehouse import table_exists

TABLE = "raw._day_fingerprints"

# how each source's rows are dated: (FROM clause with the row alias r, day expression)
_DATED = {
    **{name: (f"raw.{name} as r", f"cast(r.{source.ts_column} as date)")
       for name, source in SOURCES.items() if source.ts_column},
    "customers": ("raw.customers as r", "cast(r.signup_ts as date)"),
    "order_items": ("raw.order_items as r inner join raw.orders as o on r.order_id = o.order_id",
                    "cast(o.order_ts as date)"),
}


def query() -> str:
    """(source, day, rows, fingerprint, table_rows) of every raw source, computed from ``raw.*``.

    ``table_rows`` (all rows of ``raw.<source>``) lets a later reader see cheaply whether the
    raw table was rewritten by something other than ingest since."""
    parts = [
        f"select '{name}' as source, {day} as day, count(*) as rows, "
        f"cast(sum(hash(r)) as varchar) as fingerprint, "
        f"(select count(*) from raw.{name}) as table_rows from {from_} group by all"
        for name, (from_, day) in _DATED.items()
    ]
    return "\nunion all\n".join(parts)


def record(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Replace ``raw._day_fingerprints`` by the fingerprints of the raw layer as it is now."""
    con.execute(f"create or replace table {TABLE} as select ? as run_id, * from ({query()})", [run_id])


def current(con: duckdb.DuckDBPyConnection) -> str:
    """A SQL relation with the raw layer's fingerprints (source, day, rows, fingerprint).

    The table ingest wrote, unless it is missing or its row counts no longer match the raw
    tables (raw written by other means, e.g. test fixtures): then they are computed again
    and stored (one scan of the raw layer).
    """
    relation = f"(select source, day, rows, fingerprint from {TABLE})"
    if not all(table_exists(con, "raw", name) for name in SOURCES):
        return "(select null::varchar as source, null::date as day, 0::bigint as rows, " \
               "null::varchar as fingerprint limit 0)"
    if table_exists(con, *TABLE.split(".")):
        counted = dict(con.execute(f"select source, any_value(table_rows) from {TABLE} group by 1").fetchall())
        if all(  # count(*) of a whole table is answered from metadata
            int(counted.get(name, 0)) == con.execute(f"select count(*) from raw.{name}").fetchone()[0]
            for name in _DATED
        ):
            return relation
    record(con, "computed-at-build")
    return relation
