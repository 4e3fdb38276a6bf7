"""dbt owns every published table: each is a mart whose YAML describes and tests every contract
column, the pipeline's own Python outputs reach the marts only through staging, and the Python
writers of those outputs write exactly the columns dbt declares.

Read from the manifest of a `dbt parse` (no warehouse needed, ~10 s).
"""
from __future__ import annotations

import datetime as dt
import json
import re
from types import SimpleNamespace

import numpy as np
import pytest

from ml.core.dbt import run_dbt
from ml.core.settings import Settings
from ml.stages.publish.snapshot import PUBLISHED

# The published analyst contract (the architecture brief): columns no release may rename or drop.
CONTRACT = {
    "churn_scores": ["customer_id", "as_of_date", "horizon_days", "churn_probability", "risk_tier",
                     "predicted_value", "value_at_risk", "reason_1", "reason_2", "reason_3", "model_name",
                     "model_version", "run_id", "scored_at"],
    "retention_audience": ["campaign_id", "customer_id", "action", "offer_code", "channel", "recommended_products",
                           "is_control", "priority_rank", "expected_net_value", "reason_summary"],
    "campaign_results": ["campaign_id", "group", "customers", "retained", "retention_rate", "lift", "ci_low",
                         "ci_high"],
    "model_performance": ["model_version", "as_of_date", "auc", "pr_auc", "brier", "lift_at_10pct"],
}
# tables whose every published column is declared in YAML (not only the contract's)
FULLY_DECLARED = ("churn_scores", "model_performance", "campaign_results", "risk_alerts")
# marts that still read a source directly: the audience decisions' staging model is the uplift
# work's (stg_churnwatch__audience_decisions, shaped as campaign contacts); see /work/coord/NOTES-dbt.md
SOURCE_READERS_PENDING = {"retention_audience", "customer_product_recommendations"}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> dict:
    settings = Settings.load(warehouse=tmp_path_factory.mktemp("contract"), as_of=dt.date(2025, 12, 31))
    run_dbt(settings, ["parse"])
    return json.loads((settings.warehouse / "dbt" / "target" / "manifest.json").read_text())


def _mart(manifest: dict, name: str) -> dict:
    found = [n for n in (*manifest["nodes"].values(),) if n["resource_type"] in ("model", "seed") and n["name"] == name]
    assert len(found) == 1, f"no dbt model or seed named {name}"
    return found[0]


def _tested_columns(manifest: dict, node: dict) -> dict[str, int]:
    """Column → number of data tests on it: column tests, and model tests that list it."""
    counts: dict[str, int] = {}
    for test in manifest["nodes"].values():
        if test["resource_type"] != "test" or test.get("attached_node") != node["unique_id"]:
            continue
        kwargs = (test.get("test_metadata") or {}).get("kwargs", {})
        columns = [test.get("column_name")] + list(kwargs.get("columns") or []) \
            + list(kwargs.get("combination_of_columns") or [])
        for column in {c.strip('"') for c in columns if c}:
            counts[column] = counts.get(column, 0) + 1
    return counts


def _staged_columns(node: dict) -> list[str]:
    """The columns a staging model's `renamed` CTE selects, in order (one bare name per line)."""
    body = node["raw_code"].split("renamed as (", 1)[1].split("from source", 1)[0]
    return [c for c in re.findall(r"^\s*([a-z_0-9]+),?\s*$", body, re.M) if c != "select"]


def test_every_published_table_is_a_dbt_mart(manifest):
    for table in PUBLISHED:
        node = _mart(manifest, table.name)
        assert table.source == f"{node['schema']}.{node['alias'] or node['name']}" == f"marts.{table.name}", table
        assert node["description"].strip(), f"{table.name} has no description"


@pytest.mark.parametrize("table", sorted({*CONTRACT, *FULLY_DECLARED}))
def test_every_contract_column_is_described_and_tested(manifest, table):
    node = _mart(manifest, table)
    declared = node["columns"]
    columns = list(declared) if table in FULLY_DECLARED else CONTRACT[table]
    assert set(CONTRACT.get(table, [])) <= set(declared), f"{table}: contract columns missing from its YAML"
    undescribed = [c for c in columns if not declared.get(c, {}).get("description", "").strip()]
    assert not undescribed, f"{table}: no description for {undescribed}"
    tested = _tested_columns(manifest, node)
    contract_untested = [c for c in CONTRACT.get(table, []) if not tested.get(c)]
    assert not contract_untested, f"{table}: no data test on {contract_untested}"


def test_only_staging_reads_sources(manifest):
    readers = {n["name"] for n in manifest["nodes"].values()
               if n["resource_type"] == "model" and any(d.startswith("source.") for d in n["depends_on"]["nodes"])
               and not n["original_file_path"].startswith("models/staging/")}
    assert readers == SOURCE_READERS_PENDING, "models outside staging reading source(): " + str(sorted(readers))


def test_the_score_writer_writes_the_columns_dbt_declares(manifest):
    """scoring.churn_scores as ml/stages/score.py builds it == the staging model's and the mart's columns, in order."""
    import pyarrow as pa

    from ml.stages.score import scores_table

    settings = Settings.load(as_of=dt.date(2025, 12, 31))
    population = pa.table({"customer_id": ["007"], "as_of_date": [dt.date(2025, 12, 31)]})
    reasons = [np.array(["r"], dtype=object)] * 3
    written = scores_table(settings, population, np.array([0.3]), np.array([10.0]), reasons,
                           SimpleNamespace(version="1", run_id="run"), dt.datetime(2026, 1, 1)).column_names
    assert _staged_columns(_mart(manifest, "stg_churnwatch__churn_scores")) == written
    assert list(_mart(manifest, "churn_scores")["columns"]) == written


def test_the_performance_writer_declares_the_columns_dbt_reads(manifest):
    from ml.stages.train.performance import COLUMNS

    written = [name for name, _ in COLUMNS]
    assert _staged_columns(_mart(manifest, "stg_churnwatch__model_performance")) == written
    assert list(_mart(manifest, "model_performance")["columns"]) == written
