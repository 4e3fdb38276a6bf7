"""Publish: Parquet snapshots + the analyst catalog ``analytics.duckdb``, replaced atomically.

Analysts open ``analytics.duckdb`` read-only at any time, while the pipeline holds its own
database for writing. So the catalog holds no data, only views over immutable Parquet files:
each publish writes new files, records them in a manifest, builds a fresh catalog beside the old
one and swaps it in with one ``os.replace``. A reader sees the old catalog or the new one, never
a half-written table, and never a lock. Files of the last few publishes are kept so a reader
still holding an old catalog can finish its queries.

What is published (``PUBLISHED``): the scores, the customers' segments, the campaign audience,
the measured campaign results and the risk alerts, each partitioned by (as_of_date, horizon_days)
so every run adds a partition and history stays queryable for trends; the model performance, the
realized model monitoring (and its reliability table) and the offer catalog as one current
snapshot each. Every one is a dbt model in ``marts`` (the seed
for the offer catalog), whose YAML describes and tests each column: the Python stages' own
tables (``scoring.churn_scores``, ``ml.model_performance``, ``retention.*``) reach the analysts
only through them. The catalog's ``marts._tables`` lists the rows
every view must show. The same publish writes the run's CRM export (``ml/stages/publish/crm_export.py``).
The views name their files relative to the catalog's folder, so the warehouse can be copied or
moved whole; ``ml/core/catalog.py`` opens it from any working directory.

A failed or killed publish changes nothing visible: new files are unreferenced until the swap.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ml.stages.publish.crm_export import export_crm
from ml.core.settings import Settings
from ml.core.warehouse import connect, table_exists

log = logging.getLogger(__name__)

KEEP_MANIFESTS = 3


@dataclass(frozen=True)
class PublishedTable:
    """A table of the analyst contract and where its rows come from in the pipeline database."""

    name: str
    source: str  # the dbt mart (schema.table in churnwatch.duckdb) that declares its columns, docs and tests
    partitioned: bool  # snapshot per (as_of_date, horizon_days), history kept
    order_by: str


PUBLISHED = (
    PublishedTable("churn_scores", "marts.churn_scores", True, "customer_id"),
    PublishedTable("model_performance", "marts.model_performance", False, "model_version, as_of_date"),
    PublishedTable("customer_segments", "marts.customer_segments", True, "customer_id"),
    PublishedTable("retention_audience", "marts.retention_audience", True, "campaign_id, priority_rank"),
    PublishedTable("campaign_results", "marts.campaign_results", True, 'campaign_id, offer_code, "group"'),
    PublishedTable("risk_alerts", "marts.risk_alerts", True, "probability_increase desc, customer_id"),
    PublishedTable("offer_catalog", "marts.offer_catalog", False, "offer_code"),
    # realized performance of every scoring run whose horizon has closed: one current snapshot
    PublishedTable("model_monitoring", "marts.model_monitoring", False,
                   "as_of_date, horizon_days, model_name, model_version, segment_type, segment"),
    PublishedTable("model_monitoring_reliability", "marts.model_monitoring_reliability", False,
                   "as_of_date, horizon_days, model_name, model_version, segment_type, segment, bin_number"),
)


def _manifest_path(settings: Settings) -> Path:
    return settings.published_dir / "_manifest.json"


def read_manifest(settings: Settings) -> dict:
    path = _manifest_path(settings)
    if not path.exists():
        return {"tables": {}, "history": []}
    return json.loads(path.read_text())


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _partition_key(settings: Settings) -> str:
    return f"as_of_date={settings.as_of}/horizon_days={settings.horizon_days}"


def _write_snapshots(con: duckdb.DuckDBPyConnection, settings: Settings, publish_id: str,
                     manifest: dict) -> tuple[dict, dict]:
    """Write this run's Parquet files; return the table → {partition: file} and → {partition: rows} maps."""
    tables = {name: dict(parts) for name, parts in manifest["tables"].items()}
    rows = {name: dict(parts) for name, parts in manifest.get("rows", {}).items()}
    for table in PUBLISHED:
        schema, name = table.source.split(".")
        if not table_exists(con, schema, name):
            continue
        where = "where as_of_date = ? and horizon_days = ?" if table.partitioned else ""
        params = [settings.as_of, settings.horizon_days] if table.partitioned else []
        partition = _partition_key(settings) if table.partitioned else "all"
        rel = Path(table.name) / partition / f"part-{publish_id}.parquet"
        target = settings.published_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        con.execute(
            f"copy (select * from {table.source} {where} order by {table.order_by}) "
            f"to '{tmp}' (format parquet, compression zstd)",
            params,
        )
        os.replace(tmp, target)
        tables.setdefault(table.name, {})[partition] = str(rel)
        rows.setdefault(table.name, {})[partition] = con.execute(
            "select count(*) from read_parquet(?)", [str(target)]).fetchall()[0][0]
    # rows of partitions published before row counts were recorded are unknown: None
    rows = {name: {p: rows.get(name, {}).get(p) for p in parts} for name, parts in tables.items()}
    return tables, rows


def build_catalog(settings: Settings, tables: dict[str, dict[str, str]],
                  rows: dict[str, dict[str, int | None]] | None = None) -> Path:
    """A fresh analytics.duckdb (views over the listed files) beside the live one.

    The views name their files relative to the catalog's folder (``published/…``), never by an
    absolute path, so a copied or moved warehouse keeps working: readers resolve them with
    ``file_search_path`` set to that folder (``ml/core/catalog.py``), or from inside it.
    ``marts._catalog`` records the run that published this catalog (its as-of date and horizon:
    "the latest run" for the summary and the README's queries); ``marts._tables`` lists each view
    with the rows it must show, so a reader can check that what it sees is one complete snapshot.
    """
    tmp = settings.analytics_path.with_name(f".analytics.{uuid.uuid4().hex}.duckdb")
    base = settings.published_dir.relative_to(settings.analytics_path.parent)
    # views are bound when created: the files must resolve from the catalog's folder here too
    con = duckdb.connect(str(tmp), config={"file_search_path": str(settings.analytics_path.parent)})
    try:
        con.execute("create schema marts")
        for name, parts in sorted(tables.items()):
            files = [(base / rel).as_posix() for _, rel in sorted(parts.items())]
            listing = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
            con.execute(f"create view marts.{name} as select * from read_parquet({listing}, union_by_name = true)")
        con.execute(
            "create table marts._catalog as select ?::timestamp as published_at, ?::varchar as manifest, "
            "?::date as as_of_date, ?::integer as horizon_days, ?::varchar as files_relative_to",
            [dt.datetime.now(dt.timezone.utc).replace(tzinfo=None), json.dumps(tables, sort_keys=True),
             settings.as_of, settings.horizon_days, "the folder holding analytics.duckdb"],
        )
        rows = rows or {}
        con.execute("create table marts._tables (table_name varchar, partitions integer, expected_rows bigint)")
        for name, parts in sorted(tables.items()):
            counts = [rows.get(name, {}).get(p) for p in parts]
            total = None if any(c is None for c in counts) else sum(counts)
            con.execute("insert into marts._tables values (?, ?, ?)", [name, len(parts), total])
        con.execute("checkpoint")
    finally:
        con.close()
    return tmp


def _collect_garbage(settings: Settings, manifest: dict) -> None:
    """Delete snapshot files no longer referenced by the last few manifests."""
    keep = {str(settings.published_dir / rel) for tables in manifest["history"] for parts in tables.values() for rel in parts.values()}
    for path in settings.published_dir.rglob("part-*.parquet"):
        if str(path) not in keep:
            path.unlink(missing_ok=True)


def _has_campaign(con: duckdb.DuckDBPyConnection, settings: Settings) -> bool:

    return table_exists(con, "marts", "retention_audience") and con.execute(
        "select count(*) > 0 from marts.retention_audience where campaign_id = ?", [settings.campaign_id]
    ).fetchall()[0][0]


def _export_campaign(settings: Settings, cursor: duckdb.DuckDBPyConnection) -> dict:
    """The CRM export on a cursor of its own (a DuckDB connection serves one thread at a time;
    the cursor is opened by the connection's thread and closed here)."""
    try:
        return export_crm(settings, cursor)
    finally:
        cursor.close()


def publish(settings: Settings) -> dict:
    """Snapshot the pipeline's published tables and swap in a new analyst catalog."""
    started = time.perf_counter()
    publish_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    settings.published_dir.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(settings)
    with connect(settings, read_only=True) as con:
        # the CRM file of this run's campaign, when the policy made one, is written beside the
        # snapshots: DuckDB's Parquet writes and the export's Arrow writes and checksums each
        # leave a core idle much of the time. Both finish before the swap, so a failed export
        # leaves the published catalog untouched.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(_export_campaign, settings, con.cursor()) if _has_campaign(con, settings) else None
            tables, rows = _write_snapshots(con, settings, publish_id, manifest)
            export = pending.result() if pending is not None else None
    # the manifest first: if the run dies before the swap, the next publish still knows these files
    manifest = {"tables": tables, "rows": rows,
                "history": ([tables] + manifest.get("history", []))[:KEEP_MANIFESTS]}
    _write_atomically(_manifest_path(settings), json.dumps(manifest, indent=2, sort_keys=True).encode())
    catalog = build_catalog(settings, tables, rows)
    os.replace(catalog, settings.analytics_path)  # the one atomic step readers can observe
    _collect_garbage(settings, manifest)
    summary = {"publish_id": publish_id, "tables": sorted(tables), "catalog": str(settings.analytics_path),
               "crm_export": ({"campaign_id": export["campaign_id"], "rows": export["rows"]} if export else None),
               "seconds": round(time.perf_counter() - started, 2)}
    log.info("publish %s", summary)
    return summary
