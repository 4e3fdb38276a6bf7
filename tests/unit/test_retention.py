"""Retention, the pure pieces: tiers and segments, the budgeted policy, the hashed control group,
service reasons. The same stage on a real warehouse (decide → marts → publish) is
tests/pipeline/test_retention_publish.py.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from ml.stages import decide
from ml.model.segments import SEGMENTS, quintile_score, rfm_segments, risk_tiers, value_tiers


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
    customers = pd.DataFrame({"value_tier": ["high", "low"], "has_service_issue": [False, True],
                              "churn_probability": [0.4, 0.2], "predicted_value": [100.0, 50.0]})
    effects = decide.PriorEffects().expected_effects(customers, offers)
    by_code = dict(zip(offers["offer_code"], effects.T))
    assert np.isnan(by_code["COUPON20"][1]) and not np.isnan(by_code["COUPON20"][0])
    assert np.isnan(by_code["SERVICE_CALL"][0]) and not np.isnan(by_code["SERVICE_CALL"][1])
    # absolute uplift: the churn probability times the catalog's relative effect
    prior = dict(zip(offers["offer_code"], offers["expected_effect"]))
    assert by_code["COUPON10"][0] == pytest.approx(0.4 * prior["COUPON10"])

    class Uplift:  # what an uplift model has to provide: a name, a version and one method
        name, version = "uplift-test", "7"

        def expected_effects(self, customers, offers):
            return np.full((len(customers), len(offers)), 0.05)

    uplift, _, net = decide.policy_values(Uplift(), customers, offers)
    assert uplift.shape == effects.shape
    np.testing.assert_allclose(net, 0.05 * customers["predicted_value"].to_numpy()[:, None]
                               - offers["unit_cost"].to_numpy()[None, :])


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
