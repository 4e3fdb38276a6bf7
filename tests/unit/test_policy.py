"""The retention policy on uplift (issue 19 items 3, 4): net value = uplift × value − cost, sleeping
dogs never contacted, a contact cap, hashed exploration with exact shares, and propensities that
match how often each treatment really happens."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.model import policy
from ml.stages import decide

CAMPAIGN = "CW-20251231-H90"


def _uplift_problem(seed: int, n: int = 2_000):
    """Customers × 3 offers with absolute uplifts, a share of them sleeping dogs (every uplift < 0)."""
    rng = np.random.default_rng(seed)
    cost = np.array([0.5, 3.0, 8.0])
    uplift = rng.uniform(-0.02, 0.15, (n, 3))
    uplift[rng.random(n) < 0.7, 2] = np.nan  # offer 2 only for some
    dogs = rng.random(n) < 0.2
    uplift[dogs] = -np.abs(uplift[dogs])
    value = rng.gamma(2.0, 80.0, n)
    value[dogs & (rng.random(n) < 0.5)] *= -1  # a negative value must not turn harm into a gain
    ids = np.array([f"{i:06d}" for i in range(n)], dtype=object)
    return ids, uplift, value, cost, dogs


# ---- value: uplift × value − cost; the priors give today's numbers ------------------------------


def test_prior_effect_model_gives_todays_net_values_exactly(tmp_path):
    from ml.core.settings import Settings

    offers = decide.load_offer_catalog(Settings.load(warehouse=tmp_path))
    rng = np.random.default_rng(3)
    n = 5_000
    customers = pd.DataFrame({"churn_probability": rng.random(n), "predicted_value": rng.gamma(2.0, 80.0, n),
                              "value_tier": rng.choice(["high", "medium", "low"], n),
                              "has_service_issue": rng.random(n) < 0.2, "has_item_data": rng.random(n) < 0.8})
    customers.loc[::97, "predicted_value"] = np.nan
    prior = decide.PriorEffects()
    relative = prior.relative_effects(customers, offers)
    uplift, effects, net = decide.policy_values(prior, customers, offers)

    # uplift is absolute: churn probability × the catalog's relative effect
    np.testing.assert_array_equal(uplift, customers["churn_probability"].to_numpy()[:, None] * relative)
    np.testing.assert_array_equal(effects, relative)
    # the net value of every (customer, offer) is bit-identical to the policy before uplift models
    p, v = customers["churn_probability"].to_numpy(), customers["predicted_value"].to_numpy()
    before = (p * np.nan_to_num(v))[:, None] * relative - offers["unit_cost"].to_numpy()[None, :]
    before = np.where(np.isnan(relative), -np.inf, before)
    np.testing.assert_array_equal(net, before)
    # ... and equal, up to rounding, to the general rule uplift × value − cost
    general = policy.net_values(uplift, v, offers["unit_cost"].to_numpy())
    np.testing.assert_allclose(net[np.isfinite(net)], general[np.isfinite(net)], rtol=1e-12, atol=1e-9)


def test_sleeping_dogs_with_negative_uplift_are_never_contacted():
    ids, uplift, value, cost, dogs = _uplift_problem(1)
    net = policy.net_values(uplift, value, cost)
    assert np.isneginf(net[dogs]).all()
    control = policy.control_flags(ids, CAMPAIGN, 0.1)
    for budget, share, cap in [(1e9, 0.0, None), (1e9, 0.5, None), (500.0, 0.2, 300), (1e9, 0.9, None)]:
        explored = policy.draw_exploration(ids, CAMPAIGN, uplift, cost, ~control, share * budget,
                                           None if cap is None else int(share * cap))
        choice, _ = policy.choose_offers(net, cost, budget - explored.spend, ~control & ~explored.drawn,
                                         max_contacts=None if cap is None else cap - explored.contacts)
        contacted = (~control) & (explored.drawn | (choice >= 0))
        assert contacted.any() and not (contacted & dogs).any()
        # no one is given an offer predicted to harm them, by the policy or by exploration
        given = np.where(explored.drawn, explored.offer, choice)
        rows = np.flatnonzero(given >= 0)
        assert (uplift[rows, given[rows]] > 0).all()


# ---- the contact cap ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_contact_cap_keeps_the_best_and_picks_controls_by_the_same_rule(seed):
    ids, uplift, value, cost, _ = _uplift_problem(seed)
    net = policy.net_values(uplift, value, cost)
    control = policy.control_flags(ids, CAMPAIGN, 0.1)
    free, _ = policy.choose_offers(net, cost, 1e9, ~control)
    for cap, budget in [(150, 1e9), (150, 200.0), (0, 1e9), (10**6, 1e9)]:
        choice, lam = policy.choose_offers(net, cost, budget, ~control, max_contacts=cap)
        treated = (choice >= 0) & ~control
        assert treated.sum() <= cap and cost[choice[treated]].sum() <= budget + 1e-9
        if cap >= len(ids):  # a cap that cannot bind changes nothing
            assert (choice == free).all()
            continue
        # the kept are the best by net − λ·cost: every billable left out with a positive value ranks below
        best = np.where(np.isfinite(net), net - lam * cost[None, :], -np.inf).max(axis=1)
        kept, left = best[treated], best[~control & (choice < 0) & (best > 0)]
        if len(kept) and len(left):
            assert left.max() <= kept.min()
        # a control is chosen exactly when it ranks within the cut-off of the treated
        if len(kept):
            cut = kept.min()
            positive_controls = control & (best > 0)
            assert ((choice >= 0)[positive_controls & (best > cut)]).all()
            assert not ((choice >= 0)[positive_controls & (best < cut)]).any()
    assert policy.contact_cap(9_510, 0.15) == 1_426 and policy.contact_cap(9_510, 1.0) is None


# ---- exploration: exact shares, a uniform draw, identical on rerun -------------------------------


def test_exploration_and_control_shares_are_exact_and_identical_on_rerun():
    ids, uplift, value, cost, dogs = _uplift_problem(4, n=20_000)
    control = policy.control_flags(ids, CAMPAIGN, 0.10)
    # control: exactly the documented hash rule, so its share is the hash's
    assert abs(control.mean() - 0.10) < 0.01
    budget, share = 4_000.0, 0.05
    explored = policy.draw_exploration(ids, CAMPAIGN, uplift, cost, ~control, share * budget, None)
    billed = explored.drawn & ~control
    spend = cost[explored.offer[billed]].sum()
    assert spend == pytest.approx(explored.spend)
    # the exploration money: all of its share but less than one more offer
    assert share * budget - cost.max() < spend <= share * budget
    # under a contact cap, exactly the share of the contacts when the money lasts
    capped = policy.draw_exploration(ids, CAMPAIGN, uplift, cost, ~control, 1e9, 40)
    assert capped.contacts == (capped.drawn & ~control).sum() == 40
    # the same campaign draws the very same customers and offers; another campaign others
    again = policy.draw_exploration(ids[::-1], CAMPAIGN, uplift[::-1], cost, ~control[::-1], share * budget, None)
    assert (again.drawn[::-1] == explored.drawn).all() and (again.offer[::-1] == explored.offer).all()
    other = policy.draw_exploration(ids, "CW-20260131-H90", uplift, cost, ~control, share * budget, None)
    assert (other.drawn != explored.drawn).any()
    assert not (explored.drawn & dogs).any()
    eligible = np.nan_to_num(uplift, nan=-1.0).max(axis=1) > 0
    assert explored.inclusion == pytest.approx(explored.drawn.sum() / eligible.sum())


def test_exploration_draws_customers_and_offers_uniformly():
    ids, uplift, value, cost, dogs = _uplift_problem(5, n=40_000)
    explored = policy.draw_exploration(ids, CAMPAIGN, uplift, cost, np.ones(len(ids), bool), 20_000.0, None)
    q = explored.inclusion
    assert 0.2 < q < 0.5
    # customers: the same inclusion whatever their value or uplift (the draw ignores both)
    eligible = np.nan_to_num(uplift, nan=-1.0).max(axis=1) > 0
    assert not (explored.drawn & ~eligible).any()
    for group in (value > np.median(value), np.nanmax(uplift, axis=1) > 0.1, np.isnan(uplift[:, 2])):
        for g in (group, ~group):
            assert explored.drawn[eligible & g].mean() == pytest.approx(q, abs=0.02)
    # offers: uniform among the ones open to the customer
    three = explored.drawn & (explored.offers_open == 3)
    shares = np.bincount(explored.offer[three], minlength=3) / three.sum()
    np.testing.assert_allclose(shares, 1 / 3, atol=0.03)


# ---- propensities ----------------------------------------------------------------------------------


def test_propensities_match_how_often_each_treatment_happens():
    """Over many campaigns (each its own hashes), the share of campaigns in which a customer got what a
    row records equals the recorded propensity: what an uplift learner weights by."""
    rng = np.random.default_rng(6)
    n, cost = 300, np.array([0.5, 3.0, 8.0])
    ids = np.array([f"c{i}" for i in range(n)], dtype=object)
    uplift = rng.uniform(-0.01, 0.12, (n, 3))
    uplift[rng.random(n) < 0.5, 2] = np.nan
    net = policy.net_values(uplift, rng.gamma(2.0, 80.0, n), cost)
    c, campaigns = 0.2, 600
    counts, expected = {}, {}
    for k in range(campaigns):
        campaign = f"CW-{k}"
        control = policy.control_flags(ids, campaign, c)
        explored = policy.draw_exploration(ids, campaign, uplift, cost, ~control, 60.0, None)
        choice, _ = policy.choose_offers(net, cost, 1e9, ~control & ~explored.drawn)
        picked = np.flatnonzero(explored.drawn | (choice >= 0))
        offer = np.where(explored.drawn, explored.offer, choice)[picked]
        assignment = np.where(control[picked], "control", np.where(explored.drawn[picked], "exploration", "targeted"))
        p = policy.propensities(assignment, offer, choice[picked], explored.offers_open[picked], c, explored.inclusion)
        assert ((p > 0) & (p <= 1)).all()
        # treatment as the customer experiences it: the offer, or none (-1) when held out
        treatment = np.where(assignment == "control", -1, offer)
        for i, t, prob in zip(picked, treatment, p):
            counts[(i, t)] = counts.get((i, t), 0) + 1
            expected.setdefault((i, t), []).append(prob)
    frequent = [key for key in expected if len(expected[key]) >= 60]
    assert len(frequent) > 50
    for key in frequent:
        # the recorded propensity is stable across campaigns and matches the realised frequency
        assert np.std(expected[key]) < 0.02
        assert counts[key] / campaigns == pytest.approx(np.mean(expected[key]), abs=0.06)
    rare = [key for key in expected if key[1] >= 0 and np.mean(expected[key]) < 0.1]
    realised = sum(counts[key] for key in rare) / campaigns
    assert realised == pytest.approx(sum(np.mean(expected[key]) for key in rare), rel=0.1)


def test_propensity_formulas():
    assignment = np.array(["targeted", "exploration", "exploration", "control", "control"])
    offer, policy_offer = np.array([1, 0, 1, 1, 2]), np.array([1, 1, 1, 1, -1])
    p = policy.propensities(assignment, offer, policy_offer, np.array([2, 2, 2, 3, 4]), 0.1, 0.05)
    np.testing.assert_allclose(p, [0.9 * (0.95 + 0.025), 0.9 * 0.025, 0.9 * (0.025 + 0.95), 0.1, 0.1 + 0.9 * 0.95])
    # without exploration: targeted rows 1 − c, controls c (the design of issue 1)
    p = policy.propensities(np.array(["targeted", "control"]), np.array([0, 0]), np.array([0, 0]),
                            np.array([1, 1]), 0.1, 0.0)
    np.testing.assert_allclose(p, [0.9, 0.1])
