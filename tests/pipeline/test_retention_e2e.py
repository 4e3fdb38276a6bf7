"""The retention layer through the real DAG: the session's `churnwatch run` on the tier-S shop
publishes the audience, campaign results, risk alerts and segments, and writes the CRM file."""
from __future__ import annotations

import json

import pytest

from helpers.run import END_DATE, HORIZON


AUDIENCE_CONTRACT = ["campaign_id", "customer_id", "action", "offer_code", "channel", "recommended_products",
                     "is_control", "priority_rank", "expected_net_value", "reason_summary"]
RESULTS_CONTRACT = ["campaign_id", "group", "customers", "retained", "retention_rate", "lift", "ci_low", "ci_high"]


def test_the_pipeline_publishes_the_retention_contract(pipeline_s):
    from ml.core.catalog import connect_catalog  # views name files relative to the catalog

    con = connect_catalog(pipeline_s / "analytics.duckdb")
    views = {r[0] for r in con.execute(
        "select table_name from information_schema.tables where table_schema = 'marts'").fetchall()}
    assert {"retention_audience", "campaign_results", "risk_alerts", "customer_segments", "offer_catalog"} <= views
    audience_cols = [r[0] for r in con.execute("describe marts.retention_audience").fetchall()]
    results_cols = [r[0] for r in con.execute("describe marts.campaign_results").fetchall()]
    assert audience_cols[: len(AUDIENCE_CONTRACT)] == AUDIENCE_CONTRACT
    assert results_cols[: len(RESULTS_CONTRACT)] == RESULTS_CONTRACT
    campaign, audience, spend = con.execute(
        "select any_value(campaign_id), count(*), sum(unit_cost) filter (not is_control) "
        "from marts.retention_audience").fetchone()
    assert audience > 0 and spend <= 10_000.0  # the DAG's default budget
    assert campaign == f"CW-{END_DATE:%Y%m%d}-H{HORIZON}"
    assert con.execute("select count(*) from marts.campaign_results where \"group\" = 'treated'").fetchone()[0] > 0
    manifest = json.loads((pipeline_s / "exports" / "crm" / f"{campaign}.manifest.json").read_text())
    assert manifest["rows"] == audience
