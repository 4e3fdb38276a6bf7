"""A corpus of broken shop exports, each derived from a valid generated shop, each with its outcome.

Row faults are quarantined with a reason and counted; batch faults stop the run with one line
naming the file, the column and the rule, and a non-zero exit. Every case also proves that rows
reconcile (read = staged + quarantined + after as-of) and that what analysts and the CRM see —
``analytics.duckdb``, ``published/``, ``exports/`` — is byte for byte what the last good run
published. Most cases run ``churnwatch ingest`` on a copy of the published warehouse (seconds);
a few run the whole DAG (``churnwatch run``), including one killed midway.
"""
from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import duckdb
import pytest

from helpers.run import REPO, churnwatch
from helpers.quality import (
    END_DATE, HORIZON, copy_warehouse, derive_shop, every, fingerprint, pipeline_query, read_rows, run_env, write_rows,
)


# ---- the breakages ---------------------------------------------------------------------------------


def _set(raw: Path, source: str, column: str, values: list[str], start: int = 7) -> int:
    """Overwrite ``column`` in spread-out rows of ``source`` with ``values``; returns the row count."""
    path = raw / f"{source}.csv"
    header, rows = read_rows(path)
    col = header.index(column)
    for i, value in zip(every(rows, len(values), start), values):
        rows[i][col] = value
    write_rows(path, header, rows)
    return len(rows)


def negative_amounts(raw):
    _set(raw, "orders", "amount", ["-12.50"] * 20)


def absurd_amounts(raw):
    _set(raw, "orders", "amount", ["1e9"] * 5 + ["nan"] * 3 + ["inf"] * 2)


def unparseable_timestamps(raw):
    _set(raw, "orders", "order_ts", ["31/12/2025 10:00"] * 10 + ["yesterday"] * 5)


def sentinel_dates(raw):
    _set(raw, "orders", "order_ts", ["1900-01-01 00:00:00"] * 4)


def missing_keys(raw):
    _set(raw, "orders", "order_id", [""] * 6, start=11)
    _set(raw, "orders", "customer_id", [""] * 4, start=501)


def duplicate_keys(raw):
    path = raw / "orders.csv"
    header, rows = read_rows(path)
    copies = [list(rows[i]) for i in every(rows, 25)]
    clashes = [list(rows[i]) for i in every(rows, 5, start=1001)]
    for r in clashes:  # same order id, different content
        r[header.index("amount")] = "1.00"
    write_rows(path, header, rows + copies + clashes)


def orders_after_as_of(raw):
    path = raw / "orders.csv"
    header, rows = read_rows(path)
    future = [list(rows[i]) for i in every(rows, 40)]
    for n, r in enumerate(future):
        r[header.index("order_id")] = f"FUTURE{n:04d}"
        r[header.index("order_ts")] = "2026-02-01 12:00:00"
    write_rows(path, header, rows + future)


def extra_columns(raw):
    path = raw / "orders.csv"
    header, rows = read_rows(path)
    write_rows(path, header + ["loyalty_points", "Internal_Note"], [r + ["12", "x"] for r in rows])


def malformed_lines(raw):
    path = raw / "orders.csv"
    header, rows = read_rows(path)
    for i in every(rows, 3):
        rows[i] = rows[i] + ["stray"]
    for i in every(rows, 2, start=2003):
        rows[i] = rows[i][:3]
    write_rows(path, header, rows)


def latin1_rows(raw):
    """A handful of customers whose region was written in Latin-1 (the rest is ASCII)."""
    path = raw / "customers.csv"
    header, rows = read_rows(path)
    bad = set(every(rows, 6))
    path.unlink()
    with open(path, "wb") as fh:
        fh.write((",".join(header) + "\n").encode())
        for i, r in enumerate(rows):
            if i in bad:
                r[header.index("region")] = "Österreich-Süd"
            fh.write((",".join(r) + "\n").encode("latin-1" if i in bad else "utf-8"))


def _rewrite(raw: Path, source: str = "orders", **csv_format) -> None:
    """Write a source again with another delimiter or encoding."""
    header, rows = read_rows(raw / f"{source}.csv")
    write_rows(raw / f"{source}.csv", header, rows, **csv_format)


def latin1_everywhere(raw):
    path = raw / "orders.csv"
    header, rows = read_rows(path)
    for r in rows:
        r[header.index("channel")] = "télé"
    write_rows(path, header, rows, encoding="latin-1")


def utf16_file(raw):
    _rewrite(raw, encoding="utf-16")


def semicolon_delimiter(raw):
    _rewrite(raw, delimiter=";")


def unknown_delimiter(raw):
    _rewrite(raw, delimiter="#")


def missing_required_column(raw):
    path = raw / "orders.csv"
    header, rows = read_rows(path)
    drop = header.index("amount")
    write_rows(path, [h for i, h in enumerate(header) if i != drop], [[v for i, v in enumerate(r) if i != drop] for r in rows])


def missing_orders_file(raw):
    (raw / "orders.csv").unlink()


def empty_orders_file(raw):
    (raw / "orders.csv").unlink()
    (raw / "orders.csv").write_bytes(b"")


def header_only_orders(raw):
    header, _ = read_rows(raw / "orders.csv")
    write_rows(raw / "orders.csv", header, [])


def empty_optional_file(raw):
    (raw / "events.csv").unlink()
    (raw / "events.csv").write_bytes(b"")


def unreadable_parquet(raw):
    (raw / "orders.csv").unlink()
    (raw / "orders.parquet").write_bytes(b"PAR1 this is not really parquet, it was cut off in transfer")


def corrupt_part_file(raw):
    """orders as a folder of gzipped parts, the second one truncated mid-transfer."""
    header, rows = read_rows(raw / "orders.csv")
    (raw / "orders.csv").unlink()
    (raw / "orders").mkdir()
    half = len(rows) // 2
    for n, part in enumerate((rows[:half], rows[half:])):
        text = "\n".join(",".join(r) for r in [header, *part]) + "\n"
        data = gzip.compress(text.encode())
        (raw / "orders" / f"part-{n}.csv.gz").write_bytes(data if n == 0 else data[: len(data) // 2])


def too_many_bad_rows(raw):
    n = len(read_rows(raw / "orders.csv")[1])
    _set(raw, "orders", "amount", ["-1"] * int(n * 0.08))


def bad_optional_rows(raw):
    _set(raw, "reviews", "rating", ["7"] * 3 + ["0"] * 2 + ["five"])
    _set(raw, "campaign_contacts", "is_control", ["maybe"] * 4)


def timezone_offsets(raw):
    _set(raw, "orders", "order_ts", ["2025-06-01T23:30:00+02:00"] * 3)


# ---- the cases ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Staged:
    """The run goes on: these quarantine reasons with these counts (per source), the rest staged."""

    reasons: dict[str, dict[str, int]] = field(default_factory=dict)
    after_as_of: dict[str, int] = field(default_factory=dict)
    extra_columns: dict[str, list[str]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stops:
    """A batch fault: one line on stderr holding all these fragments, exit 1, nothing replaced."""

    fragments: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


CASES: dict[str, tuple[Callable[[Path], None], Staged | Stops]] = {
    "negative_amounts": (negative_amounts, Staged({"orders": {"amount: negative": 20}})),
    "absurd_amounts": (absurd_amounts, Staged({"orders": {"amount: above 1,000,000": 5, "amount: not a finite number": 5}})),
    "unparseable_timestamps": (unparseable_timestamps, Staged({"orders": {
        "order_ts: not a valid timestamp (expected YYYY-MM-DD[ HH:MM:SS][±HH:MM], e.g. 2025-12-31 13:45:30)": 15}})),
    "sentinel_dates": (sentinel_dates, Staged({"orders": {"order_ts: before 1990-01-01": 4}})),
    "missing_keys": (missing_keys, Staged({"orders": {"order_id: missing": 6, "customer_id: missing": 4}})),
    "duplicate_keys": (duplicate_keys, Staged({"orders": {"order_id: duplicate key": 30}})),
    "orders_after_as_of": (orders_after_as_of, Staged(after_as_of={"orders": 40})),
    "extra_columns": (extra_columns, Staged(extra_columns={"orders": ["loyalty_points", "internal_note"]})),
    "malformed_lines": (malformed_lines, Staged({"orders": {"line: more fields than the header": 3,
                                                            "line: fewer fields than the header": 2}})),
    "latin1_rows": (latin1_rows, Staged({"customers": {"line: not UTF-8": 6}})),
    "semicolon_delimiter": (semicolon_delimiter, Staged()),
    "empty_optional_file": (empty_optional_file, Staged()),
    "bad_optional_rows": (bad_optional_rows, Staged({
        "reviews": {"rating: outside 1-5": 5, "rating: not a valid integer (expected a whole number, e.g. 4)": 1},
        "campaign_contacts": {"is_control: not a valid boolean (expected true/false, yes/no, t/f or 1/0)": 4}})),
    "timezone_offsets": (timezone_offsets, Staged()),
    "bad_share_under_raised_limit": (too_many_bad_rows, Staged({"orders": {"amount: negative": None}},
                                                               env={"CHURNWATCH_MAX_BAD_ROW_SHARE": "0.10"})),
    "too_many_bad_rows": (too_many_bad_rows, Stops(("orders.csv", "column 'amount'", "negative", "> max_bad_row_share 5%"))),
    "latin1_everywhere": (latin1_everywhere, Stops(("orders.csv", "malformed lines", "not UTF-8"))),
    "utf16_file": (utf16_file, Stops(("orders.csv", "encoding", "UTF-16"))),
    "unknown_delimiter": (unknown_delimiter, Stops(("orders.csv", "column 'order_id'", "required column is missing",
                                                    "wrong delimiter?"))),
    "missing_required_column": (missing_required_column, Stops(("orders.csv", "column 'amount'", "required column is missing"))),
    "missing_orders_file": (missing_orders_file, Stops(("orders", "required source 'orders' is missing"))),
    "empty_orders_file": (empty_orders_file, Stops(("orders.csv", "required source 'orders' is empty"))),
    "header_only_orders": (header_only_orders, Stops(("orders.csv", "required source 'orders' has no data rows"))),
    "unreadable_parquet": (unreadable_parquet, Stops(("orders.parquet", "unreadable", "cannot be read as Parquet"))),
    "corrupt_part_file": (corrupt_part_file, Stops(("part-1.csv.gz", "unreadable"))),
}


def _data_rows(raw: Path, source: str) -> int:
    """Data rows in a source's CSV as written (physical lines after the header; our cases have no quoted newlines)."""
    path = raw / f"{source}.csv"
    with open(path, "rb") as fh:
        return max(sum(1 for line in fh if line.strip()) - 1, 0)


def _ingest_log(warehouse: Path, run_id: str) -> dict[str, dict]:
    cols = ["source", "status", "rows_read", "rows_staged", "rows_quarantined", "rows_after_as_of", "extra_columns", "message"]
    rows = pipeline_query(warehouse, f"select {', '.join(cols)} from raw._ingest_log where run_id = ?", [run_id])
    return {r[0]: dict(zip(cols, r)) for r in rows}


@pytest.mark.parametrize("case", list(CASES))
def test_corrupted_input(case, baseline, tmp_path, monkeypatch, capsys):
    from ml.faces.cli import main

    breaker, expected = CASES[case]
    raw = derive_shop(baseline.shop, tmp_path / "raw")
    breaker(raw)
    warehouse = copy_warehouse(baseline, tmp_path / "w")
    raw_before = pipeline_query(warehouse, "select count(*), sum(hash(order_id, amount)) from raw.orders")
    for name, value in {**expected.env, "CHURNWATCH_AS_OF": END_DATE.isoformat()}.items():
        monkeypatch.setenv(name, value)
    run_id = f"corpus-{case}"

    if isinstance(expected, Stops):  # the CLI's own entry point, in-process: exit code and stderr
        code = main(["ingest", "--raw-dir", str(raw), "--warehouse", str(warehouse)])
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert code == 1, lines
        assert len(lines) == 1 and lines[0].startswith("churnwatch ingest: error: "), lines
        for fragment in expected.fragments:
            assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
        # the previous raw layer is untouched; the failure is logged
        assert pipeline_query(warehouse, "select count(*), sum(hash(order_id, amount)) from raw.orders") == raw_before
        assert pipeline_query(warehouse, "select count(*) from raw._ingest_log where status = 'failed' "
                                         "and message like '%' || ? || '%'", [expected.fragments[-1]])[0][0] == 1
    else:
        from ml.stages.ingest import ingest
        from ml.core.settings import Settings

        report = ingest(Settings.load(warehouse=warehouse, raw_dir=raw), run_id=run_id)
        assert report.as_of == END_DATE
        log = _ingest_log(warehouse, run_id)
        for source, r in report.sources.items():
            expected_reasons = expected.reasons.get(source, {})
            assert set(r.reasons) == set(expected_reasons), (source, r.reasons)
            for reason, count in expected_reasons.items():
                assert count is None or r.reasons[reason] == count, (source, reason, r.reasons)
            assert r.rows_after_as_of == expected.after_as_of.get(source, 0), (source, r)
            assert r.extra_columns == expected.extra_columns.get(source, []), (source, r.extra_columns)
            # every row read is staged, quarantined or after as-of — in the report, the log and the tables
            if r.present and (raw / f"{source}.csv").exists():
                assert r.rows_read == _data_rows(raw, source), source
            assert r.rows_read == r.rows_staged + r.rows_quarantined + r.rows_after_as_of, source
            assert (log[source]["rows_read"], log[source]["rows_staged"], log[source]["rows_quarantined"]) == (
                r.rows_read, r.rows_staged, r.rows_quarantined)
            assert log[source]["status"] == "staged"
            assert pipeline_query(warehouse, f"select count(*) from raw.{source}")[0][0] == r.rows_staged
            assert pipeline_query(warehouse, f"select count(*) from quarantine.{source} where run_id = ?",
                                  [run_id])[0][0] == r.rows_quarantined
    assert fingerprint(warehouse) == baseline.published


def test_the_command_exits_non_zero_with_one_line(baseline, tmp_path):
    """The same as the in-process cases, through a real child process as a user or scheduler runs it."""
    raw = derive_shop(baseline.shop, tmp_path / "raw")
    missing_required_column(raw)
    warehouse = copy_warehouse(baseline, tmp_path / "w")
    proc = churnwatch("ingest", "--raw-dir", str(raw), "--warehouse", str(warehouse), check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "orders.csv: column 'amount': required column is missing" in proc.stderr
    assert fingerprint(warehouse) == baseline.published


# ---- checks of particular cases beyond the counts -----------------------------------------------------


def _ingested(baseline, tmp_path, breaker) -> Path:
    from ml.stages.ingest import ingest
    from ml.core.settings import Settings

    raw = derive_shop(baseline.shop, tmp_path / "raw")
    breaker(raw)
    warehouse = copy_warehouse(baseline, tmp_path / "w")
    ingest(Settings.load(warehouse=warehouse, raw_dir=raw, as_of=END_DATE), run_id="detail")
    return warehouse


def test_quarantine_keeps_the_original_row_file_and_row_number(baseline, tmp_path):
    warehouse = _ingested(baseline, tmp_path, negative_amounts)
    file, row, values = pipeline_query(
        warehouse, "select source_file, source_row, source_values from quarantine.orders where run_id = 'detail' "
                   "order by source_row limit 1")[0]
    assert file.endswith("orders.csv") and row == 8  # every() starts at index 7 → data row 8
    original = json.loads(values)
    assert original["amount"] == "-12.50" and original["order_id"]
    header, rows = read_rows(baseline.shop / "orders.csv")
    assert original["order_id"] == rows[7][header.index("order_id")]


def test_duplicates_keep_the_first_occurrence(baseline, tmp_path):
    warehouse = _ingested(baseline, tmp_path, duplicate_keys)
    assert pipeline_query(warehouse, "select count(*) - count(distinct order_id) from raw.orders")[0][0] == 0
    header, rows = read_rows(baseline.shop / "orders.csv")
    clash = rows[every(rows, 5, start=1001)[0]]
    kept = pipeline_query(warehouse, "select amount from raw.orders where order_id = ?", [clash[header.index("order_id")]])
    assert kept == [(float(clash[header.index("amount")]),)]


def test_offsets_are_converted_to_utc_and_ids_keep_leading_zeros(baseline, tmp_path):
    warehouse = _ingested(baseline, tmp_path, timezone_offsets)
    assert pipeline_query(warehouse, "select count(*) from raw.orders where order_ts = timestamp '2025-06-01 21:30:00'")[0][0] == 3
    header, rows = read_rows(baseline.shop / "orders.csv")
    zeros = sum(1 for r in rows if r[header.index("customer_id")].startswith("0"))
    assert zeros and pipeline_query(warehouse, "select count(*) from raw.orders where customer_id like '0%'")[0][0] == zeros


def test_pii_never_lands_in_clear_text(baseline, tmp_path):
    warehouse = _ingested(baseline, tmp_path, latin1_rows)
    columns = [r[0] for r in pipeline_query(warehouse, "describe raw.customers")]
    assert "email" not in columns and "email_hash" in columns and "phone_hash" in columns
    assert pipeline_query(warehouse, "select count(*) from raw.customers where not regexp_full_match(email_hash, '[0-9a-f]{64}')")[0][0] == 0
    leaked = pipeline_query(warehouse, "select count(*) from quarantine.customers where source_values like '%@%'")
    assert leaked == [(0,)]


def test_failed_batch_keeps_its_bad_rows_for_diagnosis(baseline, tmp_path):
    raw = derive_shop(baseline.shop, tmp_path / "raw")
    too_many_bad_rows(raw)
    warehouse = copy_warehouse(baseline, tmp_path / "w")
    from ml.stages.ingest import BatchError, ingest
    from ml.core.settings import Settings

    with pytest.raises(BatchError):
        ingest(Settings.load(warehouse=warehouse, raw_dir=raw, as_of=END_DATE), run_id="failed-run")
    n = len(read_rows(raw / "orders.csv")[1])
    assert pipeline_query(warehouse, "select count(*) from quarantine.orders where run_id = 'failed-run'")[0][0] == int(n * 0.08)
    status, as_of = pipeline_query(warehouse, "select status, as_of_date from raw._ingest_log where run_id = 'failed-run'")[0]
    assert status == "failed" and as_of is None  # stage commands continue from the last good ingest


# ---- whole runs through Airflow ---------------------------------------------------------------------


def _run(baseline, raw: Path, warehouse: Path) -> subprocess.CompletedProcess:
    return churnwatch("run", "--raw-dir", str(raw), "--warehouse", str(warehouse), "--as-of", END_DATE.isoformat(),
                      "--horizon-days", str(HORIZON), env=run_env(baseline), check=False)


def test_run_with_a_bad_batch_stops_before_anything_is_published(baseline, tmp_path):
    raw = derive_shop(baseline.shop, tmp_path / "raw")
    too_many_bad_rows(raw)
    warehouse = copy_warehouse(baseline, tmp_path / "w", full=True)
    proc = _run(baseline, raw, warehouse)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "orders.csv: column 'amount': negative" in out
    assert fingerprint(warehouse) == baseline.published


def test_run_with_amounts_in_cents_fails_the_feature_gate(baseline, tmp_path):
    """Every row is valid, but spend is 100x the last good run's: the learnt bounds stop it.

    The feature models are incremental (they only add days after the last one built), so the
    restated history reaches the features on a full build, as after a dbt change: the copy drops
    the feature layer's tables to get one.
    """
    raw = derive_shop(baseline.shop, tmp_path / "raw")
    header, rows = read_rows(raw / "orders.csv")
    for r in rows:
        r[header.index("amount")] = f"{float(r[header.index('amount')]) * 100:.0f}"
    write_rows(raw / "orders.csv", header, rows)
    warehouse = copy_warehouse(baseline, tmp_path / "w", full=True)
    con = duckdb.connect(str(warehouse / "churnwatch.duckdb"))
    con.execute("drop schema staging cascade; drop schema intermediate cascade; drop schema marts cascade")
    con.close()
    proc = _run(baseline, raw, warehouse)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "quality gate 'customer_features' failed" in out and "expect_column_mean_to_be_between" in out
    assert fingerprint(warehouse) == baseline.published
    assert list((warehouse / "data_docs").glob("*/index.html"))


def test_run_killed_while_scoring_leaves_the_publication_intact(baseline, tmp_path):
    warehouse = copy_warehouse(baseline, tmp_path / "w", full=True)
    cmd = [sys.executable, "-m", "ml.faces.cli", "run", "--raw-dir", str(baseline.shop), "--warehouse", str(warehouse),
           "--as-of", END_DATE.isoformat(), "--horizon-days", str(HORIZON)]
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **run_env(baseline)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen = []
    try:
        log = Path(re.search(r"full log: (\S+)", proc.stdout.readline()).group(1))  # Airflow's output goes there
        while proc.poll() is None:
            seen = log.read_text().splitlines()
            if any(re.search(r"starting task_id=score\b", line) for line in seen):
                time.sleep(2)  # let it get into the scoring
                break
            time.sleep(0.2)
        else:
            pytest.fail("the run ended before scoring started:\n" + "\n".join(seen[-40:]))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert fingerprint(warehouse) == baseline.published
    from ml.core.catalog import connect_catalog  # views name files relative to the catalog

    con = connect_catalog(warehouse / "analytics.duckdb")
    assert con.execute("select count(*) from marts.churn_scores").fetchone()[0] > 0
    con.close()


def test_a_max_amount_the_warehouse_cannot_sum_is_refused():
    """dbt sums money as DECIMAL(18, 4): a row-fault bound beyond it is refused up front."""
    from ml.core.settings import Settings

    with pytest.raises(ValueError, match="max_amount must be above 0 and below 1e"):
        Settings.load(max_amount=1e15)
    assert Settings.load(max_amount=5e13).max_amount == 5e13
