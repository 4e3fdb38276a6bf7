"""Opening the analyst catalog ``analytics.duckdb`` from anywhere.

The catalog's views name their Parquet snapshots by paths relative to the catalog's own folder
(``published/<table>/…/part-….parquet``), so a warehouse can be copied or moved whole. DuckDB
resolves a relative path against the directories in the ``file_search_path`` setting, then
against the process's working directory; a setting is not stored in a database file, so a reader
outside the warehouse folder sets it when it connects. ``connect_catalog`` does that, read-only;
a plain DuckDB client does the same with ``config={"file_search_path": "<warehouse folder>"}``
(or ``SET file_search_path = '<warehouse folder>'``).
"""
from __future__ import annotations

from pathlib import Path

import duckdb


def connect_catalog(path: Path | str) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the catalog at ``path`` whose views resolve from any cwd."""
    path = Path(path).resolve()
    if not path.exists():
        raise FileNotFoundError(f"no analyst catalog at {path}: run `churnwatch run` (or `churnwatch publish`) first")
    return duckdb.connect(str(path), read_only=True, config={"file_search_path": str(path.parent)})



def _without_terminator(query: str) -> str:
    """The statement without its closing ``;`` (and any comment after it), so that a relation can
    wrap it as a subquery; DuckDB's own tokenizer tells a ``;`` in a string or comment apart."""
    import duckdb

    raw = query.encode()  # the tokenizer counts bytes of UTF-8, not characters
    tokens = [pos for pos, kind in duckdb.tokenize(query) if kind != duckdb.token_type.comment]
    return raw[:tokens[-1]].decode() if tokens and raw[tokens[-1]:tokens[-1] + 1] == b";" else query


def run_sql(path: Path | str, text: str, max_rows: int = 100) -> int:
    """Run the SQL statements in ``text`` on the catalog, in order, on one read-only connection
    (so a ``SET VARIABLE`` holds for the statements after it), printing each query's result as a
    table (other statements print nothing).

    This is ``churnwatch sql``: no DuckDB CLI for the pinned DuckDB 2.0 is on PyPI (the
    ``duckdb-cli`` wheels stop at 1.5, which cannot read a 2.0 database file). Returns the number
    of results printed.
    """
    import shutil

    width = shutil.get_terminal_size((200, 40)).columns
    con = connect_catalog(path)
    shown = 0
    try:
        statements = con.extract_statements(text)
        if not statements:
            raise ValueError("no SQL statement given")
        for statement in statements:
            if statement.type.name == "SELECT":
                con.sql(_without_terminator(statement.query)).show(max_rows=max_rows, max_width=width)
                shown += 1
            elif statement.type.name in ("EXPLAIN", "PRAGMA", "CALL"):
                rows = con.execute(statement.query).fetchmany(max_rows)
                print("\n".join("\t".join(map(str, row)) for row in rows))
                shown += 1
            else:
                con.execute(statement.query)
    finally:
        con.close()
    return shown
