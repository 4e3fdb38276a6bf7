"""Retention on a real warehouse: recommendations, risk alerts, the CRM export, the budget, and
idempotent reruns of decide → marts → publish (the pure pieces: tests/unit/test_retention.py).

One small generated shop per module (ingest + dbt features for real) is fed with a scores table of
the published contract's shape; the model itself is tested elsewhere, here the layers after scoring
are under test.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json

import duckdb
import pytest

from ml.stages import decide

AS_OF = dt.date(2025, 12, 31)
PREVIOUS_AS_OF = dt.date(2025, 12, 1)
HORIZON = 90



def _fake_scores(con, as_of: dt.date, shift: float) -> None:
    """Scores of the published contract's shape, deterministic in (customer, as_of)."""
    con.execute("create schema if not exists scoring")
    con.execute(f"""
        create or replace table scoring._fake as
        select
            customer_id,
            date '{as_of}' as as_of_date,
            {HORIZON} as horizon_days,
            least(0.99, greatest(0.01,
                (hash(customer_id) % 1000) / 1000.0 * 0.6 + least(days_since_last_order, 365) / 365.0 * 0.4
                - {shift})) as churn_probability,
            coalesce(amount_365d, 0) + 20 as predicted_value,
            case when coalesce(count_tickets, 0) > 0 then 'count_tickets_unresolved'
                 else 'days_since_last_order' end as reason_1,
            case when hash(customer_id) % 3 = 0 then 'overdue_ratio' end as reason_2,
            null::varchar as reason_3,
            'churnwatch_churn_90d' as model_name,
            '1' as model_version,
            'fake-run' as run_id,
            timestamp '{as_of + dt.timedelta(days=1)}' as scored_at
        from marts.customer_features
        where as_of_date = date '{AS_OF}'
    """)
    con.execute("""
        create table if not exists scoring.churn_scores as
        select *, churn_probability as value_at_risk, 'x' as risk_tier from scoring._fake limit 0
    """)
    con.execute(f"delete from scoring.churn_scores where as_of_date = date '{as_of}'")
    con.execute("""
        insert into scoring.churn_scores by name
        select *, churn_probability * predicted_value as value_at_risk,
               case when churn_probability >= 0.5 then 'high' when churn_probability >= 0.25 then 'medium'
                    else 'low' end as risk_tier
        from scoring._fake
    """)
    con.execute("drop table scoring._fake")


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    from ml.synth import generate

    out = tmp_path_factory.mktemp("retention_shop")
    generate(out, customers=3000, seed=23, end_date=AS_OF)
    return out


@pytest.fixture(scope="module")
def settings(shop, tmp_path_factory):
    """A warehouse with real features and two scoring runs (a month apart) of contract shape."""
    from ml.stages.ingest import ingest
    from ml.core.settings import Settings
    from ml.stages.features import build_features

    s = Settings.load(raw_dir=shop, warehouse=tmp_path_factory.mktemp("retention_wh"), as_of=AS_OF,
                      horizon_days=HORIZON, campaign_budget=3000.0, control_share=0.10)
    ingest(s)
    build_features(s)
    con = duckdb.connect(str(s.db_path))
    try:
        _fake_scores(con, PREVIOUS_AS_OF, shift=0.25)  # a month ago everybody looked safer
        _fake_scores(con, AS_OF, shift=0.0)
    finally:
        con.close()
    return s


@pytest.fixture(scope="module")
def campaign(settings):
    """decide → marts → publish once; returns the decide summary."""
    from ml.stages.publish import publish

    summary = decide.decide(settings)
    decide.build_marts(settings)
    publish(settings)
    return summary


def _analytics(settings):
    from ml.core.catalog import connect_catalog  # views name files relative to the catalog

    return connect_catalog(settings.analytics_path)


def _published(settings) -> dict[str, list]:
    con = _analytics(settings)
    try:
        return {
            name: con.execute(f"select * exclude (scored_at) from marts.{name} order by all").fetchall()
            if name == "churn_scores" else con.execute(f"select * from marts.{name} order by all").fetchall()
            for name in ("churn_scores", "customer_segments", "retention_audience", "campaign_results",
                         "risk_alerts", "offer_catalog")
        }
    finally:
        con.close()


def test_audience_follows_the_contract_and_the_budget(settings, campaign):
    con = _analytics(settings)
    cols = [r[0] for r in con.execute("describe marts.retention_audience").fetchall()]
    assert cols[:10] == ["campaign_id", "customer_id", "action", "offer_code", "channel", "recommended_products",
                         "is_control", "priority_rank", "expected_net_value", "reason_summary"]
    spend, treated, control, audience = con.execute("""
        select sum(unit_cost) filter (not is_control), count(*) filter (not is_control),
               count(*) filter (is_control), count(*)
        from marts.retention_audience""").fetchone()
    assert 0 < spend <= settings.campaign_budget
    assert round(spend, 2) == campaign["spend"] and audience == campaign["audience"] > 100
    assert 0.05 < control / audience < 0.15
    actions = {r[0] for r in con.execute("select distinct action from marts.retention_audience").fetchall()}
    assert {"coupon", "recommendation"} <= actions
    # service recovery only where a reason names a service problem
    bad = con.execute("""
        select count(*) from marts.retention_audience
        where action = 'service_recovery' and reason_summary not ilike '%ticket%'""").fetchone()[0]
    assert bad == 0
    ranks = [r[0] for r in con.execute("select priority_rank from marts.retention_audience order by 1").fetchall()]
    assert ranks == list(range(1, audience + 1))


def test_segments_cover_every_scored_customer(settings, campaign):
    con = _analytics(settings)
    scored, segmented, segments = con.execute("""
        select (select count(*) from marts.churn_scores where as_of_date = ?),
               count(*), count(distinct segment)
        from marts.customer_segments""", [AS_OF]).fetchone()
    assert scored == segmented and segments >= 5


def test_budget_spend_never_exceeds_and_more_budget_never_lowers_value(settings, campaign):
    previous = -1.0
    try:
        for budget in (0.0, 50.0, 500.0, 3000.0, 20_000.0):
            summary = decide.decide(settings.replace(campaign_budget=budget))
            assert summary["spend"] <= budget
            assert summary["expected_net_value"] >= previous
            previous = summary["expected_net_value"]
    finally:
        decide.decide(settings)  # leave the module's campaign as it was


def test_recommendations_are_new_to_the_customer(settings, campaign):
    con = duckdb.connect(str(settings.db_path), read_only=True)
    try:
        already_bought = con.execute("""
            select count(*)
            from marts.retention_audience a, unnest(a.recommended_products) as r(product_id)
            where exists (
                select 1 from staging.stg_shop__orders o
                join staging.stg_shop__order_items i on i.order_id = o.order_id
                where o.customer_id = a.customer_id and i.product_id = r.product_id)""").fetchone()[0]
        sizes = con.execute("""
            select min(len(recommended_products)), max(len(recommended_products))
            from marts.retention_audience""").fetchone()
        sources = {r[0] for r in con.execute(
            "select distinct unnest(recommendation_sources) from marts.customer_product_recommendations").fetchall()}
    finally:
        con.close()
    assert already_bought == 0
    assert sizes == (5, 5)
    assert "similar_to_bought" in sources


def test_risk_alerts_flag_rises_with_changed_reasons(settings, campaign):
    con = _analytics(settings)
    rows = con.execute("""
        select probability_increase, previous_as_of_date, new_reasons, resolved_reasons, reasons, previous_reasons
        from marts.risk_alerts""").fetchall()
    assert rows, "a month ago everybody looked 0.25 safer: there must be alerts"
    assert all(r[0] >= settings.risk_alert_min_increase - 1e-9 for r in rows)
    assert {r[1] for r in rows} == {PREVIOUS_AS_OF}
    for inc, _, new, resolved, now, before in rows:
        assert set(new) == set(now) - set(before) and set(resolved) == set(before) - set(now)
    # every customer whose probability rose by the threshold is there
    expected = duckdb.connect(str(settings.db_path), read_only=True).execute("""
        select count(*) from scoring.churn_scores c join scoring.churn_scores p using (customer_id)
        where c.as_of_date = ? and p.as_of_date = ? and c.churn_probability - p.churn_probability >= ?""",
        [AS_OF, PREVIOUS_AS_OF, settings.risk_alert_min_increase]).fetchone()[0]
    assert len(rows) == expected


def test_crm_export_is_complete_checksummed_and_free_of_pii(settings, campaign):
    campaign_id = campaign["campaign_id"]
    folder = settings.crm_export_dir
    manifest = json.loads((folder / f"{campaign_id}.manifest.json").read_text())
    csv_rows = duckdb.sql(f"select * from read_csv('{folder / (campaign_id + '.csv')}', all_varchar = true)")
    parquet = duckdb.sql(f"select * from read_parquet('{folder / (campaign_id + '.parquet')}')")
    assert manifest["rows"] == len(csv_rows.fetchall()) == len(parquet.fetchall()) == campaign["audience"]
    assert manifest["rows_control"] == campaign["control"]
    assert manifest["as_of_date"] == AS_OF.isoformat() and manifest["model_version"] == "1"
    assert manifest["schema_version"]
    for kind in ("csv", "parquet"):
        entry = manifest["files"][kind]
        assert hashlib.sha256((folder / entry["name"]).read_bytes()).hexdigest() == entry["sha256"]
    columns = {c["name"] for c in manifest["columns"]}
    assert not columns & {"email", "phone", "email_hash", "phone_hash", "name"}
    text = (folder / f"{campaign_id}.csv").read_text()
    assert "@" not in text and "example.com" not in text
    assert not list(folder.glob(".*.tmp"))


def test_the_same_run_twice_publishes_identical_rows_and_control_group(settings, campaign):
    from ml.stages.publish import publish

    first = _published(settings)
    control_first = {r[1] for r in first["retention_audience"] if r[6]}
    export_first = json.loads((settings.crm_export_dir / f"{campaign['campaign_id']}.manifest.json").read_text())

    decide.decide(settings)
    decide.build_marts(settings)
    publish(settings)

    second = _published(settings)
    assert second == first
    assert {r[1] for r in second["retention_audience"] if r[6]} == control_first and control_first
    export_second = json.loads((settings.crm_export_dir / f"{campaign['campaign_id']}.manifest.json").read_text())
    assert export_second == export_first  # byte-identical files, same checksums
