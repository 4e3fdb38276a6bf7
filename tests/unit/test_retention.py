"""Retention: tiers and segments, the budgeted policy, the hashed control group, recommendations,
risk alerts, the CRM export, and idempotent reruns of decide → marts → publish.

The unit tests exercise the pure pieces. The integration tests share one small generated shop per
module (ingest + dbt features for real) fed with a scores table of the published contract's shape;
the model itself is tested elsewhere, here the layers after scoring are under test.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.stages import decide
from ml.model.segments import SEGMENTS, quintile_score, rfm_segments, risk_tiers, value_tiers

AS_OF = dt.date(2025, 12, 31)
PREVIOUS_AS_OF = dt.date(2025, 12, 1)
HORIZON = 90


# ---- unit: tiers and segments ---------------------------------------------------------------------


def test_risk_tiers_follow_the_thresholds():
    tiers = risk_tiers(np.array([0.0, 0.24, 0.25, 0.49, 0.5, 1.0]), high=0.5, medium=0.25)
    assert list(tiers) == ["low", "low", "medium", "medium", "high", "high"]
    with pytest.raises(ValueError):
        risk_tiers(np.array([0.1]), high=0.2, medium=0.3)


def test_value_tiers_split_by_shares_and_keep_ties_together():
    tiers = value_tiers(np.arange(100, dtype=float), high_share=0.2, medium_share=0.3)
    assert (tiers == "high").sum() == 20 and (tiers == "medium").sum() == 30 and (tiers == "low").sum() == 50
    assert set(tiers[80:]) == {"high"}
    tied = value_tiers(np.array([5.0, 5.0, 5.0, 1.0]), high_share=0.25, medium_share=0.25)
    assert list(tied) == ["high", "high", "high", "low"]


def test_rfm_rules_first_match_wins():
    r = np.array([5, 4, 5, 4, 3, 2, 2, 1, 1])
    f = np.array([5, 4, 1, 2, 2, 4, 1, 5, 1])
    m = np.array([5, 2, 1, 1, 1, 1, 1, 5, 1])
    orders = np.array([9, 6, 1, 2, 2, 6, 1, 9, 1])
    assert list(rfm_segments(r, f, m, orders)) == [
        "champions", "loyal", "new_customers", "potential_loyalists", "needs_attention",
        "at_risk", "hibernating", "at_risk", "lost"]
    assert set(rfm_segments(r, f, m, orders)) <= set(SEGMENTS)


def test_quintile_scores_rank_recency_lower_is_better():
    days = np.array([1, 10, 100, 1000, np.nan])
    scores = quintile_score(days, higher_is_better=False)
    assert scores[0] == 5 and scores[3] < scores[0] and scores[4] == 1


# ---- unit: policy and control group ----------------------------------------------------------------


def _random_problem(seed: int, n: int = 400):
    rng = np.random.default_rng(seed)
    offers = pd.DataFrame({"offer_code": ["A", "B", "C"], "unit_cost": [0.5, 3.0, 8.0],
                           "expected_effect": [0.03, 0.1, 0.2]})
    effects = np.tile(offers["expected_effect"].to_numpy(), (n, 1))
    effects[rng.random(n) < 0.7, 2] = np.nan  # C only for some
    net = decide.expected_net_values(rng.random(n), rng.gamma(2.0, 80.0, n), effects, offers["unit_cost"])
    billable = rng.random(n) >= 0.1
    return net, offers["unit_cost"].to_numpy(), billable


def _total(net, cost, choice, billable):
    picked = (choice >= 0) & billable
    return float(net[picked, choice[picked]].sum()), float(cost[choice[picked]].sum())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_policy_keeps_to_the_budget_and_more_budget_never_lowers_value(seed):
    net, cost, billable = _random_problem(seed)
    previous = -1.0
    for budget in [0, 1, 5, 20, 50, 100, 200, 400, 800, 1600, 1e6]:
        choice, lam = decide.choose_offers(net, cost, budget, billable)
        value, spend = _total(net, cost, choice, billable)
        assert spend <= budget + 1e-9
        assert value >= previous - 1e-9, f"budget {budget}: value {value} < {previous}"
        assert (net[choice >= 0, choice[choice >= 0]] > 0).all()  # never a losing offer
        previous = value


def test_unlimited_budget_picks_each_customers_best_offer():
    net, cost, billable = _random_problem(7)
    choice, lam = decide.choose_offers(net, cost, 1e9, billable)
    assert lam == 0.0
    best = np.where(net.max(axis=1) > 0, net.argmax(axis=1), -1)
    assert (choice == best).all()


def _choose_offers_by_argmax(net, cost, budget, billable, iterations=60, tolerance=1e-7):
    """The policy as first written (argmax over all offers at every bisection step): the
    reference the faster offer-by-offer bisection must reproduce exactly."""
    n, k = net.shape

    def solve(lam):
        if k == 0:
            return np.full(n, -1)
        adjusted = net - lam * cost[None, :]
        best = np.argmax(adjusted, axis=1)
        return np.where(adjusted[np.arange(n), best] > 0, best, -1)

    def spend(choice):
        picked = (choice >= 0) & billable
        return float(cost[choice[picked]].sum())

    choice = solve(0.0)
    if spend(choice) <= budget:
        return choice, 0.0
    lo, hi = 0.0, float(np.max(np.where(np.isfinite(net), net, 0.0) / cost[None, :])) + 1.0
    for _ in range(iterations):
        if hi - lo <= tolerance * hi:
            break
        mid = (lo + hi) / 2
        if spend(solve(mid)) <= budget:
            hi = mid
        else:
            lo = mid
    return solve(hi), hi


@pytest.mark.parametrize("seed", range(12))
def test_policy_choices_equal_the_argmax_reference(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 300)), int(rng.integers(0, 6))
    net = np.round(rng.normal(1.0, 3.0, (n, k)), int(rng.integers(0, 3)))  # rounding makes ties
    net[rng.random((n, k)) < 0.3] = -np.inf
    if seed % 4 == 0 and n * k:
        net[rng.integers(0, n), rng.integers(0, k)] = np.nan
    cost = np.round(rng.uniform(0.5, 5.0, k), 1)
    if k > 2:
        cost[1] = cost[0]  # equal costs: ties between offers at every price
    billable = rng.random(n) < 0.9
    for budget in (0.0, 1.0, 10.0, 100.0, 1e9):
        choice, lam = decide.choose_offers(net, cost, budget, billable)
        expected, expected_lam = _choose_offers_by_argmax(net, cost, budget, billable)
        assert (choice == expected).all() and lam == expected_lam


def test_control_flags_equal_the_documented_hash_for_every_customer():
    # the hash defines existing control groups: any faster implementation must give the same bits
    ids = np.array([f"{i:07d}" for i in range(5_000)] + ["", "ünïcödé-42", "0", "a" * 300], dtype=object)
    expected = np.array([int.from_bytes(hashlib.blake2b(b"CW-20251231-H90\x1f" + c.encode(), digest_size=8).digest(),
                                        "big") / 2**64 < 0.10 for c in ids])
    assert (decide.control_flags(ids, "CW-20251231-H90", 0.10) == expected).all()


def test_control_group_is_a_stable_hash_of_customer_and_campaign():
    ids = np.array([f"{i:06d}" for i in range(20_000)])
    a = decide.control_flags(ids, "CW-20251231-H90", 0.10)
    assert (a == decide.control_flags(ids, "CW-20251231-H90", 0.10)).all()
    assert abs(a.mean() - 0.10) < 0.01
    b = decide.control_flags(ids, "CW-20260131-H90", 0.10)
    assert (a != b).any()  # another campaign draws another group
    # the same customer gets the same flag whatever else is in the list
    assert (decide.control_flags(ids[::-1], "CW-20251231-H90", 0.10) == a[::-1]).all()
    # documented recipe: blake2b-64 of "<campaign>\x1f<customer>" / 2**64 < share
    digest = hashlib.blake2b(b"CW-20251231-H90\x1f000007", digest_size=8).digest()
    assert a[7] == (int.from_bytes(digest, "big") / 2**64 < 0.10)


def test_prior_effects_respect_eligibility_and_an_effect_model_can_replace_them(tmp_path):
    from ml.core.settings import Settings

    offers = decide.load_offer_catalog(Settings.load(warehouse=tmp_path))
    customers = pd.DataFrame({"value_tier": ["high", "low"], "has_service_issue": [False, True]})
    effects = decide.PriorEffects().expected_effects(customers, offers)
    by_code = dict(zip(offers["offer_code"], effects.T))
    assert np.isnan(by_code["COUPON20"][1]) and not np.isnan(by_code["COUPON20"][0])
    assert np.isnan(by_code["SERVICE_CALL"][0]) and not np.isnan(by_code["SERVICE_CALL"][1])

    class Uplift:  # what an uplift model has to provide: one method
        name = "uplift-test"

        def expected_effects(self, customers, offers):
            return np.full((len(customers), len(offers)), 0.5)

    assert Uplift().expected_effects(customers, offers).shape == effects.shape


def test_service_reasons_are_recognised():
    flags = decide.has_service_issue([
        np.array(["count_tickets_unresolved", None, "days_since_last_order"], dtype=object),
        np.array([None, "Low average review rating", None], dtype=object),
        np.array([None, None, "amount_365d"], dtype=object),
    ])
    assert list(flags) == [True, True, False]
    as_series = decide.has_service_issue([pd.Series(["count_tickets_unresolved", None, "days_since_last_order"],
                                                       dtype="string"),
                                             pd.Series([None, "Low average review rating", None], dtype="string"),
                                             pd.Series([None, None, "amount_365d"], dtype="string")])
    assert list(as_series) == [True, True, False]


@pytest.mark.parametrize("reason, is_problem", [
    ("Unresolved support tickets", True), ("Cancelled orders", True), ("Returned orders", True),
    ("Last review was negative", True), ("Unhappy with support", True), ("Many low ratings (1-2 stars)", True),
    ("Support tickets took long to resolve", True), ("return_rate", True), ("cancellation_rate", True),
    ("Few support tickets", False), ("No recent support tickets", False),
    ("All tickets resolved but other signals weigh", False), ("Satisfied with support but other signals weigh", False),
    ("Few returns but other signals weigh", False), ("Does not engage with reviews", False),
    ("Last ticket long ago", False), ("No order for a long time", False), ("count_reviews", False),
])
def test_reassuring_reason_sentences_are_not_service_problems(reason, is_problem):
    assert bool(decide.has_service_issue([np.array([reason], dtype=object)])[0]) is is_problem


# ---- integration: a small shop through decide → marts → publish ---------------------------------


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


integration = pytest.mark.integration


@integration
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


@integration
def test_segments_cover_every_scored_customer(settings, campaign):
    con = _analytics(settings)
    scored, segmented, segments = con.execute("""
        select (select count(*) from marts.churn_scores where as_of_date = ?),
               count(*), count(distinct segment)
        from marts.customer_segments""", [AS_OF]).fetchone()
    assert scored == segmented and segments >= 5


@integration
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


@integration
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


@integration
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


@integration
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


@integration
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
