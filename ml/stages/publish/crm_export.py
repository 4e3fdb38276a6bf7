"""CRM export: one campaign file per scoring run, as CSV and Parquet, plus a manifest.

``W/exports/crm/<campaign_id>.csv`` and ``.parquet`` hold the campaign's audience from
``marts.retention_audience`` — only what a CRM tool needs to act: the opaque customer id, the
action, offer and channel, the products to show, the priority, a short reason,
``is_control`` (held-out customers are listed so the CRM logs them as such, and must not be
contacted), and how each row was assigned (``assignment``: targeted / exploration / control) with
its ``propensity``, so whoever measures the campaign later (a simulator in tests and benchmarks,
the uplift model's training data) knows the design without reading the warehouse. No PII: no
names, e-mails or phones ever reach this layer. The manifest ``<campaign_id>.manifest.json``
records rows, SHA-256 checksums, the schema version, the model version and the as-of date; the
CRM should read the data files only once the manifest names them.

Every file is written to a temporary name and moved into place with ``os.replace``, the manifest
last, so a reader never sees a half-written file and a rerun replaces the campaign in place.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ml.core.settings import Settings

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1.1"  # 1.1: + assignment, propensity (issue 19)
EXPORT_COLUMNS = ("campaign_id", "customer_id", "as_of_date", "action", "offer_code", "channel",
                  "recommended_products", "is_control", "priority_rank", "reason_summary",
                  "assignment", "propensity")
PRODUCT_SEPARATOR = "|"  # recommended_products in the CSV: "p1|p2|p3"; a list in Parquet


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _replace_into(target: Path, write) -> None:
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def export_crm(settings: Settings, con: duckdb.DuckDBPyConnection | None = None) -> dict:
    """Write the campaign of ``settings.as_of`` for the CRM; returns the manifest."""

    campaign_id = settings.campaign_id
    columns = ", ".join(EXPORT_COLUMNS)
    sql = (f"select {columns}, model_version from marts.retention_audience "
           "where campaign_id = ? order by priority_rank")
    if con is None:
        from ml.core.warehouse import connect

        with connect(settings, read_only=True) as own:
            table = own.sql(sql, params=[campaign_id]).to_arrow_table()
    else:
        table = con.sql(sql, params=[campaign_id]).to_arrow_table()
    model_versions = sorted({str(v) for v in table.column("model_version").to_pylist()})
    table = table.select(list(EXPORT_COLUMNS))

    out = settings.crm_export_dir
    out.mkdir(parents=True, exist_ok=True)
    parquet_path, csv_path = out / f"{campaign_id}.parquet", out / f"{campaign_id}.csv"
    _replace_into(parquet_path, lambda p: pq.write_table(table, p, compression="zstd"))
    flat = table.set_column(
        EXPORT_COLUMNS.index("recommended_products"), "recommended_products",
        pc.binary_join(table.column("recommended_products"), PRODUCT_SEPARATOR))
    _replace_into(csv_path, lambda p: pacsv.write_csv(flat, p))

    is_control = table.column("is_control").to_pylist()
    manifest = {
        "campaign_id": campaign_id,
        "schema_version": SCHEMA_VERSION,
        "as_of_date": settings.as_of.isoformat(),
        "horizon_days": settings.horizon_days,
        "model_version": model_versions[0] if len(model_versions) == 1 else model_versions,
        "rows": table.num_rows,
        "rows_to_contact": sum(1 for c in is_control if not c),
        "rows_control": sum(1 for c in is_control if c),
        "rows_exploration": sum(1 for a in table.column("assignment").to_pylist() if a == "exploration"),
        "columns": [{"name": f.name, "type": str(f.type)} for f in table.schema],
        "files": {
            kind: {"name": path.name, "sha256": _sha256(path), "bytes": path.stat().st_size}
            for kind, path in (("csv", csv_path), ("parquet", parquet_path))
        },
        "notes": "is_control rows are held out: log them, never contact them. Exploration rows carry "
                 "randomly drawn offers: send them like the others (dropping them biases what is learnt). "
                 f"CSV recommended_products are joined with '{PRODUCT_SEPARATOR}'.",
    }
    manifest_path = out / f"{campaign_id}.manifest.json"
    _replace_into(manifest_path, lambda p: p.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n"))
    log.info("export_crm %s rows=%s", campaign_id, table.num_rows)
    return manifest
