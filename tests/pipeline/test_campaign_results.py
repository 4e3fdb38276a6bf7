"""Campaign measurement against the generator's truth: the true average effect of every measured
campaign lies inside the 95% interval of its measured lift (treated minus control retention)."""
from __future__ import annotations

import datetime as dt
import json

import duckdb
import pandas as pd
import pytest


AS_OF = dt.date(2025, 12, 31)
HORIZON = 90


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A generated shop with truth; ingest, then dbt build of campaign_results and its staging."""
    from ml.stages.ingest import ingest
    from ml.stages.decide import marts_vars
    from ml.core.settings import Settings
    from ml.synth import generate
    from ml.core.dbt import run_dbt

    shop = tmp_path_factory.mktemp("campaign_shop")
    generate(shop, customers=5000, seed=11, end_date=AS_OF, truth_as_of=AS_OF - dt.timedelta(days=HORIZON),
             horizon_days=HORIZON)
    settings = Settings.load(raw_dir=shop, warehouse=tmp_path_factory.mktemp("campaign_wh"), as_of=AS_OF,
                             horizon_days=HORIZON)
    ingest(settings)
    run_dbt(settings, ["build", "--select", "+campaign_results", "--vars", json.dumps(marts_vars(settings))])
    con = duckdb.connect(str(settings.db_path), read_only=True)
    try:
        results = con.execute("select * from marts.campaign_results").df()
    finally:
        con.close()
    truth = duckdb.sql(f"select * from read_parquet('{shop}/_truth/campaign_effects.parquet')").df()
    return results, truth


def test_every_closed_campaign_is_measured_with_the_right_groups(measured):
    results, truth = measured
    closed = truth[pd.to_datetime(truth["campaign_date"]) + pd.Timedelta(days=HORIZON) <= pd.Timestamp(AS_OF)]
    assert len(closed) >= 4
    overall = results[results["offer_code"] == "ALL"].set_index(["campaign_id", "group"])
    for row in closed.itertuples():
        assert overall.loc[(row.campaign_id, "treated"), "customers"] == row.treated
        assert overall.loc[(row.campaign_id, "control"), "customers"] == row.control
    # campaigns whose window is still open are not measured
    open_ = set(truth["campaign_id"]) - set(closed["campaign_id"])
    assert not open_ & set(results["campaign_id"])
    assert set(results["group"]) == {"treated", "control"}
    assert results["retention_rate"].between(0, 1).all()


def test_true_average_effect_lies_inside_the_interval(measured):
    results, truth = measured
    lifts = results[(results["offer_code"] == "ALL") & (results["group"] == "treated")]
    joined = lifts.merge(truth, on="campaign_id")
    assert len(joined) >= 4
    misses = []
    for row in joined.itertuples():
        assert row.ci_low <= row.lift <= row.ci_high
        assert row.ci_high - row.ci_low < 0.4, "an interval this wide would prove nothing"
        if not row.ci_low <= row.true_average_effect <= row.ci_high:
            misses.append(f"{row.campaign_id}: true effect {row.true_average_effect:.3f} outside "
                          f"[{row.ci_low:.3f}, {row.ci_high:.3f}]")
    # 95% intervals: each misses the truth 1 time in 20, so among k campaigns a miss or two is
    # expected; more than the 99th percentile of Binomial(k, 0.05) means the intervals are too narrow
    from scipy.stats import binom
    allowed = int(binom.ppf(0.99, len(joined), 0.05))
    assert len(misses) <= allowed, f"{len(misses)} of {len(joined)} intervals miss the truth (allowed {allowed}): {misses}"


def test_results_per_offer_add_up_to_the_campaign(measured):
    results, _ = measured
    per_offer = results[results["offer_code"] != "ALL"].groupby(["campaign_id", "group"])[["customers", "retained"]].sum()
    overall = results[results["offer_code"] == "ALL"].set_index(["campaign_id", "group"])[["customers", "retained"]]
    assert per_offer.sort_index().equals(overall.sort_index())
    treated = results[results["group"] == "treated"]
    assert treated[["lift", "ci_low", "ci_high"]].notna().all().all()
    assert results.loc[results["group"] == "control", "lift"].isna().all()
