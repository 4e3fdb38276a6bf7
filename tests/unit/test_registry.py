"""Registry governance with small real models: challenger, gate, manual alias moves, rollback.

The tests share one MLflow store, each with its own registered model; the models are tiny
LightGBM boosters on a synthetic frame, so the registry logic is exercised for real without
training on a generated shop.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ml.core import registry
from ml.model.calibration import fit_calibrator
from ml.model.churn_model import ChurnModel, FeatureSpec, Scorer
from ml.core.settings import Settings
from ml.stages.train.promote import promote_if_better

TEST_CUTOFF = dt.date(2025, 9, 9)


def synthetic_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(1.5 * x1 - x2)))).astype(int)
    return pd.DataFrame({"customer_id": [f"{i:05d}" for i in range(n)], "as_of_date": TEST_CUTOFF,
                         "x1": x1, "x2": x2, "is_churned": y})


def tiny_model(frame: pd.DataFrame, features: list[str], rounds: int) -> ChurnModel:
    import lightgbm as lgb

    spec = FeatureSpec.from_data(frame, features)
    X = spec.matrix(frame)
    fit, calibrate = np.arange(len(frame)) % 2 == 0, np.arange(len(frame)) % 2 == 1
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 1, "num_leaves": 7,
                         "deterministic": True, "force_row_wise": True},
                        lgb.Dataset(X[fit], frame["is_churned"][fit]), rounds)
    margin = booster.predict(X[calibrate], raw_score=True)
    scorer = Scorer(booster, rounds, fit_calibrator(margin, frame["is_churned"][calibrate], "platt"))
    return ChurnModel(spec, scorer, scorer, 90)


def register(settings: Settings, model: ChurnModel, test_cutoff: dt.date = TEST_CUTOFF) -> str:
    import mlflow

    registry.configure(settings)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=model, pip_requirements=["lightgbm"],
                                       registered_model_name=settings.registered_model_name)
    version = str(info.registered_model_version)
    registry.tag_version(settings, version, {"test_cutoff": str(test_cutoff)})
    registry.set_alias(settings, registry.CHALLENGER, version)
    return version


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("registry")


@pytest.fixture
def settings(store, request) -> Settings:
    """One MLflow store for the module, one registered model per test."""
    return Settings.load(warehouse=store, as_of=dt.date(2025, 12, 31), horizon_days=90,
                         model_name=request.node.name.removeprefix("test_")[:40])


@pytest.fixture(scope="module")
def frames():
    return synthetic_frame(4000, 1), synthetic_frame(3000, 2)


def gate(settings, version, model, test):
    from ml.model.metrics import auc, expected_calibration_error

    p = model.backtest_proba(test)
    metrics = {"auc": auc(test["is_churned"], p), "ece": expected_calibration_error(test["is_churned"], p)}
    return promote_if_better(settings, version, test, test["is_churned"].to_numpy(), metrics, TEST_CUTOFF)


def test_gate_promotes_a_better_challenger_and_keeps_a_worse_one(settings, frames):
    train, test = frames
    weak = tiny_model(train, ["x2"], 20)  # sees only one of the two drivers
    strong = tiny_model(train, ["x1", "x2"], 40)
    v1 = register(settings, weak)
    assert gate(settings, v1, weak, test) == (True, "first model: promoted to champion")
    v2 = register(settings, strong)
    promoted, decision = gate(settings, v2, strong, test)
    assert promoted and decision.startswith(f"promoted over v{v1}")
    assert registry.alias_version(settings, registry.CHAMPION).version == v2
    assert registry.alias_version(settings, registry.CHALLENGER).version == v2
    v3 = register(settings, weak)
    promoted, decision = gate(settings, v3, weak, test)
    assert not promoted and decision.startswith(f"kept champion v{v2}")
    tags = registry.version_tags(settings, v3)
    assert tags["promotion_decision"] == decision and tags["promoted"] == "false"
    assert tags["gate_basis"] == "rescored backtest scorer"
    assert registry.alias_version(settings, registry.CHAMPION).version == v2


def test_gate_needs_the_margin_and_respects_the_calibration_tolerance(settings, frames):
    train, test = frames
    model = tiny_model(train, ["x1", "x2"], 40)
    v1 = register(settings, model)
    gate(settings, v1, model, test)
    v2 = register(settings, model)  # the same model again: no AUC gain
    assert gate(settings, v2, model, test)[0] is False
    miscalibrated = tiny_model(train, ["x1", "x2"], 60)
    miscalibrated.backtest = Scorer(miscalibrated.backtest.booster, 60, None)  # raw, then shifted below
    miscalibrated.backtest.calibrator = type("Shift", (), {"method": "shift", "predict": staticmethod(
        lambda m: np.clip(1 / (1 + np.exp(-m)) + 0.2, 0, 1))})()
    v3 = register(settings, miscalibrated)
    lenient = settings.replace(promotion_min_auc_gain=-1.0)  # any AUC is enough; calibration must hold
    promoted, decision = gate(lenient, v3, miscalibrated, test)
    assert not promoted and "ece" in decision


def test_champion_with_a_later_test_cutoff_is_not_comparable(settings, frames):
    train, test = frames
    model = tiny_model(train, ["x1", "x2"], 40)
    v1 = register(settings, model, test_cutoff=TEST_CUTOFF + dt.timedelta(days=30))
    registry.promote(settings, v1, "by hand")
    v2 = register(settings, model)
    promoted, decision = gate(settings, v2, model, test)
    assert not promoted and "not comparable" in decision


def test_manual_alias_moves_are_honoured_and_rollback_restores_the_previous_champion(settings, frames):
    train, test = frames
    v1 = register(settings, tiny_model(train, ["x2"], 20))
    registry.promote(settings, v1, "first")
    v2 = register(settings, tiny_model(train, ["x1", "x2"], 40))
    registry.promote(settings, v2, "gate")
    model, ref = registry.load_champion(settings)
    assert ref.version == v2 and model.features == ["x1", "x2"]
    assert registry.rollback(settings).version == v1
    model, ref = registry.load_champion(settings)
    assert ref.version == v1 and model.features == ["x2"]
    registry.set_alias(settings, registry.CHAMPION, v2)  # a move by hand, as in the MLflow UI
    assert registry.load_champion(settings)[1].version == v2
    assert registry.rollback(settings).version == v1  # v2 remembers whom it replaced
    with pytest.raises(RuntimeError, match="no previous champion"):
        registry.rollback(settings)  # v1 was the first champion
    with pytest.raises(RuntimeError, match="no 'champion' to roll back"):
        registry.rollback(settings.replace(model_name="never_trained"))
