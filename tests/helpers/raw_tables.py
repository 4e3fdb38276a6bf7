"""Raw tables for the dbt tests and the feature benchmark, without the ingest stage.

``create_raw_tables`` lays out ``raw.*`` exactly as ingest does (contract columns and types;
customers with ``email_hash``/``phone_hash``; absent optional sources as empty tables).
A shop comes from ``ml.synth.generate`` when it exists (``load_synth_dir``), or from
``generate_shop``: a fast, deterministic shop written in DuckDB SQL, so tests and the tier-M
benchmark do not depend on the generator being finished.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from ml.core.contract import SOURCES

TS_COLUMNS = {name: s.ts_column for name, s in SOURCES.items() if s.ts_column}


def raw_columns(source: str) -> list[tuple[str, str]]:
    """(name, type) of raw.<source> as ingest writes it (PII columns become *_hash)."""
    cols = []
    for c in SOURCES[source].columns:
        cols.append((f"{c.name}_hash", "VARCHAR") if c.pii else (c.name, c.type))
    return cols


def create_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create every raw.<source> table, empty and typed (replacing any existing one)."""
    con.execute("create schema if not exists raw")
    for name in SOURCES:
        cols = ", ".join(f'"{n}" {t}' for n, t in raw_columns(name))
        con.execute(f"create or replace table raw.{name} ({cols})")


def insert_rows(con: duckdb.DuckDBPyConnection, source: str, rows: list[dict]) -> None:
    """Append hand-made rows (dicts; missing columns are NULL) to raw.<source>."""
    names = [n for n, _ in raw_columns(source)]
    placeholders = ", ".join("?" for _ in names)
    con.executemany(
        f"insert into raw.{source} values ({placeholders})",
        [[row.get(n) for n in names] for row in rows],
    )


def empty_optional_sources(con: duckdb.DuckDBPyConnection) -> None:
    """Leave only orders: every optional source becomes an empty table."""
    for name, source in SOURCES.items():
        if not source.required:
            con.execute(f"delete from raw.{name}")


def cut_at(con: duckdb.DuckDBPyConnection, cutoff: dt.date) -> None:
    """Drop every record dated after ``cutoff`` (as ingest does for --as-of)."""
    bound = f"timestamp '{cutoff + dt.timedelta(days=1)}'"
    for name, column in TS_COLUMNS.items():
        con.execute(f"delete from raw.{name} where {column} >= {bound}")
    con.execute("delete from raw.order_items where order_id not in (select order_id from raw.orders)")
    con.execute(f"delete from raw.customers where signup_ts >= {bound}")


def synth_available() -> bool:
    try:
        from ml.synth import generate  # noqa: F401
    except Exception:
        return False
    return True


def load_synth_dir(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> None:
    """Load a generated shop (one parquet file or folder per source) into raw.*."""
    create_raw_tables(con)
    for name in SOURCES:
        candidates = [raw_dir / f"{name}.parquet", raw_dir / name]
        path = next((p for p in candidates if p.exists()), None)
        if path is None:
            continue
        pattern = str(path / "*.parquet") if path.is_dir() else str(path)
        available = {r[0] for r in con.execute(f"describe select * from read_parquet('{pattern}')").fetchall()}
        select = []
        for c in SOURCES[name].columns:
            if c.pii:
                select.append(f"md5(cast({c.name} as varchar))" if c.name in available else "null")
            else:
                select.append(f"cast({c.name} as {c.type})" if c.name in available else f"cast(null as {c.type})")
        con.execute(f"insert into raw.{name} select {', '.join(select)} from read_parquet('{pattern}')")


def generate_shop(con: duckdb.DuckDBPyConnection, customers: int, seed: int = 7,
                  end_date: dt.date = dt.date(2025, 12, 31), history_days: int = 730) -> None:
    """Fill raw.* with a deterministic synthetic shop (about 6 orders and 50 events per customer).

    Each customer has a signup day, a purchase rate and a lapse day after which they stop
    buying and browse less; all randomness is a hash of (seed, ids), so the shop is the same
    whatever the thread count.
    """
    create_raw_tables(con)
    start = end_date - dt.timedelta(days=history_days)
    u = lambda *parts: f"(hash({seed}, {', '.join(parts)}) % 1000003) / 1000003.0"  # noqa: E731
    con.execute(f"""
        create or replace temp table _people as
        select
            i,
            'C' || lpad(cast(i as varchar), 8, '0') as customer_id,
            cast(floor({u('i', "'signup'")} * {history_days - 30}) as integer) as signup_day,
            0.005 + 0.035 * pow({u('i', "'rate'")}, 2) as daily_order_rate,
            cast(floor(60 + {u('i', "'lapse'")} * {history_days * 1.6}) as integer) as active_days
        from range({customers}) as t(i)
    """)
    con.execute(f"""
        insert into raw.customers
        select
            customer_id,
            timestamp '{start}' + to_days(signup_day) + to_seconds(cast(i % 86400 as bigint)),
            'NL',
            ['north', 'south', 'east', 'west'][1 + cast(floor({u('i', "'region'")} * 4) as integer)],
            18 + cast(floor({u('i', "'age'")} * 60) as integer),
            ['f', 'm', 'x'][1 + cast(floor({u('i', "'gender'")} * 3) as integer)],
            ['search', 'social', 'referral', 'email'][1 + cast(floor({u('i', "'acq'")} * 4) as integer)],
            md5(customer_id || '@mail'),
            md5(customer_id || '#phone')
        from _people
    """)
    # orders: one candidate per customer and week, kept with the customer's weekly probability
    con.execute(f"""
        create or replace temp table _orders as
        with weeks as (
            select p.*, w, signup_day + w * 7 + cast(floor({u('i', 'w', "'d'")} * 7) as integer) as day
            from _people p, range(0, {history_days // 7 + 1}) as r(w)
        )
        select
            'O' || lpad(cast(i as varchar), 8, '0') || '-' || cast(w as varchar) as order_id,
            customer_id, i, w,
            timestamp '{start}' + to_days(day) + to_seconds(cast(floor({u('i', 'w', "'s'")} * 86400) as bigint)) as order_ts
        from weeks
        where day <= {history_days}
          and {u('i', 'w', "'o'")} < case when day - signup_day < active_days
                                          then daily_order_rate * 7 else 0.002 end
    """)
    con.execute(f"""
        insert into raw.orders
        select
            order_id, customer_id, order_ts,
            round(15 + 120 * {u('i', 'w', "'amt'")}, 2),
            case when {u('i', 'w', "'disc'")} < 0.25 then round(10 * {u('i', 'w', "'disc2'")}, 2) else 0 end,
            case when {u('i', 'w', "'cpn'")} < 0.10 then 'SAVE10' end,
            case when {u('i', 'w', "'st'")} < 0.05 then 'cancelled'
                 when {u('i', 'w', "'st'")} < 0.11 then 'returned' else 'completed' end,
            case when {u('i', 'w', "'ch'")} < 0.6 then 'web' else 'app' end
        from _orders
    """)
    con.execute(f"""
        insert into raw.order_items
        select
            order_id,
            'P' || cast(cast(floor(pow({u('i', 'w', 'k', "'p'")}, 2) * 5000) as integer) as varchar),
            'cat' || cast(cast(floor(pow({u('i', 'w', 'k', "'p'")}, 2) * 5000) as integer) % 20 as varchar),
            1 + cast(floor({u('i', 'w', 'k', "'q'")} * 3) as integer),
            round(5 + 60 * {u('i', 'w', 'k', "'up'")}, 2)
        from _orders, range(0, 4) as r(k)
        where k = 0 or {u('i', 'w', 'k', "'more'")} < 0.35
    """)
    # events: a purchase session on each order day plus browsing sessions every ~2 weeks
    con.execute(f"""
        create or replace temp table _sessions as
        select i, customer_id, 'S' || order_id as session_id, order_ts as started_at, true as buys, w as s
        from _orders
        union all
        select p.i, p.customer_id,
               'B' || cast(p.i as varchar) || '-' || cast(b as varchar),
               timestamp '{start}' + to_days(p.signup_day + b * 14)
                   + to_seconds(cast(floor({u('p.i', 'b', "'bt'")} * 1209600) as bigint)),
               false, 100000 + b
        from _people p, range(0, {history_days // 14 + 1}) as r(b)
        where p.signup_day + b * 14 <= {history_days}
          and {u('p.i', 'b', "'bs'")} < case when b * 14 < p.active_days then 0.2 else 0.06 end
    """)
    con.execute(f"""
        insert into raw.events
        select
            customer_id,
            started_at + to_seconds(e * 45),
            case
                when buys and e = n - 1 then 'purchase'
                when buys and e = n - 2 then 'checkout'
                when e = 0 and {u('i', 's', "'lg'")} < 0.3 then 'login'
                when {u('i', 's', 'e', "'ev'")} < 0.15 then 'add_to_cart'
                when {u('i', 's', 'e', "'ev'")} < 0.30 then 'search'
                else 'view'
            end,
            session_id,
            'P' || cast(cast(floor({u('i', 's', 'e', "'pp'")} * 5000) as integer) as varchar),
            case when {u('i', 's', "'dv'")} < 0.5 then 'mobile' else 'desktop' end
        from (select *, 3 + cast(floor({u('i', 's', "'n'")} * 6) as integer) as n from _sessions),
             range(0, 8) as r(e)
        where e < n
          and started_at + to_seconds(e * 45) < timestamp '{end_date + dt.timedelta(days=1)}'
    """)
    con.execute(f"""
        insert into raw.reviews
        select customer_id, order_id, order_ts + to_days(3 + cast(floor({u('i', 'w', "'rd'")} * 10) as integer)),
               1 + cast(floor({u('i', 'w', "'rt'")} * 5) as integer)
        from _orders
        where {u('i', 'w', "'rv'")} < 0.2
          and order_ts + to_days(13) < timestamp '{end_date}'
    """)
    con.execute(f"""
        insert into raw.support_tickets
        select customer_id, 'T' || order_id, order_ts + to_days(1),
               case when {u('i', 'w', "'res'")} < 0.85
                    then order_ts + to_days(1 + cast(floor({u('i', 'w', "'rs'")} * 9) as integer)) end,
               ['delivery', 'refund', 'account'][1 + cast(floor({u('i', 'w', "'tp'")} * 3) as integer)],
               1 + cast(floor({u('i', 'w', "'sat'")} * 5) as integer)
        from _orders
        where {u('i', 'w', "'tk'")} < 0.06
          and order_ts + to_days(1) < timestamp '{end_date + dt.timedelta(days=1)}'
    """)
    con.execute(f"""
        insert into raw.campaign_contacts
        select 'CMP' || cast(k as varchar), customer_id,
               timestamp '{start}' + to_days(60 * k + 30) + to_seconds(36000),
               {u('i', 'k', "'ctl'")} < 0.1,
               case when {u('i', 'k', "'off'")} < 0.5 then 'WINBACK15' end,
               case when {u('i', 'k', "'cc'")} < 0.7 then 'email' else 'sms' end
        from _people, range(0, {history_days // 60}) as r(k)
        where {u('i', 'k', "'tg'")} < 0.12
          and signup_day < 60 * k + 30
    """)
    for t in ("_people", "_orders", "_sessions"):
        con.execute(f"drop table {t}")
