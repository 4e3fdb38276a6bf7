"""ml.core.warehouse: helpers leave the connection ready for the next query (DuckDB 2)."""
from __future__ import annotations

import duckdb


def test_table_exists_leaves_no_unfinished_result():
    """score.reason_catalog asks table_exists, then reads the table on the same connection."""
    from ml.core.warehouse import fetch_frame, table_exists

    con = duckdb.connect()
    con.execute("create schema marts")
    con.execute("create table marts.reason_catalog as select 'recency_days' as feature")
    assert table_exists(con, "marts", "reason_catalog") and not table_exists(con, "marts", "nothing")
    assert fetch_frame(con, "select * from marts.reason_catalog")["feature"].tolist() == ["recency_days"]
