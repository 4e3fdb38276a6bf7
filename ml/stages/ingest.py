"""Ingest: shop exports (CSV or Parquet) → DuckDB ``raw.*``, bad rows → ``quarantine.*``.

Every row read is accounted for: it is staged into ``raw.<source>``, quarantined with a reason,
or ignored because it is dated after the as-of date (it has not happened yet). The run's counts
go to ``raw._ingest_log``; staged + quarantined + after as-of = read, for every source.
Beside them ``raw._day_fingerprints`` holds a fingerprint of the staged rows per source and
day (``ml.core.fingerprints``), so the feature build can tell which past days a re-export changed.

Two kinds of fault:
- **row faults** (a key missing, a value that does not parse, a negative or absurd amount, a
  duplicate key, a malformed CSV line, a campaign contact without its control flag or naming
  an offer the offer catalog does not have) send the row to ``quarantine.<source>`` with the reason
  ``"<column>: <rule>"``, the file, the row number, the original values and the run id;
- **batch faults** (a required source, file or column missing, a file that cannot be read or is
  not UTF-8, more than ``max_bad_row_share`` bad rows) raise ``BatchError`` with one line naming
  the file, the column and the rule. They are raised before any ``raw`` table is replaced, so a
  failed ingest leaves the previous raw layer — and everything downstream — as it was; the
  failure itself is logged in ``raw._ingest_log`` (and its bad rows in quarantine) for diagnosis.

CSV files are read one by one as text (``all_varchar``, delimiter sniffed) with DuckDB's rejects
table catching lines that cannot be split into the header's columns; values are then cast with
``TRY_CAST``, so a value that does not parse becomes a quarantined row instead of a crashed run,
and identifiers keep their leading zeros. Timestamps are ISO 8601 unless the source has formats in
``settings.timestamp_formats`` (tried first, with DuckDB's ``try_strptime``); those with a UTC
offset are converted to naive UTC. A quarantine reason names what was expected with an example,
and the batch error quotes an offending value as well (README "Bring your own data"). PII
columns are replaced by salted SHA-256 hashes here and never stored in clear text — not
in ``raw``, and not in quarantine either.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from ml.core.contract import (SOURCES, Column, Source, expected_timestamp, has_offset, offer_codes,
                              timestamp_formats)
from ml.core import fingerprints
from ml.core.errors import InputError
from ml.core.settings import Settings
from ml.core.warehouse import connect, quote

log = logging.getLogger(__name__)

RAW_EXTENSIONS = (".parquet", ".csv", ".csv.gz", ".tsv")
EARLIEST_PLAUSIBLE = dt.date(1990, 1, 1)  # sentinel dates like 1900-01-01 are faults, not history
LATEST_PLAUSIBLE = dt.date(2100, 1, 1)  # beyond this a date is a sentinel, not the future
MAX_QUANTITY = 10_000

# DuckDB's CSV reject error types → the rule in a quarantine reason ("line: <rule>")
_LINE_RULES = {
    "INVALID ENCODING": "not UTF-8",
    "TOO MANY COLUMNS": "more fields than the header",
    "MISSING COLUMNS": "fewer fields than the header",
    "UNQUOTED VALUE": "bad quoting",
    "LINE SIZE OVER MAXIMUM": "line too long",
}


class BatchError(InputError):
    """A fault in a whole input batch: the run stops and nothing published is touched (no retry)."""

    def __init__(self, message: str, report: "SourceReport | None" = None):
        super().__init__(message)
        self.report = report


@dataclass
class SourceReport:
    source: str
    files: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_staged: int = 0
    rows_quarantined: int = 0
    rows_after_as_of: int = 0
    extra_columns: list[str] = field(default_factory=list)
    present: bool = False
    reasons: dict[str, int] = field(default_factory=dict)  # quarantine reason → rows
    notes: list[str] = field(default_factory=list)

    def reconciles(self) -> bool:
        return self.rows_read == self.rows_staged + self.rows_quarantined + self.rows_after_as_of


@dataclass
class IngestReport:
    run_id: str
    as_of: dt.date
    sources: dict[str, SourceReport]
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat(),
            "seconds": round(self.seconds, 3),
            "sources": {k: asdict(v) for k, v in self.sources.items()},
        }


# ---- locating and reading files -----------------------------------------------------------


def find_source_files(raw_dir: Path, source: str) -> list[Path]:
    """One file ``<source>.<ext>`` or a folder ``<source>/`` of part files."""
    folder = raw_dir / source
    if folder.is_dir():
        return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(RAW_EXTENSIONS))
    return [raw_dir / f"{source}{ext}" for ext in RAW_EXTENSIONS if (raw_dir / f"{source}{ext}").is_file()]


def _sql_str(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _check_encoding(path: Path) -> None:
    """UTF-16/32 files read as one garbled column; say so instead of 'column missing'."""
    if path.name.endswith(".parquet") or path.name.endswith(".gz"):
        return
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
        raise BatchError(f"{path}: encoding: the file is UTF-16/UTF-32 (or binary), not UTF-8; re-export it as UTF-8")


def _read_file(con: duckdb.DuckDBPyConnection, path: Path, part: int) -> list[str]:
    """Read one file as text into temp table ``_part<n>`` (+ its rejected lines); return its columns."""
    _check_encoding(path)
    table, rejects = f"_part{part}", f"_rejects{part}"
    if path.name.endswith(".parquet"):
        reader = f"read_parquet({_sql_str(path)})"
    else:
        reader = (
            f"read_csv({_sql_str(path)}, all_varchar = true, header = true, auto_detect = true, "
            f"store_rejects = true, rejects_table = '_rej', rejects_scan = '_scan')"
        )
    try:
        con.execute(f"create or replace temp table _file_raw as select * from {reader}")
    except duckdb.Error as exc:
        first_line = str(exc).strip().splitlines()[0]
        kind = "Parquet" if path.name.endswith(".parquet") else "CSV"
        raise BatchError(f"{path}: unreadable: cannot be read as {kind} ({first_line})") from None
    columns = [r[0] for r in con.execute("describe _file_raw").fetchall()]
    names = [c.strip().lower() for c in columns]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise BatchError(f"{path}: column '{duplicated[0]}': appears more than once in the header")
    select = ", ".join(f"cast({quote(c)} as varchar) as {quote(n)}" for c, n in zip(columns, names))
    con.execute(
        f"create or replace temp table {table} as "
        f"select {part} as _part, row_number() over () as _row, {select} from _file_raw"
    )
    con.execute("drop table _file_raw")
    if not path.name.endswith(".parquet"):
        _number_data_rows(con, table, rejects, part)
    return names


def _number_data_rows(con: duckdb.DuckDBPyConnection, table: str, rejects: str, part: int) -> None:
    """Rejected lines into ``_rejects<n>``; ``_row`` of both becomes the data row number in the file.

    DuckDB numbers rejected lines by file line (the header is line 1) and skips them when it
    numbers parsed rows; parsed row k is data row k + (rejected rows with fewer parsed rows before).
    """
    con.execute(
        f"create or replace temp table {rejects} as select {part} as _part, line - 1 as _row, "
        f"any_value(error_type) as error_type, any_value(csv_line) as csv_line from _rej group by line"
    )
    con.execute("drop table if exists _rej; drop table if exists _scan")
    if con.execute(f"select count(*) from {rejects}").fetchone()[0]:
        con.execute(
            f"create or replace temp table _before as "
            f"select _row - row_number() over (order by _row) as parsed_before from {rejects}"
        )
        con.execute(
            f"update {table} set _row = _row + (select count(*) from _before b where b.parsed_before < {table}._row)"
        )
        con.execute("drop table _before")


def _check_columns(source: Source, path: Path, columns: list[str]) -> None:
    missing = [c for c in source.required_columns if c not in columns]
    if missing:
        hint = "; wrong delimiter?" if len(columns) == 1 else ""
        raise BatchError(
            f"{path}: column '{missing[0]}': required column is missing "
            f"(found: {', '.join(columns[:12])}{hint})"
        )


def _load_text(con: duckdb.DuckDBPyConnection, source: Source, files: list[Path], report: SourceReport) -> list[str]:
    """All of a source's files as text in temp table ``_in`` (+ ``_rejects``); returns its columns."""
    parts, rejects, columns = [], [], []
    for part, path in enumerate(files):
        if path.stat().st_size == 0:
            report.notes.append(f"{path.name}: empty file (0 bytes)")
            continue
        names = _read_file(con, path, part)
        if names == ["column0"] and not con.execute(f"select count(*) from _part{part}").fetchone()[0]:
            report.notes.append(f"{path.name}: empty file (no header)")
            continue
        _check_columns(source, path, names)
        parts.append(f"select * from _part{part}")
        if not path.name.endswith(".parquet"):
            rejects.append(f"select * from _rejects{part}")
        columns += [n for n in names if n not in columns]
    if not parts:
        if source.required:
            raise BatchError(f"{files[0]}: empty file: the required source '{source.name}' is empty")
        con.execute("create or replace temp table _in as select 0 as _part, 0::bigint as _row limit 0")
    else:
        con.execute(f"create or replace temp table _in as {' union all by name '.join(parts)}")
    rejects_sql = " union all ".join(rejects) or (
        "select 0 as _part, 0::bigint as _row, null::varchar as error_type, null::varchar as csv_line limit 0"
    )
    con.execute(f"create or replace temp table _rejects as {rejects_sql}")
    for part in range(len(files)):
        con.execute(f"drop table if exists _part{part}; drop table if exists _rejects{part}")
    return columns


# ---- judging rows -----------------------------------------------------------------------


# what each contract type reads, for quarantine reasons: "<column>: not a valid <type> (<expected>)"
_EXPECTED = {
    "DOUBLE": "expected a number with a decimal point and no thousands separator, e.g. 1234.5",
    "INTEGER": "expected a whole number, e.g. 4",
    "BOOLEAN": "expected true/false, yes/no, t/f or 1/0",
}


def _typed(col: Column, text: str, salt: str, ts_formats: tuple[str, ...] = ()) -> str:
    """SQL casting the text value ``text`` to the column's contract type (NULL when it does not parse).

    ``ts_formats``: the source's strptime formats, tried before the ISO cast (ISO is always read,
    and cannot be mistaken for a day-first or month-first date).
    """
    if col.pii:
        return (
            f"case when {text} is null or trim({text}) = '' then null "
            f"else sha256({_sql_str(salt)} || lower(trim({text}))) end"
        )
    if col.type == "VARCHAR":
        return text
    if col.type == "BOOLEAN":
        return (
            f"case lower(trim({text})) when 'true' then true when '1' then true when 't' then true "
            f"when 'yes' then true when 'false' then false when '0' then false when 'f' then false "
            f"when 'no' then false end"
        )
    if col.type == "TIMESTAMP":  # an offset, when given, is honoured: stored as naive UTC
        plain = f"(length(trim({text})) = 10 or (length(trim({text})) = 19 and substr(trim({text}), 17, 1) = ':'))"
        iso = (  # 'YYYY-MM-DD[ HH:MM:SS]' has no room for an offset: the cheaper cast (2x faster)
            f"case when {plain} then try_cast(trim({text}) as timestamp) "
            f"else try_cast(trim({text}) as timestamptz) at time zone 'UTC' end"
        )
        naive = [f for f in ts_formats if not has_offset(f)]
        aware = [f for f in ts_formats if has_offset(f)]
        tried = [f"try_strptime(trim({text}), [{', '.join(map(_sql_str, naive))}])"] if naive else []
        if aware:  # one list holding an offset format returns TIMESTAMPTZ for every row: keep them apart
            tried.append(f"try_strptime(trim({text}), [{', '.join(map(_sql_str, aware))}]) at time zone 'UTC'")
        return f"coalesce({', '.join(tried)}, {iso})" if tried else iso
    if col.type == "INTEGER":  # a plain cast would round 4.5 to 5: only whole numbers are integers
        return f"case when try_cast(trim({text}) as double) % 1 = 0 then try_cast(trim({text}) as integer) end"
    return f"try_cast(trim({text}) as {col.type})"


def _fault_rules(source: Source, columns: list[str], settings: Settings) -> list[tuple[str, str]]:
    """(condition on text ``_txt_<c>`` and typed ``<c>`` columns, reason); the first match wins.

    A reason holds no value (it counts rows alike); a parse failure's reason says what was
    expected, with an example, and the row's own value is beside it in ``source_values``.
    """
    rules: list[tuple[str, str]] = []
    ts_formats = timestamp_formats(settings.timestamp_formats).get(source.name, ())
    present = [c for c in source.columns if c.name in columns and not c.pii]
    for col in present:
        txt = quote(f"_txt_{col.name}")
        blank = f"({txt} is null or trim({txt}) = '')"
        if col.key or col.not_null:
            rules.append((blank, f"{col.name}: missing"))
        if col.type != "VARCHAR":
            expected = expected_timestamp(ts_formats) if col.type == "TIMESTAMP" else _EXPECTED[col.type]
            rules.append((f"not {blank} and {col.name} is null", f"{col.name}: not a valid {col.type.lower()} ({expected})"))
        if col.type == "DOUBLE":
            rules.append((f"not isfinite({col.name})", f"{col.name}: not a finite number"))
        if col.type == "TIMESTAMP":
            rules.append((f"not isfinite({col.name})", f"{col.name}: not a finite timestamp"))
            rules.append((f"{col.name} < date '{EARLIEST_PLAUSIBLE}'", f"{col.name}: before {EARLIEST_PLAUSIBLE}"))
            rules.append((f"{col.name} >= date '{LATEST_PLAUSIBLE}'", f"{col.name}: after {LATEST_PLAUSIBLE}"))
    names = {c.name for c in present}
    if source.name == "campaign_contacts" and "offer_code" in names:
        known = ", ".join(_sql_str(code) for code in offer_codes(settings.dbt_project_dir))
        rules.append((f"trim(offer_code) <> '' and offer_code not in ({known})",
                      "offer_code: not in the offer catalog (dbt_project/seeds/offer_catalog.csv)"))
    limit = float(settings.max_amount)
    for money in ("amount", "discount_amount", "unit_price"):
        if money in names:
            rules.append((f"{money} < 0", f"{money}: negative"))
            rules.append((f"{money} > {limit}", f"{money}: above {limit:,.0f}"))
    if "quantity" in names:
        rules.append((f"quantity <= 0 or quantity > {MAX_QUANTITY}", f"quantity: outside 1-{MAX_QUANTITY}"))
    if "rating" in names:
        rules.append(("rating not between 1 and 5", "rating: outside 1-5"))
    if "age" in names:
        rules.append(("age not between 0 and 120", "age: outside 0-120"))
    return rules


def _judge(con: duckdb.DuckDBPyConnection, source: Source, columns: list[str], settings: Settings) -> None:
    """``_judged``: typed contract columns + ``_reason`` (NULL for a good row), one row per parsed row."""
    text = {c.name: (f"_in.{quote(c.name)}" if c.name in columns else "null::varchar") for c in source.columns}
    ts_formats = timestamp_formats(settings.timestamp_formats).get(source.name, ())
    typed = ", ".join(
        f"{_typed(c, text[c.name], settings.pii_salt)} as {c.name}_hash" if c.pii
        else f"{_typed(c, text[c.name], settings.pii_salt, ts_formats)} as {c.name}"
        for c in source.columns
    )
    texts = ", ".join(f"{text[c.name]} as {quote('_txt_' + c.name)}" for c in source.columns if not c.pii)
    rules = _fault_rules(source, columns, settings)
    reason = ("case " + " ".join(f"when {cond} then {_sql_str(why)}" for cond, why in rules) + " end") if rules else "null"
    con.execute(
        f"create or replace temp table _judged as "
        f"select _part, _row, {', '.join(_output_columns(source))}, {reason} as _reason "
        f"from (select _part, _row, {typed}, {texts} from _in)"
    )
    if source.unique_key:  # among otherwise good rows the first occurrence is kept, later ones quarantined
        keys = ", ".join(source.unique_key)
        con.execute(
            f"update _judged set _reason = {_sql_str('+'.join(source.unique_key) + ': duplicate key')} "
            f"from (select _part, _row, row_number() over (partition by {keys} order by _part, _row) as n "
            f"      from _judged where _reason is null) d "
            f"where d.n > 1 and _judged._part = d._part and _judged._row = d._row"
        )


def _output_columns(source: Source) -> list[str]:
    return [f"{c.name}_hash" if c.pii else c.name for c in source.columns]


def _quarantine_rows(con: duckdb.DuckDBPyConnection, source: Source, columns: list[str], files: list[Path], run_id: str) -> None:
    """``_bad``: quarantine records for judged-bad rows and rejected lines, original text, PII left out."""
    pii = {c.name for c in source.columns if c.pii}
    kept = [c for c in source.column_names if c in columns and c not in pii]
    values = f"to_json(struct_pack({', '.join(f'{quote(c)} := _in.{quote(c)}' for c in kept)}))::varchar" if kept else "'{}'"
    file_name = "case _part " + " ".join(f"when {i} then {_sql_str(p)}" for i, p in enumerate(files)) + " end"
    line_rule = "case error_type " + " ".join(f"when '{k}' then 'line: {v}'" for k, v in _LINE_RULES.items())
    line_rule += " else 'line: ' || lower(error_type) end"
    line_values = "'{\"line\": \"withheld: the source has PII columns\"}'" if pii else "to_json(struct_pack(line := csv_line))::varchar"
    con.execute(
        f"create or replace temp table _bad as "
        f"select {_sql_str(run_id)} as run_id, {file_name} as source_file, j._row as source_row, "
        f"       j._reason as reason, {values} as source_values "
        f"from _judged j join _in using (_part, _row) where j._reason is not null "
        f"union all "
        f"select {_sql_str(run_id)}, {file_name}, _row, {line_rule}, {line_values} from _rejects"
    )


def _bad_share_error(con, report: SourceReport, judged: int, settings: Settings) -> BatchError:
    """The one line for too many bad rows: the worst file, its commonest column and rule, and the
    first such row's value (what was expected is in the rule), e.g. ``orders.csv: column
    'order_ts': not a valid timestamp (expected %d/%m/%Y, e.g. 31/12/2025): '12/31/2025' at row 2 …``."""
    source_file, reason, n, example = con.execute(
        "select source_file, reason, count(*) as n, min(source_row) from _bad group by all order by n desc, 1, 2 limit 1"
    ).fetchone()
    column, _, rule = reason.partition(": ")
    where = "malformed lines" if column == "line" else f"column '{column}'"
    value = con.execute(  # the original text; NULL for lines, PII and a key column's absence
        "select json_extract_string(source_values, ?) from _bad where source_file = ? and source_row = ?",
        [f'$."{column}"', source_file, example],
    ).fetchone()[0] if column != "line" and "+" not in column else None
    found = f"{value!r} at row {example}" if value else f"first at row {example}"
    share = report.rows_quarantined / judged
    return BatchError(
        f"{source_file}: {where}: {rule}: {found} and {n - 1:,} more — {report.rows_quarantined} of {judged} rows of "
        f"'{report.source}' are bad ({share:.1%} > max_bad_row_share {settings.max_bad_row_share:.0%}); "
        f"see quarantine.{report.source}",
        report,
    )


def _stage_source(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    files: list[Path],
    settings: Settings,
    run_id: str,
    as_of: dt.date | None,
) -> tuple[SourceReport, dt.date | None]:
    """Judge one source: leaves ``_good`` (rows to stage) and ``_bad`` (quarantine records)."""
    report = SourceReport(source.name, [str(f) for f in files], present=True)
    columns = _load_text(con, source, files, report)
    known = set(source.column_names)
    report.extra_columns = [c for c in columns if c not in known]
    parsed, rejected = (con.execute(f"select count(*) from {t}").fetchone()[0] for t in ("_in", "_rejects"))
    report.rows_read = parsed + rejected
    if report.rows_read == 0:
        if source.required:
            raise BatchError(f"{files[0]}: no data rows: the required source '{source.name}' has no data rows")
        if not report.notes:
            report.notes.append("no data rows")

    _judge(con, source, columns, settings)
    if source.name == "orders" and as_of is None:  # the as-of date defaults to the last order date
        as_of = con.execute("select max(order_ts)::date from _judged where _reason is null").fetchone()[0]
        if as_of is None:
            raise BatchError(f"{files[0]}: order_ts: no valid order rows, cannot infer the as-of date")

    future = f"{source.ts_column} >= date '{as_of}' + interval 1 day" if source.ts_column and as_of else "false"
    _quarantine_rows(con, source, columns, files, run_id)
    con.execute(
        f"create or replace temp table _good as select {', '.join(_output_columns(source))} "
        f"from _judged where _reason is null and not ({future})"
    )
    report.rows_staged = con.execute("select count(*) from _good").fetchone()[0]
    report.rows_after_as_of = con.execute(f"select count(*) from _judged where _reason is null and {future}").fetchone()[0]
    report.reasons = dict(con.execute("select reason, count(*) from _bad group by 1 order by 2 desc, 1").fetchall())
    report.rows_quarantined = sum(report.reasons.values())
    judged = report.rows_read - report.rows_after_as_of
    if judged and report.rows_quarantined / judged > settings.max_bad_row_share:
        raise _bad_share_error(con, report, judged, settings)
    return report, as_of


def _empty_table_sql(source: Source) -> str:
    cols = ", ".join(f"{c.name}_hash VARCHAR" if c.pii else f"{c.name} {c.type}" for c in source.columns)
    return f"({cols})"


# ---- the stage ----------------------------------------------------------------------------


def ingest(settings: Settings, run_id: str = "manual") -> IngestReport:
    """Load every source under ``settings.raw_dir`` into ``raw.*``; returns counts per source."""
    started = time.perf_counter()
    if settings.raw_dir is None or not settings.raw_dir.is_dir():
        raise BatchError(f"{settings.raw_dir}: raw directory not found")
    reports: dict[str, SourceReport] = {}
    as_of = settings.as_of
    with connect(settings) as con:
        _ensure_log_tables(con)
        # read and judge every source first; only then replace tables, in one transaction
        staged: list[str] = []
        for name in ["orders"] + [s for s in SOURCES if s != "orders"]:
            source = SOURCES[name]
            files = find_source_files(settings.raw_dir, name)
            if not files:
                if source.required:
                    error = BatchError(
                        f"{settings.raw_dir}: the required source '{name}' is missing "
                        f"(expected {name}.csv, {name}.parquet or a folder {name}/)"
                    )
                    _record_failure(con, run_id, SourceReport(name), error, with_quarantine=False)
                    raise error
                reports[name] = SourceReport(name)
                continue
            try:
                report, as_of = _stage_source(con, source, files, settings, run_id, as_of)
            except BatchError as error:
                report = error.report or SourceReport(name, [str(f) for f in files], present=True)
                _record_failure(con, run_id, report, error, with_quarantine=error.report is not None)
                raise
            reports[name] = report
            con.execute(f"alter table _good rename to _good_{name}")
            con.execute(f"alter table _bad rename to _bad_{name}")
            staged.append(name)
            if report.extra_columns:
                log.warning("%s: extra columns kept out of raw.%s: %s", name, name, ", ".join(report.extra_columns))
            for note in report.notes:
                log.warning("%s: %s", name, note)
            if report.rows_quarantined:
                log.warning("%s: %d rows quarantined: %s", name, report.rows_quarantined, report.reasons)
        _replace_raw_tables(con, staged, reports, run_id, as_of)
    report = IngestReport(run_id, as_of, reports, time.perf_counter() - started)
    for r in reports.values():
        assert r.reconciles(), f"{r.source}: rows do not reconcile: {r}"
    log.info("ingest %s", report.to_dict())
    return report


_QUARANTINE_COLUMNS = (
    "run_id varchar, reason varchar, source_row bigint, source_values varchar, source_file varchar, "
    "quarantined_at timestamp"
)
_LOG_COLUMNS = (
    "run_id varchar, as_of_date date, source varchar, present boolean, rows_read bigint, rows_staged bigint, "
    "rows_quarantined bigint, rows_after_as_of bigint, extra_columns varchar, loaded_at timestamp, "
    "status varchar, message varchar, files varchar"
)


def _ensure_table(con, name: str, columns: str) -> None:
    """Create the table, or add the columns an older warehouse lacks."""
    con.execute(f"create table if not exists {name} ({columns})")
    for column in columns.split(", "):
        con.execute(f"alter table {name} add column if not exists {column}")


def _ensure_log_tables(con) -> None:
    con.execute("create schema if not exists raw")
    con.execute("create schema if not exists quarantine")
    _ensure_table(con, "raw._ingest_log", _LOG_COLUMNS)
    for name in SOURCES:
        _ensure_table(con, f"quarantine.{name}", _QUARANTINE_COLUMNS)


def _insert_quarantine(con, name: str, run_id: str) -> None:
    con.execute(f"delete from quarantine.{name} where run_id = ?", [run_id])
    con.execute(f"insert into quarantine.{name} by name select *, now()::timestamp as quarantined_at from _bad")


def _insert_log(con, run_id: str, as_of, r: SourceReport, status: str, message: str | None) -> None:
    con.execute(
        "insert into raw._ingest_log by name select ? as run_id, ?::date as as_of_date, ? as source, ? as present, "
        "? as rows_read, ? as rows_staged, ? as rows_quarantined, ? as rows_after_as_of, ? as extra_columns, "
        "now()::timestamp as loaded_at, ? as status, ? as message, ? as files",
        [run_id, as_of, r.source, r.present, r.rows_read, r.rows_staged, r.rows_quarantined, r.rows_after_as_of,
         ",".join(r.extra_columns), status, message, ",".join(r.files)],
    )


def _record_failure(con, run_id: str, report: SourceReport, error: BatchError, with_quarantine: bool) -> None:
    """Log a failed ingest (and the bad rows that caused it); the raw tables stay as they were.

    The as-of date is left NULL: stage commands continue from the last *successful* ingest.
    """
    con.execute("begin")
    con.execute("delete from raw._ingest_log where run_id = ?", [run_id])
    if with_quarantine:
        _insert_quarantine(con, report.source, run_id)
    _insert_log(con, run_id, None, report, "failed", str(error))
    con.execute("commit")


def _replace_raw_tables(con, staged: list[str], reports: dict[str, SourceReport], run_id: str, as_of) -> None:
    con.execute("begin")
    for name, source in SOURCES.items():
        if name in staged:
            con.execute(f"create or replace table raw.{name} as select * from _good_{name}")
            con.execute(f"alter table _bad_{name} rename to _bad")
            _insert_quarantine(con, name, run_id)
            con.execute("drop table _bad")
        else:
            con.execute(f"create or replace table raw.{name} {_empty_table_sql(source)}")
            con.execute(f"delete from quarantine.{name} where run_id = ?", [run_id])
    con.execute("delete from raw._ingest_log where run_id = ?", [run_id])
    for r in reports.values():
        _insert_log(con, run_id, as_of, r, "staged", "; ".join(r.notes) or None)
    # with the tables they describe: which days of which source a re-export changed (ml.stages.features.rebuild)
    fingerprints.record(con, run_id)
    con.execute("commit")
