"""The published-rows equality check (benchmarks/published_equality.py) sees every kind of difference.

The redesign's promise "published rows stay identical" rests on this comparison, so it must fail on a
changed value, a lost row, a duplicated row and a dropped column, and pass on an added column.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("published_equality", REPO / "benchmarks" / "published_equality.py")
published_equality = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(published_equality)

ROWS = "(values ('a', 0.1, 'r1'), ('b', 0.2, 'r1'), ('b', 0.2, 'r1'))"


def _catalog(folder: Path, select: str) -> Path:
    folder.mkdir()
    con = duckdb.connect(str(folder / "analytics.duckdb"))
    con.execute("create schema marts")
    con.execute(f"create table marts.churn_scores as {select}")
    con.close()
    return folder


def _scores(rows: str = ROWS, columns: str = "customer_id, churn_probability, run_id") -> str:
    return f"select * from {rows} t({columns})"


def test_identical_rows_pass_and_run_ids_are_ignored(tmp_path):
    before = _catalog(tmp_path / "b", _scores())
    after = _catalog(tmp_path / "a", _scores().replace("'r1'", "'r2'"))
    result = published_equality.compare(before, after)
    assert result["identical"], result
    assert result["tables"]["churn_scores"]["columns_compared"] == 2


@pytest.mark.parametrize("after_rows, only_before, only_after", [
    ("(values ('a', 0.1, 'r1'), ('b', 0.3, 'r1'), ('b', 0.2, 'r1'))", 1, 1),  # a changed value
    ("(values ('a', 0.1, 'r1'), ('b', 0.2, 'r1'))", 1, 0),                    # a lost duplicate
    ("(values ('a', 0.1, 'r1'), ('b', 0.2, 'r1'), ('b', 0.2, 'r1'), ('a', 0.1, 'r1'))", 0, 1),  # one more
])
def test_any_row_difference_fails(tmp_path, after_rows, only_before, only_after):
    before = _catalog(tmp_path / "b", _scores())
    after = _catalog(tmp_path / "a", _scores(after_rows))
    result = published_equality.compare(before, after)
    table = result["tables"]["churn_scores"]
    assert (table["only_before"], table["only_after"]) == (only_before, only_after)
    assert not result["identical"]


def test_a_dropped_column_fails_and_an_added_one_passes(tmp_path):
    before = _catalog(tmp_path / "b", _scores())
    dropped = _catalog(tmp_path / "d", "select customer_id, run_id from " + ROWS + " t(customer_id, p, run_id)")
    added = _catalog(tmp_path / "a", "select *, 0.5 as expected_uplift from " + ROWS + " t(customer_id, churn_probability, run_id)")
    assert not published_equality.compare(before, dropped)["identical"]
    result = published_equality.compare(before, added)
    assert result["identical"] and result["tables"]["churn_scores"]["columns_only_after"] == ["expected_uplift"]
