"""Input formats: what the README's "Accepted formats" table promises is what ingest reads.

Fast, ingest-only tests on tiny hand-made exports (no dbt, no Airflow): the README's table is
parsed and every example in it is ingested, so a format documented but not read (or dropped
from the code) fails here; a per-source timestamp format reads a ``dd/mm/yyyy`` export; and a
value that does not parse is reported with the value and an example of what was expected.
"""
from __future__ import annotations

import datetime as dt
import gzip
import re
from pathlib import Path

import duckdb
import pytest

from helpers.run import REPO

README = REPO / "README.md"
ORDERS_HEADER = ["order_id", "customer_id", "order_ts", "amount"]


# ---- helpers --------------------------------------------------------------------------------------


def _settings(tmp_path: Path, raw: Path, **overrides):
    from ml.core.settings import Settings

    return Settings.load(warehouse=tmp_path / "w", raw_dir=raw, pii_salt="test-salt", **overrides)


def _ingest(tmp_path: Path, raw: Path, **overrides):
    from ml.stages.ingest import ingest

    return ingest(_settings(tmp_path, raw, **overrides), run_id="formats")


def _query(tmp_path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(tmp_path / "w" / "churnwatch.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def _write_csv(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [delimiter.join(header)] + [delimiter.join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _orders(raw: Path, timestamps: list[str], amounts: list[str] | None = None, name: str = "orders.csv") -> Path:
    amounts = amounts or ["10.0"] * len(timestamps)
    rows = [[f"O{i:03d}", f"C{i % 3}", ts, amount] for i, (ts, amount) in enumerate(zip(timestamps, amounts))]
    return _write_csv(raw / name, ORDERS_HEADER, rows)


def _readme_formats(column: int = 1) -> dict[str, list[str]]:
    """The README's accepted-formats table: row name (before any '(') → the backticked examples in
    ``column`` (1: accepted, 2: otherwise)."""
    text = README.read_text(encoding="utf-8")
    section = text.split("### Accepted formats", 1)
    assert len(section) == 2, "README has no '### Accepted formats' table"
    table: dict[str, list[str]] = {}
    for line in section[1].splitlines():
        if not line.startswith("| "):
            if table:
                break
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        key = cells[0].split(" (")[0]
        if key and len(cells) > column:
            table[key] = [e.replace("\\|", "|") for e in re.findall(r"`([^`]+)`", cells[column])]
    return table


def _examples(row: str, column: int = 1) -> list[str]:
    examples = _readme_formats(column).get(row)
    assert examples, f"README accepted-formats table has no examples for {row!r}"
    return examples


# ---- the README's table, example by example ------------------------------------------------------

# what each documented timestamp must be staged as (naive UTC); a README example missing here fails
ISO_STAGED = {
    "2025-12-31": dt.datetime(2025, 12, 31),
    "2025-12-31 13:45": dt.datetime(2025, 12, 31, 13, 45),
    "2025-12-31 13:45:30": dt.datetime(2025, 12, 31, 13, 45, 30),
    "2025-12-31T13:45:30.250": dt.datetime(2025, 12, 31, 13, 45, 30, 250000),
    "2025-12-31T13:45:30Z": dt.datetime(2025, 12, 31, 13, 45, 30),
    "2025-12-31T13:45:30+01:00": dt.datetime(2025, 12, 31, 12, 45, 30),
}


def test_documented_timestamps_are_staged_as_utc(tmp_path):
    examples = _examples("timestamps")
    assert set(examples) == set(ISO_STAGED), "README timestamps and the values this test expects differ"
    _orders(tmp_path / "raw", examples)
    report = _ingest(tmp_path, tmp_path / "raw", as_of=dt.date(2026, 1, 1))
    assert report.sources["orders"].rows_staged == len(examples), report.sources["orders"].reasons
    staged = dict(_query(tmp_path, "select order_id, order_ts from raw.orders"))
    assert [staged[f"O{i:03d}"] for i in range(len(examples))] == [ISO_STAGED[e] for e in examples]


def test_documented_numbers_are_read(tmp_path):
    examples = _examples("numbers")
    _orders(tmp_path / "raw", ["2025-12-31"] * len(examples), examples)
    report = _ingest(tmp_path, tmp_path / "raw")
    assert report.sources["orders"].rows_staged == len(examples), report.sources["orders"].reasons
    staged = dict(_query(tmp_path, "select order_id, amount from raw.orders"))
    assert [staged[f"O{i:03d}"] for i in range(len(examples))] == [float(e) for e in examples]


def test_documented_non_numbers_are_quarantined_with_their_value(tmp_path):
    """The table's "otherwise" numbers: each a row fault whose quarantine row keeps the value."""
    examples = _examples("numbers", column=2)
    assert "1234,5" in examples, examples
    raw = tmp_path / "raw"
    _write_csv(raw / "orders.csv", ORDERS_HEADER, [["O000", "C1", "2025-12-31", "5"]] + [
        [f"O{i + 1:03d}", "C1", "2025-12-31", '"' + e + '"'] for i, e in enumerate(examples)])
    report = _ingest(tmp_path, raw, max_bad_row_share=0.9).sources["orders"]
    assert report.rows_staged == 1 and report.rows_quarantined == len(examples), report
    assert sorted(r[0] for r in _query(tmp_path, "select source_values->>'amount' from quarantine.orders")) == sorted(examples)


def test_documented_whole_numbers_are_read_and_fractions_are_not(tmp_path):
    """``4.0`` is 4, ``4.5`` is a row fault (a plain cast would have rounded it to 5)."""
    raw = tmp_path / "raw"
    _orders(raw, ["2025-12-31"])
    examples = _examples("whole numbers")
    rejected = _examples("whole numbers", column=2)
    assert "4.5" in rejected, rejected  # a plain cast would have staged it as 5
    ratings = examples + rejected
    _write_csv(raw / "reviews.csv", ["customer_id", "review_ts", "rating"],
               [[f"C{i}", "2025-12-01", r] for i, r in enumerate(ratings)])
    report = _ingest(tmp_path, raw, max_bad_row_share=0.9).sources["reviews"]
    assert report.rows_staged == len(examples)
    assert report.reasons == {"rating: not a valid integer (expected a whole number, e.g. 4)": len(rejected)}
    staged = dict(_query(tmp_path, "select customer_id, rating from raw.reviews"))
    assert [staged[f"C{i}"] for i in range(len(examples))] == [int(float(e)) for e in examples]


def test_documented_booleans_are_read_in_any_case(tmp_path):
    raw = tmp_path / "raw"
    _orders(raw, ["2025-12-31"])
    examples = _examples("booleans")  # `true`/`false`, `yes`/`no`, …: true and false alternate
    values = [(v, n % 2 == 0) for n, v in enumerate(examples)]
    assert [v for v, truth in values if truth][:2] == ["true", "yes"], examples
    values += [(v.upper(), truth) for v, truth in values]
    _write_csv(raw / "campaign_contacts.csv", ["campaign_id", "customer_id", "contact_ts", "is_control"],
               [["K1", f"C{i}", "2025-12-01", v] for i, (v, _) in enumerate(values)])
    report = _ingest(tmp_path, raw).sources["campaign_contacts"]
    assert report.rows_staged == len(values), report.reasons
    staged = dict(_query(tmp_path, "select customer_id, is_control from raw.campaign_contacts"))
    assert [staged[f"C{i}"] for i in range(len(values))] == [truth for _, truth in values]


def _write_file(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """One source file in the format its name says (CSV, gzipped CSV, TSV or Parquet)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".parquet"):
        with duckdb.connect() as con:
            values = ", ".join("(" + ", ".join(f"'{v}'" for v in r) + ")" for r in rows)
            con.execute(f"copy (select * from (values {values}) t({', '.join(header)})) to '{path}' (format parquet)")
        return
    delimiter = "\t" if path.name.endswith(".tsv") else ","
    body = ("\n".join(delimiter.join(r) for r in [header, *rows]) + "\n").encode()
    path.write_bytes(gzip.compress(body) if path.name.endswith(".gz") else body)


def test_documented_file_types_are_read(tmp_path):
    files = _examples("files")
    assert any(f.endswith("/") for f in files) and len(files) >= 4, files
    for n, name in enumerate(files):
        raw = tmp_path / f"raw{n}"
        rows = [[f"O{i}", "C1", "2025-12-31", "10.5"] for i in range(4)]
        if name.endswith("/"):  # a folder of part files, one of each documented file type
            parts = [f for f in files if not f.endswith("/")]
            for k, part in enumerate(parts):
                _write_file(raw / "orders" / part.replace("<source>", f"part-{k}"), ORDERS_HEADER,
                            [[f"P{k}", "C1", "2025-12-31", "10.5"]])
            expected = len(parts)
        else:
            _write_file(raw / name.replace("<source>", "orders"), ORDERS_HEADER, rows)
            expected = len(rows)
        report = _ingest(tmp_path / f"w{n}", raw).sources["orders"]
        assert report.rows_staged == expected, (name, report)


def test_documented_delimiters_and_quoting_are_sniffed(tmp_path):
    examples = _examples("delimiters")
    delimiters = ["\t" if e == "\\t" else e for e in examples if len(e) == 1 or e == "\\t"]
    quoted = [e for e in examples if e.startswith('"')]
    assert len(delimiters) >= 4 and quoted, examples
    for n, delimiter in enumerate(delimiters):
        raw = tmp_path / f"raw{n}"
        header = ORDERS_HEADER + ["channel"]
        rows = [[f"O{i}", "C1", f"2025-12-{10 + i} 10:00:00", f"{i}.5", quoted[0]] for i in range(5)]
        _write_csv(raw / "orders.csv", header, rows, delimiter)
        report = _ingest(tmp_path / f"w{n}", raw).sources["orders"]
        assert report.rows_staged == 5 and not report.extra_columns, (repr(delimiter), report)
        channels = {r[0] for r in _query(tmp_path / f"w{n}", "select channel from raw.orders")}
        assert channels == {quoted[0].strip('"')}, repr(delimiter)


def test_documented_encoding_utf8_with_a_byte_order_mark(tmp_path):
    assert "byte-order mark" in README.read_text(encoding="utf-8")
    raw = tmp_path / "raw"
    raw.mkdir()
    text = "\n".join([",".join(ORDERS_HEADER + ["channel"]), "O1,C1,2025-12-31,10.5,Zürich-Süd"]) + "\n"
    (raw / "orders.csv").write_bytes("\ufeff".encode() + text.encode("utf-8"))
    report = _ingest(tmp_path, raw).sources["orders"]
    assert report.rows_staged == 1, report
    assert _query(tmp_path, "select order_id, channel from raw.orders") == [("O1", "Zürich-Süd")]


# ---- per-source timestamp formats -----------------------------------------------------------------

DAY_FIRST = ["31/12/2025", "01/02/2025", "02/03/2025 14:30", "12/11/2025"]
DAY_FIRST_STAGED = [dt.datetime(2025, 12, 31), dt.datetime(2025, 2, 1), dt.datetime(2025, 3, 2, 14, 30),
                    dt.datetime(2025, 11, 12)]


@pytest.mark.parametrize("how", ["setting", "env", "cli"])
def test_a_day_first_export_ingests_with_its_format_set(tmp_path, monkeypatch, how, capsys):
    """Every row staged, each with the right date: day before month, no month-first misreading."""
    raw = tmp_path / "raw"
    _orders(raw, DAY_FIRST)
    formats = ["orders=%d/%m/%Y", "orders=%d/%m/%Y %H:%M"]
    if how == "setting":
        report = _ingest(tmp_path, raw, timestamp_formats="; ".join(formats)).to_dict()
    elif how == "env":
        monkeypatch.setenv("CHURNWATCH_TIMESTAMP_FORMATS", "; ".join(formats))
        report = _ingest(tmp_path, raw).to_dict()
    else:
        from ml.faces.cli import main

        monkeypatch.setenv("CHURNWATCH_PII_SALT", "test-salt")
        args = ["ingest", "--raw-dir", str(raw), "--warehouse", str(tmp_path / "w")]
        assert main(args + [a for f in formats for a in ("--timestamp-format", f)]) == 0
        import json

        report = json.loads(capsys.readouterr().out)
    orders = report["sources"]["orders"]
    assert (orders["rows_read"], orders["rows_staged"], orders["rows_quarantined"]) == (4, 4, 0), orders
    assert report["as_of"] == "2025-12-31"
    staged = dict(_query(tmp_path, "select order_id, order_ts from raw.orders"))
    assert [staged[f"O{i:03d}"] for i in range(4)] == DAY_FIRST_STAGED


def test_a_format_for_every_source_and_iso_still_read(tmp_path):
    """A format without ``source=`` applies to every source; ISO 8601 rows are read beside it."""
    raw = tmp_path / "raw"
    _orders(raw, ["31/12/2025 23:30 +0100", "2025-12-30 10:00:00"])
    _write_csv(raw / "reviews.csv", ["customer_id", "review_ts", "rating"], [["C1", "15/12/2025 08:00 +0000", "5"]])
    report = _ingest(tmp_path, raw, timestamp_formats="%d/%m/%Y %H:%M %z")
    assert report.sources["orders"].rows_staged == 2 and report.sources["reviews"].rows_staged == 1
    assert [r[0] for r in _query(tmp_path, "select order_ts from raw.orders order by order_id")] == [
        dt.datetime(2025, 12, 31, 22, 30), dt.datetime(2025, 12, 30, 10, 0)]
    assert _query(tmp_path, "select review_ts from raw.reviews") == [(dt.datetime(2025, 12, 15, 8, 0),)]


def test_without_the_format_the_error_quotes_the_value_and_the_expected_format(tmp_path):
    from ml.stages.ingest import BatchError

    raw = tmp_path / "raw"
    _orders(raw, ["2025-12-30"] + DAY_FIRST)
    with pytest.raises(BatchError) as err:
        _ingest(tmp_path, raw)
    line = str(err.value)
    assert "\n" not in line
    assert "column 'order_ts': not a valid timestamp (expected YYYY-MM-DD[ HH:MM:SS][±HH:MM], e.g. 2025-12-31 13:45:30)" in line
    assert "'31/12/2025' at row 2 and 3 more" in line, line
    assert "4 of 5 rows of 'orders' are bad" in line, line


def test_a_month_first_value_under_a_day_first_format_is_quoted(tmp_path):
    from ml.stages.ingest import BatchError

    raw = tmp_path / "raw"
    _orders(raw, ["12/31/2025", "12/30/2025"])
    with pytest.raises(BatchError, match=re.escape(
            "column 'order_ts': not a valid timestamp (expected %d/%m/%Y, e.g. 31/12/2025): '12/31/2025' at row 1")):
        _ingest(tmp_path, raw, timestamp_formats="orders=%d/%m/%Y", as_of=dt.date(2025, 12, 31))


def test_a_quarantined_timestamp_names_the_expected_format_and_keeps_its_value(tmp_path):
    """Under the bad-row limit the run goes on; the quarantine row has the reason and the value."""
    raw = tmp_path / "raw"
    _orders(raw, ["31/12/2025"] * 24 + ["2025/31/12"])
    report = _ingest(tmp_path, raw, timestamp_formats="orders=%d/%m/%Y")
    reason = "order_ts: not a valid timestamp (expected %d/%m/%Y, e.g. 31/12/2025)"
    assert report.sources["orders"].reasons == {reason: 1}
    assert _query(tmp_path, "select reason, source_row, source_values->>'order_ts' from quarantine.orders") == [
        (reason, 25, "2025/31/12")]


def test_numbers_with_a_decimal_comma_are_reported_with_the_value(tmp_path):
    """Decimal commas are not read (documented): the line says so, with the value."""
    from ml.stages.ingest import BatchError

    raw = tmp_path / "raw"
    _write_csv(raw / "orders.csv", ORDERS_HEADER, [["O0", "C1", "2025-12-31", "5"], ["O1", "C1", "2025-12-31", "1234,5"]],
               delimiter=";")
    with pytest.raises(BatchError, match=re.escape(
            "column 'amount': not a valid double (expected a number with a decimal point and no thousands "
            "separator, e.g. 1234.5): '1234,5' at row 2 and 0 more")):
        _ingest(tmp_path, raw)


@pytest.mark.parametrize("spec, message", [
    ("order=%d/%m/%Y", "'order' is not a source"),
    ("order_items=%d/%m/%Y", "'order_items' has no timestamp columns"),
    ("orders=%d/%m/%Q", "timestamp format '%d/%m/%Q': Failed to parse format specifier %d/%m/%Q: Unrecognized format"),
    ("orders=%H:%M", "does not read back a full date"),
    ("orders=", "the format is empty"),
])
def test_a_bad_format_setting_fails_at_once_in_one_line(spec, message, tmp_path, monkeypatch, capsys):
    from ml.faces.cli import main

    with pytest.raises(ValueError, match=re.escape(message)):
        _settings(tmp_path, tmp_path, timestamp_formats=spec)
    monkeypatch.setenv("CHURNWATCH_TIMESTAMP_FORMATS", spec)
    assert main(["ingest", "--raw-dir", str(tmp_path), "--warehouse", str(tmp_path / "w")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not (tmp_path / "w").exists()


def test_the_format_reaches_the_dag_tasks(tmp_path, monkeypatch):
    """``churnwatch run --timestamp-format`` hands it to the Airflow run as CHURNWATCH_TIMESTAMP_FORMATS
    (``Settings.as_env``), where each task's ``settings_from_params`` reads it back."""
    from ml.faces.cli import _settings, build_parser
    from ml.core.settings import settings_from_params

    args = build_parser().parse_args(["run", "--raw-dir", str(tmp_path), "--timestamp-format", "orders=%d/%m/%Y",
                                      "--timestamp-format", "events=%d/%m/%Y %H:%M"])
    env = _settings(args).as_env()
    assert env["CHURNWATCH_TIMESTAMP_FORMATS"] == "orders=%d/%m/%Y; events=%d/%m/%Y %H:%M"
    monkeypatch.setenv("CHURNWATCH_TIMESTAMP_FORMATS", env["CHURNWATCH_TIMESTAMP_FORMATS"])
    assert settings_from_params({"raw_dir": str(tmp_path)}).timestamp_formats == env["CHURNWATCH_TIMESTAMP_FORMATS"]


def test_a_real_shop_exported_day_first_stages_the_same_orders(shop_s, tmp_path):
    """The tier-S shop's orders written as ``dd/mm/yyyy HH:MM:SS`` stage exactly the rows and
    timestamps of the ISO export (orders only: the other sources are optional; about 3 s)."""
    iso, day_first = tmp_path / "iso", tmp_path / "day_first"
    iso.mkdir(), day_first.mkdir()
    with duckdb.connect() as con:
        orders = f"read_parquet('{shop_s / 'orders.parquet'}')" if (shop_s / "orders.parquet").exists() \
            else f"read_csv('{shop_s / 'orders.csv'}', all_varchar = true)"
        con.execute(f"copy (select * from {orders}) to '{iso / 'orders.csv'}' (header)")
        con.execute(f"copy (select * replace (strftime(order_ts::timestamp, '%d/%m/%Y %H:%M:%S') as order_ts) "
                    f"from {orders}) to '{day_first / 'orders.csv'}' (header)")
    assert "/" in (day_first / "orders.csv").read_text().splitlines()[1]
    a = _ingest(tmp_path / "a", iso).sources["orders"]
    b = _ingest(tmp_path / "b", day_first, timestamp_formats="orders=%d/%m/%Y %H:%M:%S").sources["orders"]
    assert (b.rows_read, b.rows_staged, b.rows_quarantined) == (a.rows_read, a.rows_staged, a.rows_quarantined)
    assert a.rows_staged > 10_000 and not b.reasons
    rows = "select order_id, order_ts, amount from raw.orders order by order_id"
    assert _query(tmp_path / "b", rows) == _query(tmp_path / "a", rows)
