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
import numpy as np
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
    from ml.stages.train import performance

    s = Settings.load(raw_dir=shop, warehouse=tmp_path_factory.mktemp("retention_wh"), as_of=AS_OF,
                      horizon_days=HORIZON, campaign_budget=3000.0, control_share=0.10)
    ingest(s)
    build_features(s)
    performance.ensure_table(s)  # no model was trained here: the scores below are of contract shape
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
    from ml.model.policy import contact_cap

    previous = -1.0
    # the money budget alone (no contact cap, no exploration): more budget never lowers the value
    uncapped = settings.replace(contact_share=1.0, exploration_share=0.0)
    try:
        for budget in (0.0, 50.0, 500.0, 3000.0, 20_000.0):
            summary = decide.decide(uncapped.replace(campaign_budget=budget))
            assert summary["spend"] <= budget
            assert summary["expected_net_value"] >= previous
            previous = summary["expected_net_value"]
        # with the defaults neither the money nor the contact cap is ever exceeded
        for budget in (0.0, 50.0, 500.0, 20_000.0):
            summary = decide.decide(settings.replace(campaign_budget=budget))
            cap = contact_cap(summary["customers"], settings.contact_share)
            assert summary["spend"] <= budget and summary["treated"] <= cap
        assert summary["treated"] == cap  # a large budget: the cap decides how many are contacted
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


# ---- issue 19: uplift policy, exploration, assignment and propensity --------------------------------


def _decisions(settings) -> list[tuple]:
    con = duckdb.connect(str(settings.db_path), read_only=True)
    try:
        return con.execute("""
            select customer_id, assignment, offer_code, unit_cost, is_control, propensity
            from retention.audience_decisions where campaign_id = ? order by customer_id""",
            [settings.campaign_id]).fetchall()
    finally:
        con.close()


def test_audience_publishes_assignment_propensity_and_the_effect_model(settings, campaign):
    con = _analytics(settings)
    cols = [r[0] for r in con.execute("describe marts.retention_audience").fetchall()]
    assert {"expected_uplift", "assignment", "propensity", "effect_model_version"} <= set(cols)
    rows = con.execute("""
        select assignment, is_control, propensity, expected_uplift, effect_source, effect_model_version
        from marts.retention_audience""").fetchall()
    assert {r[0] for r in rows} == {"targeted", "exploration", "control"}
    assert all((r[0] == "control") == r[1] and 0 < r[2] <= 1 and r[3] > 0 for r in rows)
    assert {(r[4], r[5]) for r in rows} == {("prior", "offer_catalog")}  # no uplift champion here
    # the CRM file carries the design too, beside the columns it always had
    export = duckdb.sql(f"select * from read_parquet('{settings.crm_export_dir / (campaign['campaign_id'] + '.parquet')}')")
    assert export.columns[-2:] == ["assignment", "propensity"]
    assert sorted(export.aggregate("assignment, count(*)").fetchall()) == sorted(
        con.execute("select assignment, count(*) from marts.retention_audience group by 1").fetchall())


def test_exploration_and_control_shares_exact_and_identical_on_rerun(settings, campaign):
    from ml.model.policy import contact_cap, control_flags

    first = _decisions(settings)
    summary = decide.decide(settings)
    assert _decisions(settings) == first  # the same customers, offers, assignments and propensities
    cap = contact_cap(summary["customers"], settings.contact_share)
    explored = [r for r in first if r[1] == "exploration"]
    # exploration: its share of the contacts, or of the money when that runs out first
    budget = settings.exploration_share * settings.campaign_budget
    spent = sum(r[3] for r in explored)
    assert len(explored) <= int(settings.exploration_share * cap) and spent <= budget + 1e-9
    assert len(explored) == int(settings.exploration_share * cap) or spent > budget - 7.0
    assert len(explored) > 5
    # control: exactly the customers the documented hash holds out
    ids = np.array([r[0] for r in first], dtype=object)
    held_out = control_flags(ids, settings.campaign_id, settings.control_share)
    assert [r[4] for r in first] == list(held_out)
    assert sum(1 for r in first if not r[4]) <= cap


def test_sleeping_dogs_with_negative_predicted_uplift_are_never_contacted(settings, campaign):
    class HalfAreSleepingDogs:  # an uplift model: harmful for every offer to customers with an even hash
        name, version = "dogs-test", "3"

        def expected_effects(self, customers, offers):
            dogs = customers["customer_id"].map(lambda c: hash(str(c)) % 2 == 0).to_numpy()
            uplift = np.tile(offers["expected_effect"].to_numpy(float), (len(customers), 1)) * 0.5
            uplift[dogs] = -uplift[dogs]
            return uplift, dogs

    model = HalfAreSleepingDogs()
    dogs_of = {}

    class Recording:
        name, version = model.name, model.version

        def expected_effects(self, customers, offers):
            uplift, dogs = model.expected_effects(customers, offers)
            dogs_of.update(zip(customers["customer_id"], dogs))
            return uplift

    try:
        summary = decide.decide(settings, effect_model=Recording())
        rows = _decisions(settings)
        assert summary["effect_source"] == "dogs-test" and summary["treated"] > 50
        assert sum(dogs_of.values()) > 500
        assert not [r for r in rows if dogs_of[r[0]]]  # not targeted, not explored, not even held out
    finally:
        decide.decide(settings)


def test_old_settings_give_the_policy_before_uplift(settings, campaign):
    """exploration_share 0, contact_share 1 and the priors: targeted and control only, the whole
    budget to the policy (the equality of published rows with the code before is checked by
    benchmarks/published_equality.py on the tier-S shop)."""
    from ml.model.policy import contact_cap

    try:
        summary = decide.decide(settings.replace(exploration_share=0.0, contact_share=1.0, effect_model="prior"))
        rows = _decisions(settings)
        assert {r[1] for r in rows} == {"targeted", "control"} and summary["exploration"] == 0
        assert {round(r[5], 12) for r in rows} == {0.9, 0.1}
        assert summary["treated"] > 1.5 * contact_cap(summary["customers"], settings.contact_share)
    finally:
        decide.decide(settings)
