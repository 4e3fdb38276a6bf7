"""The uplift stage on real warehouses (issue 19 item 2): trained on a generated shop's earlier
campaigns from ``marts.campaign_outcomes``, judged on the latest closed one, registered per horizon
with its pictures, champion only when it beats the priors; a shop without campaign history keeps
the priors with one log line."""
from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd
import pytest

END = dt.date(2025, 12, 31)
UPLIFT_LOG = "ml.stages.uplift"


def _warehouse(base, customers: int, seed: int, orders_only: bool = False):
    """Generate a shop, ingest it and build the feature marts; return (settings, shop)."""
    from ml.core.settings import Settings
    from ml.stages.features.build import build_features
    from ml.stages.ingest import ingest
    from ml.synth.generate import ShopSpec, write_shop

    _, shop = write_shop(base / "raw", ShopSpec(customers, seed, END, 730), END)
    if orders_only:
        for path in (base / "raw").glob("campaign_contacts.*"):
            path.unlink()
    settings = Settings.load(warehouse=base / "wh", raw_dir=base / "raw", as_of=END, horizon_days=90,
                             train_threads=2)
    ingest(settings)
    build_features(settings)
    return settings, shop


@pytest.fixture(scope="module")
def shop_wh(tmp_path_factory):
    return _warehouse(tmp_path_factory.mktemp("uplift"), 4000, 7)


def _true_effects(shop, campaign: str, customer_ids) -> np.ndarray:
    """The generator's true effect of the offer each contact of ``campaign`` got."""
    from ml.synth.contacts import campaign_id
    from ml.synth.params import MODEL
    from ml.synth.truth import campaign_effect

    rec = next(r for r in shop.hist.campaigns if campaign_id(r.campaign_no, shop.cal, r.day) == campaign)
    e = campaign_effect(shop.people, rec, shop.cal, MODEL, 90)
    truth = pd.Series(e["if_treated"] - e["if_control"], index=shop.ids.take(rec.customers).to_pylist())
    return truth.loc[list(customer_ids)].to_numpy()


def test_trained_on_earlier_campaigns_ranks_the_held_out_ones_true_effects(shop_wh, caplog):
    """Registered as its own model per horizon with challenger, pictures and the gate's decision;
    champion exactly when its Qini beat the priors'; its ranking of the held-out campaign's true
    effects is clearly above random; the policy then gets it with the catalog's eligibility."""
    from ml.core import registry
    from ml.model.uplift import qini_with_truth
    from ml.stages import uplift

    settings, shop = shop_wh
    result = uplift.train_uplift(settings)
    up = uplift.uplift_settings(settings)
    assert up.registered_model_name == "churnwatch_churn_uplift_90d"
    assert registry.alias_version(up, registry.CHALLENGER).version == result["version"]
    client = registry.configure(settings)
    artifacts = {a.path for a in client.list_artifacts(result["run_id"], "plots")}
    assert artifacts == {"plots/qini_curve.png", "plots/uplift_by_decile.png"}
    tags = registry.version_tags(up, result["version"])
    beat_priors = result["qini"]["model"] > result["qini"]["prior"]
    assert tags["promoted"] == str(beat_priors).lower() and tags["promotion_decision"] == result["decision"]
    champion = registry.alias_version(up, registry.CHAMPION)
    assert (champion is not None and champion.version == result["version"]) == beat_priors

    # the backtest learner's ranking of the held-out campaign against the generator's truth
    train, held, held_id = uplift.split_campaigns(uplift.read_outcomes(settings))
    assert held_id == result["held_out_campaign"] and train["contact_date"].max() < held["contact_date"].min()
    score = uplift.fit_model(settings, train).received_uplift(held)
    truth_qini = qini_with_truth(_true_effects(shop, held_id, held["customer_id"]), score)
    print(f"Qini with the truth on {held_id}: {truth_qini:.3f}; realized {result['qini']}")
    # above random; on dbt features a 4k shop's ~2.4k training contacts give 0.06-0.15 (10k: ~0.11,
    # benchmarks/results/uplift.json); "clearly above" is tested on the learner in tests/unit
    assert truth_qini > 0.0, truth_qini

    # the policy's view: every catalog offer a column, NaN where the catalog's rule says not eligible
    registry.promote(up, result["version"], "test: force a champion")
    caplog.set_level(logging.INFO, logger=UPLIFT_LOG)
    effects_model = uplift.load_effect_model(settings)
    customers = held.head(20).assign(value_tier="low", has_service_issue=False, churn_probability=0.4)
    offers = pd.read_csv(settings.dbt_project_dir / "seeds" / "offer_catalog.csv")
    effects = effects_model.expected_effects(customers[["customer_id", "value_tier", "has_service_issue",
                                                        "churn_probability"]], offers)
    eligible = offers["eligibility"].eq("any").to_numpy() | offers["eligibility"].eq("item_data").to_numpy()
    assert effects.shape == (20, len(offers)) and np.isnan(effects[:, ~eligible]).all()
    assert effects_model.version == f"{up.registered_model_name}/{result['version']}"


def test_a_model_that_does_not_beat_the_priors_leaves_them_deciding(shop_wh, tmp_path, monkeypatch, caplog):
    """The gate demands more than the model can give: no champion, the decision tagged, and the
    policy's loader says why in one line."""
    from ml.core import registry
    from ml.stages import uplift

    settings = shop_wh[0].replace(mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setattr(uplift, "MIN_QINI_GAIN", 10.0)
    result = uplift.train_uplift(settings)
    up = uplift.uplift_settings(settings)
    assert result["status"] == "kept" and registry.alias_version(up, registry.CHAMPION) is None
    assert "not promoted, prior stays" in registry.version_tags(up, result["version"])["promotion_decision"]
    caplog.clear()
    caplog.set_level(logging.INFO, logger=UPLIFT_LOG)
    assert uplift.load_effect_model(settings) is None
    lines = [r.getMessage() for r in caplog.records if r.name == UPLIFT_LOG]
    assert len(lines) == 1 and "priors decide" in lines[0] and "not promoted, prior stays" in lines[0], lines


def test_orders_only_data_falls_back_to_the_priors_with_one_log_line(tmp_path, caplog):
    from ml.stages import uplift

    settings, _ = _warehouse(tmp_path, 1500, 3, orders_only=True)
    caplog.set_level(logging.INFO, logger=UPLIFT_LOG)
    result = uplift.train_uplift(settings)
    assert result["status"] == "skipped"
    assert uplift.load_effect_model(settings) is None
    lines = [r.getMessage() for r in caplog.records if r.name == UPLIFT_LOG]
    assert len(lines) == 2, lines  # one from training, one from the loader
    assert "not trained (no closed campaign" in lines[0] and "priors" in lines[0]
    assert "never trained" in lines[1] and "priors decide" in lines[1]
