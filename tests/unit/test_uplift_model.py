"""The uplift learner (issue 19 item 2): it ranks the generator's true campaign effects, the truth
Qini means what it says, offers never sent keep their prior, and the time split of the stage."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ml.model.uplift import UpliftLearner, UpliftModel, qini_with_truth
from ml.stages.uplift import LEARNER, NoCampaignHistory, split_campaigns

HORIZON = 90
CATALOG = pd.DataFrame({"offer_code": ["COUPON10", "COUPON20", "SERVICE_CALL"],
                        "channel": ["email", "sms", "phone"], "expected_effect": [0.06, 0.13, 0.18]})


@pytest.fixture(scope="module")
def shop_contacts(tmp_path_factory):
    return generated_contacts(tmp_path_factory.mktemp("shop"), customers=3000, seed=5)


def generated_contacts(out_dir, customers: int, seed: int) -> pd.DataFrame:
    """Every closed shop campaign of a generated shop: the contacted customers' observable-side
    state on the contact day, their offer, control flag and outcome; the true effect of the offer
    they got."""
    from ml.synth.campaigns import shop_contact
    from ml.synth.contacts import campaign_id
    from ml.synth.generate import ShopSpec, write_shop
    from ml.synth.offers import CHANNELS, OFFERS
    from ml.synth.params import MODEL
    from ml.synth.truth import campaign_effect

    _, shop = write_shop(out_dir, ShopSpec(customers, seed, dt.date(2025, 12, 31), 730), dt.date(2025, 12, 31))
    people, orders = shop.people, shop.hist.orders
    frames = []
    for rec in shop.hist.campaigns:
        if rec.day + HORIZON >= shop.cal.observed_days:
            continue  # outcome window not closed
        st, c = rec.before, people.subset(rec.customers)
        in_window = (orders["day"] > rec.day) & (orders["day"] <= rec.day + HORIZON)
        buyers = np.unique(orders["cust"][in_window])  # an order of any status: retained
        truth = campaign_effect(people, rec, shop.cal, MODEL, HORIZON)
        frames.append(pd.DataFrame({
            "campaign_id": campaign_id(rec.campaign_no, shop.cal, rec.day),
            "contact_date": shop.cal.date_of(rec.day),
            "offer_code": np.asarray(OFFERS)[rec.offer],
            "contact_channel": np.asarray(CHANNELS)[shop_contact(c, rec.customers, rec.campaign_no)[1]],
            "is_control": rec.is_control,
            "is_retained": np.isin(rec.customers, buyers),
            # what the shop's data shows of each customer (coupon use, complaints, engagement, tenure)
            "price_sensitivity": c.price_sensitivity, "grievance": st.grievance, "engagement": st.z,
            "browsing": c.rho, "tenure_days": rec.day - c.signup_day,
            "days_since_last_order": rec.day - st.last_completed,
            "true_effect": truth["if_treated"] - truth["if_control"],
        }))
    return pd.concat(frames, ignore_index=True)


FEATURES = ["price_sensitivity", "grievance", "engagement", "browsing", "tenure_days", "days_since_last_order"]


def test_learner_ranks_true_effects_of_the_held_out_campaign(shop_contacts):
    """Trained on the earlier campaigns, its uplift of what each held-out contact got ranks the
    true effects clearly above random (Qini with the truth: 1 perfect, 0 random; ~0.2 here)."""
    train, held, _ = split_campaigns(shop_contacts)
    learner = UpliftLearner(FEATURES, LEARNER, threads=1)
    learner.fit(train, train["is_retained"].to_numpy(int), ~train["is_control"].to_numpy(bool))
    model = UpliftModel(learner, {}, HORIZON, sorted(train["campaign_id"].unique()))
    score = model.received_uplift(held)
    truth_qini = qini_with_truth(held["true_effect"].to_numpy(), score)
    assert truth_qini > 0.1, truth_qini


def test_qini_with_truth_is_one_for_the_truth_zero_for_noise_negative_reversed():
    effect = np.random.default_rng(0).normal(0.03, 0.05, 5000)
    assert qini_with_truth(effect, effect) == pytest.approx(1.0)
    assert qini_with_truth(effect, -effect) < -0.9
    assert abs(qini_with_truth(effect, np.random.default_rng(1).random(5000))) < 0.1


def test_offers_never_sent_keep_their_prior_and_every_offer_gets_a_column(shop_contacts):
    rows = shop_contacts[shop_contacts["offer_code"].isin(["COUPON10", "COUPON20"])]
    learner = UpliftLearner(FEATURES, LEARNER, threads=1).fit(
        rows, rows["is_retained"].to_numpy(int), ~rows["is_control"].to_numpy(bool))
    model = UpliftModel(learner, {"COUPON10": "email", "COUPON20": "sms"}, HORIZON, [])
    customers = shop_contacts.head(50).assign(churn_probability=np.linspace(0.1, 0.9, 50))
    effects = model.expected_effects(customers, CATALOG)
    assert effects.shape == (50, 3) and np.isfinite(effects[:, :2]).all()
    assert learner.offers == ["COUPON10", "COUPON20"]
    np.testing.assert_allclose(effects[:, 2], customers["churn_probability"] * 0.18)  # SERVICE_CALL: never sent
    assert not np.allclose(effects[:, 0], effects[:, 1])  # each offer its own effect
    assert list(model.predict(None, customers).columns) == ["uplift_COUPON10", "uplift_COUPON20"]


def _campaigns(*specs) -> pd.DataFrame:
    """(campaign id, contact date, treated rows, control rows) → a frame of contacts."""
    return pd.concat([pd.DataFrame({"campaign_id": cid, "contact_date": pd.Timestamp(day).date(),
                                    "is_control": [False] * treated + [True] * control,
                                    "customer_id": [f"{cid}-{i}" for i in range(treated + control)]})
                      for cid, day, treated, control in specs], ignore_index=True)


def test_time_split_holds_out_the_latest_judgeable_campaign_and_trains_on_earlier_ones():
    frame = _campaigns(("A", "2025-01-01", 200, 40), ("B", "2025-04-01", 200, 40),
                       ("C", "2025-07-01", 200, 40), ("D", "2025-08-01", 200, 5))  # D: too few controls
    train, held, held_id = split_campaigns(frame)
    assert held_id == "C" and set(held["campaign_id"]) == {"C"}
    assert set(train["campaign_id"]) == {"A", "B"}


@pytest.mark.parametrize("specs", [(), (("A", "2025-01-01", 200, 40),), (("A", "2025-01-01", 200, 3),)])
def test_no_campaign_history_to_learn_and_judge_on(specs):
    with pytest.raises(NoCampaignHistory):
        split_campaigns(_campaigns(*specs) if specs else pd.DataFrame())
