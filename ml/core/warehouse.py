"""DuckDB access for the pipeline's own database.

DuckDB allows one read-write process per file, so every writer opens, works and closes; nothing
holds a connection across stages. Memory limit and threads come from settings so a tier-M run
stays inside the machine.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import duckdb

from ml.core.settings import Settings


def _configure(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    con.execute(f"SET memory_limit = '{settings.duckdb_memory_limit}'")
    con.execute(f"SET threads = {int(settings.duckdb_threads)}")
    con.execute("SET TimeZone = 'UTC'")


@contextlib.contextmanager
def connect(settings: Settings, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the pipeline database; closed on exit so other processes can take the file."""
    settings.warehouse.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.db_path), read_only=read_only)
    try:
        _configure(con, settings)
        yield con
    finally:
        con.close()


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    # fetched to the end: DuckDB 2 refuses the connection's next query while a result is unfinished
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchall()[0][0]
    )


def quote(name: str) -> str:
    """Quote an identifier for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


def decimals_as_floats(table):
    """An Arrow table with its DECIMAL columns as float64: models and metrics want floats, and
    pandas would otherwise hold them as Python ``Decimal`` objects."""
    import pyarrow as pa

    fields = [pa.field(f.name, pa.float64()) if pa.types.is_decimal(f.type) else f for f in table.schema]
    return table.cast(pa.schema(fields))


def fetch_arrow(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    """Run ``sql`` and return an Arrow table (DECIMAL as float64), in one columnar transfer."""
    return decimals_as_floats(con.sql(sql, params=params).to_arrow_table())


def fetch_frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    """Run ``sql`` and return a pandas DataFrame via Arrow (columnar, never row by row)."""
    return fetch_arrow(con, sql, params).to_pandas()


def last_ingested_as_of(settings: Settings):
    """The as-of date of the last successful ingest (``raw._ingest_log``), or None when nothing
    has been ingested into this warehouse yet."""
    if not settings.db_path.exists():
        return None
    with connect(settings, read_only=True) as con:
        if not table_exists(con, "raw", "_ingest_log"):
            return None
        return con.execute("select max(as_of_date) from raw._ingest_log where status = 'staged'").fetchall()[0][0]
