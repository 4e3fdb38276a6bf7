"""Do two warehouses publish the same rows? EXCEPT ALL both ways, per table of the analyst catalog.

The redesign of issue 18 promised "behaviour and published rows stay identical". This compares the
catalog of a warehouse built by the code before a change with one built by the code after it, on
the same raw exports and as-of date:

    python benchmarks/published_equality.py --before W_OLD --after W_NEW \
        [--out benchmarks/results/redesign-equality.json]

Columns that name a run rather than describe a customer (``run_id``, ``scored_at``, MLflow ids,
publish timestamps) differ on every run by design and are left out; every other column of every
table both catalogs hold is compared, as is the set of tables and of their columns. Exit status 0
means zero rows differ in either direction for every table.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import duckdb

# columns that identify one run, not a published fact: they differ between any two runs (the
# catalog's manifest names snapshot files by publish id)
VOLATILE = {"run_id", "scored_at", "published_at", "manifest", "trained_at", "mlflow_run_id", "created_at", "decided_at"}


def _columns(con: duckdb.DuckDBPyConnection, catalog: str, table: str) -> list[str]:
    return [r[0] for r in con.execute(
        "select column_name from information_schema.columns "
        "where table_catalog = ? and table_schema = 'marts' and table_name = ? order by ordinal_position",
        [catalog, table]).fetchall()]


def compare(before: Path, after: Path, ignore: set[str] = VOLATILE) -> dict:
    """Per table: rows on each side, rows only before, rows only after, columns on one side only."""
    con = duckdb.connect()
    for alias, wh in (("b", before), ("a", after)):
        con.execute(f"attach '{(wh / 'analytics.duckdb').resolve()}' as {alias} (read_only)")
        # the catalog's views name their Parquet by paths relative to the warehouse folder
    out: dict = {"before": str(before), "after": str(after), "ignored_columns": sorted(ignore), "tables": {}}
    tables = {}
    for alias in ("b", "a"):
        tables[alias] = {r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_catalog = ? and table_schema = 'marts'",
            [alias]).fetchall()}
    out["tables_only_before"] = sorted(tables["b"] - tables["a"])
    out["tables_only_after"] = sorted(tables["a"] - tables["b"])
    for table in sorted(tables["b"] & tables["a"]):
        cols = {}
        for alias in ("b", "a"):
            cols[alias] = _columns(con, alias, table)
        shared = [c for c in cols["b"] if c in cols["a"] and c not in ignore]
        select = ", ".join(f'"{c}"' for c in shared)

        def rel(alias: str, wh: Path) -> str:
            con.execute(f"set file_search_path = '{wh.resolve()}'")
            # materialise: each side's views resolve relative paths against its own warehouse
            name = f"t_{alias}"
            con.execute(f'create or replace temp table {name} as select {select} from {alias}.marts."{table}"')
            return name

        tb, ta = rel("b", before), rel("a", after)
        count = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
        out["tables"][table] = {
            "rows_before": count(f"select count(*) from {tb}"),
            "rows_after": count(f"select count(*) from {ta}"),
            "only_before": count(f"select count(*) from (select * from {tb} except all select * from {ta})"),
            "only_after": count(f"select count(*) from (select * from {ta} except all select * from {tb})"),
            "columns_compared": len(shared),
            "columns_only_before": [c for c in cols["b"] if c not in cols["a"]],
            "columns_only_after": [c for c in cols["a"] if c not in cols["b"]],
        }
    out["identical"] = (not out["tables_only_before"] and not out["tables_only_after"] and all(
        t["only_before"] == 0 and t["only_after"] == 0 and not t["columns_only_before"]
        for t in out["tables"].values()))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    result = compare(args.before, args.after)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    for table, t in result["tables"].items():
        print(f"{table:28s} rows {t['rows_before']:>7} / {t['rows_after']:>7}  "
              f"only before {t['only_before']:>5}  only after {t['only_after']:>5}  "
              f"new columns {t['columns_only_after'] or '-'}  missing columns {t['columns_only_before'] or '-'}")
    print("identical" if result["identical"] else "DIFFERENT")
    return 0 if result["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
