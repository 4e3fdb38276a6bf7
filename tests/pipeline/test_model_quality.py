"""The churn model on the session's tier-S shop (``shop_s``): quality against truth and baselines, governance.

One shop, one feature build and two trainings are shared by the whole module (the second
training is the same data and seed, so it must reproduce the first and the gate must keep the
champion). Thresholds are looser than the benchmark's bars, to stay stable at 10k customers.
"""
from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pandas as pd
import pytest

from helpers.run import END_DATE, HORIZON as SHARED_HORIZON, backtest_cutoff


END = dt.date(2025, 12, 31)
HORIZON = 90
TEST_CUTOFF = dt.date(2025, 9, 9)  # the latest 30-day grid cutoff whose label window ends by END
BASELINES = ("days_since_last_order", "rfm_logistic", "bgnbd")


@pytest.fixture(scope="module")
def trained(shop_s, tmp_path_factory):
    """The session's tier-S shop (truth at the test cutoff) → ingest → features (16 cutoffs) → train twice."""
    os.environ.setdefault("CHURNWATCH_PII_SALT", "test-only-salt")
    from ml.stages.ingest import ingest
    from ml.core.settings import Settings
    from ml.stages.train import train
    from ml.stages.features import build_features

    assert (END, HORIZON, backtest_cutoff(END)) == (END_DATE, SHARED_HORIZON, TEST_CUTOFF)  # shop_s's truth date
    base = tmp_path_factory.mktemp("model_quality")
    settings = Settings.load(warehouse=base / "w", raw_dir=shop_s, as_of=END, horizon_days=HORIZON,
                             n_training_cutoffs=16, train_search_trials=2, retrain=True)
    ingest(settings)
    build_features(settings)
    first = train(settings)
    second = train(settings.replace(train_refit=False))
    truth = pd.read_parquet(shop_s / "_truth" / "churn_truth.parquet")
    return settings, first, second, truth


def test_backtest_beats_the_baselines_and_approaches_the_oracle(trained):
    settings, first, _, truth = trained
    from ml.core import registry
    from ml.model.metrics import auc, lift_at

    metrics = registry.version_metrics(settings, first.version)
    assert first.decision == "first model: promoted to champion"
    run = registry.configure(settings).get_run(first.run_id).data.metrics
    for name in BASELINES:
        assert metrics["auc"] > run[f"baseline_{name}_auc"] + 0.005, name
    both = first.backtest.merge(truth, on="customer_id")
    assert len(both) > 0.9 * len(first.backtest)
    ratio = auc(both["is_churned"], both["churn_probability"]) / auc(both["is_churned"], both["true_churn_probability"])
    assert ratio > 0.89, f"oracle ratio {ratio:.3f}"  # ~0.91 at 10k customers (see benchmarks/results)
    assert metrics["ece"] < 0.045  # the estimator's own noise at 7k customers is ~0.015
    assert 0.1 < metrics["brier"] < 0.2
    # lift is capped by 1 / base rate (the generator's churn rate moves it), so judge it against the
    # lift of the true probabilities on the same customers: was a fixed 1.7 at a lower base rate
    true_lift = lift_at(both["is_churned"], both["true_churn_probability"], 0.10)
    assert lift_at(both["is_churned"], both["churn_probability"], 0.10) > 0.9 * true_lift, f"oracle lift {true_lift:.3f}"
    assert run["backtest_origins"] == 3 and run["backtest_auc_min"] > run["baseline_bgnbd_auc"] - 0.02
    assert run["calibration_rows"] > 5 * run["test_rows"]  # out of fold at every honest cutoff, not one


def test_the_run_holds_plots_card_signature_and_tags(trained):
    settings, first, _, _ = trained
    from ml.core import registry

    client = registry.configure(settings)
    files = {a.path for a in client.list_artifacts(first.run_id)}
    files |= {a.path for a in client.list_artifacts(first.run_id, "plots")}
    for name in ("roc", "precision_recall", "calibration", "gains_lift", "feature_importance", "shap_summary"):
        assert f"plots/{name}.png" in files
    assert {"model_card.md", "split_cutoffs.json", "segment_auc.json", "search_trials.json"} <= files
    card = client.download_artifacts(first.run_id, "model_card.md")
    text = open(card).read()
    assert "bgnbd" in text and "Caveats" in text and str(TEST_CUTOFF) in text
    tags = registry.version_tags(settings, first.version)
    assert tags["test_cutoff"] == str(TEST_CUTOFF) and tags["split_honest"] == "true"
    assert {"data_window", "feature_set_hash", "code_version", "promotion_decision"} <= set(tags)
    mv = client.get_model_version(settings.registered_model_name, first.version)
    import mlflow

    info = mlflow.models.get_model_info(f"models:/{settings.registered_model_name}/{mv.version}")
    assert info.signature is not None and "days_since_last_order" in info.signature.inputs.input_names()


def test_same_data_and_seed_give_the_same_model_and_the_gate_keeps_the_champion(trained):
    settings, first, second, _ = trained
    from ml.core import registry

    pd.testing.assert_frame_equal(first.backtest, second.backtest)
    assert second.metrics["auc"] == first.metrics["auc"]
    assert not second.promoted and second.decision.startswith(f"kept champion v{first.version}")
    assert registry.alias_version(settings, registry.CHAMPION).version == first.version
    assert registry.alias_version(settings, registry.CHALLENGER).version == second.version


def test_scoring_follows_the_champion_alias_and_rollback(trained):
    settings, first, second, _ = trained
    from ml.core import registry
    from ml.stages.score import score
    from ml.core.warehouse import connect

    def scored_version():
        score(settings)
        with connect(settings, read_only=True) as con:
            return con.execute("select distinct model_version from scoring.churn_scores").fetchall()

    registry.promote(settings, second.version, "by hand in the test")  # as a model owner would
    assert scored_version() == [(second.version,)]
    registry.rollback(settings)
    assert scored_version() == [(first.version,)]
    with connect(settings, read_only=True) as con:
        scores = con.execute("select * from scoring.churn_scores").df()
    high = scores[scores["risk_tier"] == "high"]
    assert high["reason_1"].notna().mean() > 0.95
    assert not high["reason_1"].isin(["days_since_last_order", "days_since_last_session"]).any()  # text, not names
    assert (scores["predicted_value"] >= 0).all() and scores["predicted_value"].gt(0).mean() > 0.5
    np.testing.assert_allclose(scores["value_at_risk"], scores["churn_probability"] * scores["predicted_value"])


def test_model_performance_has_a_row_per_version(trained):
    settings, first, second, _ = trained
    from ml.core.warehouse import connect

    with connect(settings, read_only=True) as con:
        rows = con.execute("select model_version, as_of_date, test_cutoff, auc, pr_auc, brier, ece, lift_at_10pct, "
                           "baseline_bgnbd_auc, promoted from ml.model_performance order by model_version").fetchall()
    assert [r[0] for r in rows] == [first.version, second.version]
    assert rows[0][1] == END and rows[0][2] == TEST_CUTOFF and rows[0][-1] is True and rows[1][-1] is False
    assert rows[0][3] > rows[0][8]  # beats BG/NBD


def test_value_forecast_beats_the_naive_guess(trained):
    settings, first, _, _ = trained
    from ml.core import registry

    run = registry.configure(settings).get_run(first.run_id).data.metrics
    assert 330 <= run["value_eval_window_days"] <= 365 and run["value_eval_customers"] > 500
    assert run["value_spearman"] > run["value_naive_spearman"] + 0.1
    assert run["value_mae"] < run["value_naive_mae"]
    assert abs(run["value_total_relative_error"]) < 0.15


def test_a_sampled_read_holds_the_rows_of_sampling_after_reading_everything(trained):
    """On large data only the fit sample's customers and the evaluated cutoffs leave DuckDB: the
    same rows, in the same order, as reading every row and sampling whole customers afterwards."""
    from ml.stages.train.examples import read_examples
    from ml.stages.train.split import customer_sample, origin_cutoffs

    settings = trained[0]
    full, part = read_examples(settings), read_examples(settings.replace(train_max_rows=20_000))
    assert full.fit_rows is None and full.total_rows == part.total_rows
    split = part.split
    assert split == full.split and split.test == TEST_CUTOFF  # dbt's is_backtest_cutoff
    assert len(part.y) < len(full.y) and part.total_rows == {c: int(full.rows([c]).sum()) for c in split.full}
    fitted = customer_sample(full, full.rows(split.full), 20_000)
    for a, b in ((fitted, part.fit_rows), *((full.rows([c]), part.rows([c])) for c in (split.test, *origin_cutoffs(settings, split)))):
        assert np.array_equal(full.X[a], part.X[b], equal_nan=True) and np.array_equal(full.y[a], part.y[b])
        assert np.array_equal(full.fold[a], part.fold[b])
        pd.testing.assert_frame_equal(full.info[a].reset_index(drop=True), part.info[b].reset_index(drop=True))
    searched = customer_sample(part, part.rows(split.honest) & part.fit_rows, 5_000)
    assert np.array_equal(full.X[customer_sample(full, full.rows(split.honest) & fitted, 5_000)], part.X[searched], equal_nan=True)
