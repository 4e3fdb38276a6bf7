"""Helpers for the data-quality tests: derive broken inputs from a valid shop, copy a published
warehouse, and prove that a publication did not change (``fingerprint``).

The fixtures that make the shop and the good run live in ``tests/quality/conftest.py`` (session
fixtures, made once for every module of the folder).
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from helpers.run import QUICK_TRAINING

END_DATE = dt.date(2025, 12, 31)
HORIZON = 90
CUSTOMERS = 2_500
SEED = 23
PUBLISHED = ("analytics.duckdb", "published", "exports")  # what analysts and the CRM see
PIPELINE_DB = "churnwatch.duckdb"


def fingerprint(warehouse: Path) -> dict[str, str]:
    """sha256 of every published byte: the analyst catalog, its Parquet files, the CRM exports."""
    out = {}
    for name in PUBLISHED:
        root = warehouse / name
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
        for path in paths:
            out[str(path.relative_to(warehouse))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@dataclass(frozen=True)
class Baseline:
    shop: Path  # the valid raw exports (CSV)
    warehouse: Path  # after one good run: published, champion set, feature bounds learnt
    published: dict[str, str]  # fingerprint() of it
    airflow_home: Path  # shared by every run of the session: the metadata DB is migrated once


def copy_warehouse(baseline: Baseline, dest: Path, full: bool = False) -> Path:
    """The pipeline DB and the publication (``full``: also MLflow and dbt state, for a whole run)."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in sorted(baseline.warehouse.iterdir()):
        if item.name in ("airflow", "data_docs", "alerts"):
            continue
        if not full and item.name not in (PIPELINE_DB, *PUBLISHED):
            continue
        (shutil.copytree if item.is_dir() else shutil.copy2)(item, dest / item.name)
    return dest


# ---- deriving broken inputs ----------------------------------------------------------------------


def derive_shop(shop: Path, dest: Path) -> Path:
    """A raw folder that links every file of ``shop``; a case replaces the ones it breaks."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in shop.iterdir():
        if f.is_file():
            (dest / f.name).symlink_to(f)
    return dest


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return header, list(reader)


def write_rows(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",", encoding: str = "utf-8") -> None:
    if path.is_symlink():
        path.unlink()
    with open(path, "w", newline="", encoding=encoding) as fh:
        writer = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def every(rows: list, n: int, start: int = 7, step: int = 97) -> list[int]:
    """``n`` spread-out row indexes (deterministic), so faults are not all in one corner."""
    return [(start + i * step) % len(rows) for i in range(n)]


def pipeline_query(warehouse: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(warehouse / PIPELINE_DB), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def run_env(baseline: Baseline) -> dict[str, str]:
    """The environment of every run of the folder, the good one included (the same settings, so the
    same published bytes when nothing is wrong)."""
    return {"AIRFLOW_HOME": str(baseline.airflow_home), "CHURNWATCH_PII_SALT": os.environ["CHURNWATCH_PII_SALT"],
            **QUICK_TRAINING}
