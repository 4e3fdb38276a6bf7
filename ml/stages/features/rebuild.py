"""What the built feature layer was computed from, and what to rebuild when that changed.

The feature layer keeps what it built: cutoffs already in ``marts.customer_features`` and
labels in ``int_customer_cutoffs_labelled`` are never recomputed, the daily intermediate
tables re-read only their newest days. That is right while the past stays as it was; a full
re-export that corrects, adds late, deletes or quarantines rows dated in the past would leave
cutoffs built from the old rows. So after every successful build the inputs it was computed
from are recorded in ``intermediate._feature_inputs``: the raw layer's fingerprints per source
and day (``ml.core.fingerprints``) up to the build's as-of date, the hash of every feature-layer
SQL file, and the as-of date. Before the next build they are compared with what is there now:

- the feature SQL changed (or no record is kept beside built tables): a full refresh;
- days on or before the recorded as-of changed: exactly what depends on them is deleted, and
  the ordinary incremental build recomputes it — the features at cutoffs on or after the
  earliest changed day of any source, the labels of cutoffs whose window reaches a changed
  order day, and the rows of the daily tables (orders and order lines, or events) from the
  earliest changed day on, plus the per-customer lifetime tables folded over them (a table
  all of whose rows depend on changed days is dropped instead: built from scratch, faster);
- nothing changed (a daily run: only days after the recorded as-of are new): nothing extra.

Deleting and rebuilding through the same incremental models keeps the result equal to a
fresh build on the last export (tests/dbt/test_reexport.py). A build that fails half way leaves
the days it may have half-built marked ``dirty``, so the next build redoes them whatever the
next export holds.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from ml.core import fingerprints
from ml.core.settings import Settings
from ml.core.warehouse import connect, table_exists

log = logging.getLogger(__name__)

STATE = "intermediate._feature_inputs"
_STATE_COLUMNS = "input varchar, day date, fingerprint varchar, dirty boolean"
# the project files the feature layer is compiled from (relative to the dbt project)
FEATURE_SQL = ("dbt_project.yml", "macros", "models/staging", "models/intermediate", "models/marts/features")
# the incremental daily tables by the source chain they are built from: (table, date column)
_ORDER_CHAIN = (("int_orders_joined_to_items", "order_date"),
                ("int_orders_aggregated_to_customer_days", "order_date"),
                ("int_order_items_aggregated_to_customer_products", "first_purchased_date"))
_EVENT_CHAIN = (("int_events_aggregated_to_sessions", "session_date"),)
# per-customer tables folded over every stored day: emptied (and refilled) when a chain is rebuilt
_LIFETIME = {"orders": "int_orders_aggregated_to_customers", "events": "int_sessions_aggregated_to_customers"}
_BUILT = ("marts.customer_features", "intermediate.int_customer_cutoffs_labelled",
          *(f"intermediate.{t}" for t, _ in _ORDER_CHAIN + _EVENT_CHAIN),
          *(f"intermediate.{t}" for t in _LIFETIME.values()))


@dataclass
class Plan:
    """What this build rebuilds beyond the ordinary incremental step, and the line saying why."""
    full_refresh: bool = False
    rebuilt_from: dt.date | None = None  # earliest day whose daily rows are rebuilt
    line: str | None = None


def project_hashes(project_dir: Path) -> dict[str, str]:
    """sha256 of every file the feature layer is compiled from, by path in the project."""
    out = {}
    for entry in FEATURE_SQL:
        path = project_dir / entry
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if file.is_file() and file.suffix in (".sql", ".yml", ".yaml"):
                out[file.relative_to(project_dir).as_posix()] = hashlib.sha256(file.read_bytes()).hexdigest()
    return out


def _exists(con, qualified: str) -> bool:
    return table_exists(con, *qualified.split("."))


def _build_as_of(con, settings: Settings) -> dt.date | None:
    """The as-of date this build will use (as the dbt macro as_of_date() resolves it)."""
    if settings.as_of is not None:
        return settings.as_of
    return con.execute("select max(cast(order_ts as date)) from raw.orders").fetchone()[0]


def _changed_days(con, current: str, recorded_as_of: dt.date, as_of: dt.date) -> list[tuple]:
    """(source, changed days, earliest changed day or None when undated, dirty days) per source."""
    return con.execute(f"""
        with now as (select source, day, rows || ':' || fingerprint as fingerprint
                     from {current} where day is null or day <= ?),
        recorded as (select input as source, day, fingerprint, dirty from {STATE}
                     where input not like 'sql:%' and input <> 'as_of'),
        changed as (
            select coalesce(now.source, recorded.source) as source,
                   coalesce(now.day, recorded.day) as day,
                   coalesce(recorded.dirty, false) as dirty
            from now full join recorded
              on now.source = recorded.source and now.day is not distinct from recorded.day
            where (coalesce(recorded.dirty, false) or now.fingerprint is distinct from recorded.fingerprint)
              and (coalesce(now.day, recorded.day) is null or coalesce(now.day, recorded.day) <= ?
                   or coalesce(recorded.dirty, false))
        )
        select source, count(*), case when bool_or(day is null) then null else min(day) end,
               count(*) filter (where dirty)
        from changed group by 1 order by 1
    """, [as_of, recorded_as_of]).fetchall()


def _delete(con, table: str, where: str) -> int:
    if not _exists(con, table):
        return 0
    return con.execute(f"delete from {table} where {where}").fetchone()[0]


def _clear(con, table: str, column: str, since: dt.date) -> int:
    """Delete the rows with ``column`` on or after ``since``: when that is all of them, drop the
    table instead, so its model builds from scratch (a full refresh of it: faster than an
    incremental merge of every row, and the same rows)."""
    if not _exists(con, table):
        return 0
    rows, earliest = con.execute(f"select count(*), min({column}) from {table}").fetchone()
    if earliest is not None and earliest >= since:
        con.execute(f"drop table {table}")
        return rows
    return _delete(con, table, f"{column} >= date '{since}'")


def _rebuild_days(con, changed: list[tuple]) -> Plan:
    """Delete what depends on the changed days; the incremental build recomputes it."""
    earliest = {source: (first if first is not None else dt.date.min) for source, _, first, _ in changed}
    since = min(earliest.values())
    cutoffs = con.execute("select count(distinct as_of_date) from marts.customer_features "
                          "where as_of_date >= ?", [since]).fetchone()[0] \
        if _exists(con, "marts.customer_features") else 0
    _clear(con, "marts.customer_features", "as_of_date", since)
    labels = 0
    if "orders" in earliest and _exists(con, "intermediate.int_customer_cutoffs_labelled"):
        window_end = "as_of_date + horizon_days"  # a label reads order days up to its window's end
        labels = con.execute("select count(distinct (as_of_date, horizon_days)) from "
                             f"intermediate.int_customer_cutoffs_labelled where {window_end} >= ?",
                             [earliest["orders"]]).fetchone()[0]
        _clear(con, "intermediate.int_customer_cutoffs_labelled", window_end, earliest["orders"])
    chains = {"orders": ([earliest[s] for s in ("orders", "order_items") if s in earliest], _ORDER_CHAIN),
              "events": ([earliest[s] for s in ("events",) if s in earliest], _EVENT_CHAIN)}
    daily_from = []
    for chain, (days, tables) in chains.items():
        if not days:
            continue
        first = min(days)
        deleted = sum(_clear(con, f"intermediate.{t}", c, first) for t, c in tables)
        if deleted and _exists(con, f"intermediate.{_LIFETIME[chain]}"):
            con.execute(f"drop table intermediate.{_LIFETIME[chain]}")
            daily_from.append(first)
    if not (cutoffs or labels or daily_from):
        return Plan()  # nothing built depends on the changed days
    what = [f"{source} changed on {n} day{'s' if n != 1 else ''}" + (" (undated rows)" if first is None else "")
            for source, n, first, _ in changed]
    if any(dirty for *_, dirty in changed):
        what.append("an earlier build did not finish")

    def day(d: dt.date) -> str:
        return "the first day" if d == dt.date.min else str(d)

    extra = [f"labels of {labels} cutoff{'s' if labels != 1 else ''}"] if labels else []
    if daily_from:
        extra.append(f"daily tables from {day(min(daily_from))} on")
    line = (f"features: rebuilding {cutoffs} cutoff{'s' if cutoffs != 1 else ''} from {day(since)} on"
            + (f" ({', '.join(extra)})" if extra else "") + ": " + ", ".join(what))
    return Plan(rebuilt_from=min(daily_from) if daily_from else None, line=line)


def _mark_pending(con, current: str, as_of: dt.date) -> None:
    """Before dbt runs: every day this build may rewrite and the record does not match is dirty."""
    con.execute(f"""
        create or replace temp table _pending as
        select coalesce(now.source, recorded.input) as input, coalesce(now.day, recorded.day) as day,
               recorded.fingerprint, true as dirty
        from (select source, day, rows || ':' || fingerprint as fingerprint from {current}
              where day is null or day <= ?) as now
        full join (select * from {STATE} where input not like 'sql:%' and input <> 'as_of') as recorded
          on now.source = recorded.input and now.day is not distinct from recorded.day
        where now.fingerprint is distinct from recorded.fingerprint
    """, [as_of])
    con.execute(f"delete from {STATE} as s using _pending as p "
                f"where s.input = p.input and s.day is not distinct from p.day")
    con.execute(f"insert into {STATE} select * from _pending")
    con.execute("drop table _pending")


def prepare(settings: Settings, full_refresh: bool = False, drop_for_full_refresh: bool = False) -> Plan:
    """Before a feature build: decide and apply what must be rebuilt; log one line when anything is.

    ``drop_for_full_refresh``: for builds that cannot pass ``--full-refresh`` (the per-model
    Airflow tasks render their dbt flags once), a full refresh drops the incremental tables
    instead, so every model builds from scratch just the same.
    """
    if not settings.db_path.exists():
        return Plan()
    with connect(settings) as con:
        if not _exists(con, "raw.orders"):
            return Plan()
        built = [t for t in _BUILT if _exists(con, t)]
        has_record = _exists(con, STATE) and con.execute(
            f"select count(*) from {STATE} where input = 'as_of'").fetchone()[0] > 0
        if not built:
            return Plan(full_refresh=full_refresh)
        line = None
        if not has_record:
            line = "features: full refresh: no record of the inputs the built cutoffs were computed from"
        recorded_sql = dict(con.execute(f"select substr(input, 5), fingerprint from {STATE} "
                                        "where input like 'sql:%'").fetchall()) if has_record else {}
        sql = project_hashes(settings.dbt_project_dir)
        if has_record and recorded_sql != sql:
            edited = sorted(p for p in set(sql) | set(recorded_sql) if sql.get(p) != recorded_sql.get(p))
            names = ", ".join(edited[:3]) + (f" and {len(edited) - 3} more" if len(edited) > 3 else "")
            line = f"features: full refresh: the feature SQL changed since the cutoffs were built ({names})"
        if full_refresh or line:
            # until it succeeds, the record no longer describes the tables: a failed refresh is redone
            if has_record:
                con.execute(f"delete from {STATE} where input = 'as_of'")
            if drop_for_full_refresh:
                for table in built:
                    con.execute(f"drop table {table}")
            if line:
                log.warning(line)
            return Plan(full_refresh=True, line=line)
        current = fingerprints.current(con)
        as_of = _build_as_of(con, settings)
        recorded_as_of = con.execute(f"select day from {STATE} where input = 'as_of'").fetchone()[0]
        changed = _changed_days(con, current, recorded_as_of, as_of)
        con.execute("begin")
        plan = _rebuild_days(con, changed) if changed else Plan()
        _mark_pending(con, current, as_of)
        con.execute("commit")
    if plan.line:
        log.warning(plan.line)
    return plan


def record(settings: Settings) -> None:
    """After a successful build: the inputs it was computed from replace the record."""
    with connect(settings) as con:
        current = fingerprints.current(con)
        as_of = con.execute("select max(cutoff_date) from intermediate.int_cutoffs_enumerated").fetchone()[0]
        con.execute("create schema if not exists intermediate")
        con.execute("begin")
        con.execute(f"create or replace table {STATE} ({_STATE_COLUMNS})")
        con.execute(f"insert into {STATE} select source, day, rows || ':' || fingerprint, false "
                    f"from {current} where day is null or day <= ?", [as_of])
        con.executemany(f"insert into {STATE} values (?, null, ?, false)",
                        [[f"sql:{p}", h] for p, h in project_hashes(settings.dbt_project_dir).items()])
        con.execute(f"insert into {STATE} values ('as_of', ?, null, false)", [as_of])
        con.execute("commit")
