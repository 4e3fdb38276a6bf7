"""Ingest: shop exports (CSV or Parquet) → DuckDB ``raw.*``, bad rows → ``quarantine.*``.

Every row read is accounted for: it is staged into ``raw.<source>``, quarantined with a reason,
or ignored because it is dated after the as-of date (it has not happened yet). Batch faults — a
missing or unreadable required file, a missing required column, too many bad rows — raise
``BatchError`` with one line naming the file, the column and the rule, before any table is
replaced, so a failed ingest leaves the previous ``raw`` layer as it was.

Files are read as text first (``all_varchar``) and cast with ``TRY_CAST``, so a value that does
not parse becomes a quarantined row instead of a crashed run, and identifiers keep their leading
zeros. PII columns are replaced by salted SHA-256 hashes here and never stored in clear text.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from ml.contract import SOURCES, Source
from ml.settings import Settings
from ml.warehouse import connect, quote

log = logging.getLogger(__name__)

ABSURD_AMOUNT = 1_000_000.0
RAW_EXTENSIONS = (".parquet", ".csv", ".csv.gz", ".tsv")


class BatchError(RuntimeError):
    """A fault in a whole input batch: the run stops and nothing published is touched."""


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


# ---- locating files ---------------------------------------------------------------------


def find_source_files(raw_dir: Path, source: str) -> list[Path]:
    """One file ``<source>.<ext>`` or a folder ``<source>/`` of part files."""
    folder = raw_dir / source
    if folder.is_dir():
        parts = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(RAW_EXTENSIONS))
        return parts
    return [raw_dir / f"{source}{ext}" for ext in RAW_EXTENSIONS if (raw_dir / f"{source}{ext}").is_file()]


def _reader_sql(files: list[Path]) -> str:
    paths = "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in files) + "]"
    if all(p.name.endswith(".parquet") for p in files):
        return f"read_parquet({paths}, union_by_name = true)"
    if any(p.name.endswith(".parquet") for p in files):
        raise BatchError(f"{files[0].parent}: mixes Parquet and CSV part files; use one format per source")
    return f"read_csv({paths}, all_varchar = true, header = true, union_by_name = true, auto_detect = true)"


# ---- per-source work --------------------------------------------------------------------


def _load_text(con: duckdb.DuckDBPyConnection, source: Source, files: list[Path]) -> list[str]:
    """Read the files into temp table ``_in`` as text plus a row number; return its columns."""
    try:
        con.execute(f"create or replace temp table _in_raw as select * from {_reader_sql(files)}")
    except duckdb.Error as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise BatchError(f"{files[0]}: cannot be read ({first_line})") from None
    columns = [r[0] for r in con.execute("describe _in_raw").fetchall()]
    lowered = {c: c.strip().lower() for c in columns}
    select = ", ".join(f"cast({quote(c)} as varchar) as {quote(lowered[c])}" for c in columns)
    con.execute(f"create or replace temp table _in as select row_number() over () as _row, {select} from _in_raw")
    con.execute("drop table _in_raw")
    return list(lowered.values())


def _check_columns(source: Source, files: list[Path], columns: list[str]) -> list[str]:
    missing = [c for c in source.required_columns if c not in columns]
    if missing:
        hint = " (wrong delimiter?)" if len(columns) == 1 else ""
        raise BatchError(
            f"{files[0]}: required column '{missing[0]}' is missing{hint}; found {', '.join(columns[:12])}"
        )
    known = set(source.column_names)
    return [c for c in columns if c not in known]


def _typed_select(source: Source, columns: list[str], salt: str) -> str:
    """Expressions casting text columns to contract types; absent optional columns are NULL."""
    exprs = []
    for col in source.columns:
        src = f"_in.{quote(col.name)}" if col.name in columns else "null"
        if col.pii:
            exprs.append(
                f"case when {src} is null or trim({src}) = '' then null "
                f"else sha256('{salt.replace(chr(39), chr(39) * 2)}' || lower(trim({src}))) end as {col.name}_hash"
            )
        elif col.type == "VARCHAR":
            exprs.append(f"cast({src} as varchar) as {col.name}")
        elif col.type == "BOOLEAN":
            exprs.append(
                f"case lower(trim({src})) when 'true' then true when '1' then true when 't' then true "
                f"when 'yes' then true when 'false' then false when '0' then false when 'f' then false "
                f"when 'no' then false end as {col.name}"
            )
        else:
            exprs.append(f"try_cast(trim({src}) as {col.type}) as {col.name}")
    return ", ".join(exprs)


def _fault_rules(source: Source, columns: list[str]) -> list[tuple[str, str]]:
    """(condition on the typed row ``t`` joined to text row ``_in``, reason), first match wins."""
    rules: list[tuple[str, str]] = []
    for col in source.columns:
        if col.name not in columns or col.pii:
            continue
        if col.key:
            rules.append((f"_in.{quote(col.name)} is null or trim(_in.{quote(col.name)}) = ''", f"{col.name}: missing"))
        if col.type != "VARCHAR":
            rules.append(
                (
                    f"_in.{quote(col.name)} is not null and trim(_in.{quote(col.name)}) <> '' and t.{col.name} is null",
                    f"{col.name}: not a valid {col.type.lower()}",
                )
            )
    names = set(columns)
    if "amount" in names:
        rules.append(("t.amount < 0", "amount: negative"))
        rules.append((f"t.amount > {ABSURD_AMOUNT}", "amount: absurdly large"))
    if "unit_price" in names:
        rules.append(("t.unit_price < 0", "unit_price: negative"))
    if "quantity" in names:
        rules.append(("t.quantity <= 0 or t.quantity > 10000", "quantity: out of range"))
    if "rating" in names:
        rules.append(("t.rating not between 1 and 5", "rating: outside 1-5"))
    if source.unique_key:
        rules.append(("t._dup_rank > 1", f"{'+'.join(source.unique_key)}: duplicate key"))
    return rules


def _stage_source(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    files: list[Path],
    settings: Settings,
    run_id: str,
    as_of: dt.date | None,
) -> tuple[SourceReport, dt.date | None]:
    report = SourceReport(source.name, [str(f) for f in files], present=True)
    columns = _load_text(con, source, files)
    report.extra_columns = _check_columns(source, files, columns)
    report.rows_read = con.execute("select count(*) from _in").fetchone()[0]
    if report.rows_read == 0 and source.required:
        raise BatchError(f"{files[0]}: the required source '{source.name}' is empty")

    dup_rank = (
        f", row_number() over (partition by {', '.join(quote(k) for k in source.unique_key)} order by _row) as _dup_rank"
        if source.unique_key
        else ", 1 as _dup_rank"
    )
    con.execute(
        f"create or replace temp table _typed as select _row, {_typed_select(source, columns, settings.pii_salt)} "
        f"from _in"
    )
    if source.unique_key:
        con.execute(f"create or replace temp table _typed as select *{dup_rank} from _typed")
    else:
        con.execute("create or replace temp table _typed as select *, 1 as _dup_rank from _typed")
    rules = _fault_rules(source, columns)
    reason = "case " + " ".join(f"when {cond} then '{why}'" for cond, why in rules) + " end" if rules else "null"
    con.execute(
        f"create or replace temp table _judged as select t.*, {reason} as _reason "
        f"from _typed t join _in using (_row)"
    )

    # the as-of date defaults to the last order date in the data
    if source.name == "orders" and as_of is None:
        as_of = con.execute("select max(order_ts)::date from _judged where _reason is null").fetchone()[0]
        if as_of is None:
            raise BatchError(f"{files[0]}: no valid order rows, cannot infer the as-of date")

    future = f"{source.ts_column} >= date '{as_of}' + interval 1 day" if source.ts_column and as_of else "false"
    counts = con.execute(
        f"select count(*) filter (where _reason is not null), "
        f"count(*) filter (where _reason is null and {future}), "
        f"count(*) filter (where _reason is null and not ({future})) from _judged"
    ).fetchone()
    report.rows_quarantined, report.rows_after_as_of, report.rows_staged = counts
    judged = report.rows_read - report.rows_after_as_of
    if judged and report.rows_quarantined / judged > settings.max_bad_row_share:
        top = con.execute(
            "select _reason, count(*) n from _judged where _reason is not null group by 1 order by n desc limit 1"
        ).fetchone()
        raise BatchError(
            f"{files[0]}: {report.rows_quarantined} of {judged} rows are bad "
            f"({report.rows_quarantined / judged:.1%} > {settings.max_bad_row_share:.0%}); most common: {top[0]}"
        )
    keep = ", ".join(c for c in _output_columns(source))
    con.execute(f"create or replace temp table _good as select {keep} from _judged where _reason is null and not ({future})")
    pii = {col.name for col in source.columns if col.pii}
    row_struct = ", ".join(f"{quote(c)} := _in.{quote(c)}" for c in columns if c not in pii)
    con.execute(
        f"create or replace temp table _bad as select '{run_id}' as run_id, j._reason as reason, "
        f"_in._row as source_row, to_json(struct_pack({row_struct}))::varchar as source_values "
        f"from _judged j join _in using (_row) where j._reason is not null"
    )
    return report, as_of


def _output_columns(source: Source) -> list[str]:
    return [f"{c.name}_hash" if c.pii else c.name for c in source.columns]


def _empty_table_sql(source: Source) -> str:
    cols = ", ".join(f"{c.name}_hash VARCHAR" if c.pii else f"{c.name} {c.type}" for c in source.columns)
    return f"({cols})"


# ---- the stage ----------------------------------------------------------------------------


def ingest(settings: Settings, run_id: str = "manual") -> IngestReport:
    """Load every source under ``settings.raw_dir`` into ``raw.*``; returns counts per source."""
    started = time.perf_counter()
    if settings.raw_dir is None or not settings.raw_dir.is_dir():
        raise BatchError(f"raw directory not found: {settings.raw_dir}")
    reports: dict[str, SourceReport] = {}
    as_of = settings.as_of
    with connect(settings) as con:
        # read and judge every source first; only then replace tables, in one transaction
        order = ["orders"] + [s for s in SOURCES if s != "orders"]
        staged: list[str] = []
        for name in order:
            source = SOURCES[name]
            files = find_source_files(settings.raw_dir, name)
            if not files:
                if source.required:
                    raise BatchError(
                        f"{settings.raw_dir}: required source '{name}' not found "
                        f"(expected {name}.csv, {name}.parquet or a folder {name}/)"
                    )
                reports[name] = SourceReport(name)
                continue
            report, as_of = _stage_source(con, source, files, settings, run_id, as_of)
            reports[name] = report
            con.execute(f"alter table _good rename to _good_{name}")
            con.execute(f"alter table _bad rename to _bad_{name}")
            staged.append(name)
            if report.extra_columns:
                log.warning("%s: extra columns kept out: %s", name, ", ".join(report.extra_columns))
        _replace_raw_tables(con, staged, reports, run_id, as_of)
    report = IngestReport(run_id, as_of, reports, time.perf_counter() - started)
    for r in reports.values():
        assert r.reconciles(), f"{r.source}: rows do not reconcile: {r}"
    log.info("ingest %s", report.to_dict())
    return report


def _replace_raw_tables(con, staged: list[str], reports: dict[str, SourceReport], run_id: str, as_of) -> None:
    con.execute("begin")
    con.execute("create schema if not exists raw")
    con.execute("create schema if not exists quarantine")
    for name, source in SOURCES.items():
        if name in staged:
            con.execute(f"create or replace table raw.{name} as select * from _good_{name}")
            con.execute(
                f"create table if not exists quarantine.{name} (run_id varchar, reason varchar, "
                f"source_row bigint, source_values varchar)"
            )
            con.execute(f"delete from quarantine.{name} where run_id = ?", [run_id])
            con.execute(f"insert into quarantine.{name} select * from _bad_{name}")
        else:
            con.execute(f"create or replace table raw.{name} {_empty_table_sql(source)}")
    con.execute(
        "create table if not exists raw._ingest_log (run_id varchar, as_of_date date, source varchar, "
        "present boolean, rows_read bigint, rows_staged bigint, rows_quarantined bigint, "
        "rows_after_as_of bigint, extra_columns varchar, loaded_at timestamp)"
    )
    con.execute("delete from raw._ingest_log where run_id = ?", [run_id])
    for r in reports.values():
        con.execute(
            "insert into raw._ingest_log values (?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
            [run_id, as_of, r.source, r.present, r.rows_read, r.rows_staged, r.rows_quarantined,
             r.rows_after_as_of, ",".join(r.extra_columns)],
        )
    con.execute("commit")
