"""Train: LightGBM on ``marts.training_examples`` with an honest time split, tracked in MLflow.

The split simulates standing at the backtest cutoff t0 (the latest cutoff whose label window is
complete): only labels observable by t0 may train or tune the model, so the validation cutoff is
the latest one with ``t + horizon <= t0`` and training uses the cutoffs before it. The test is
cutoff t0 itself. Every run registers a model version with alias ``challenger``; the promotion
gate then decides whether it becomes ``champion``.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import subprocess
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml import registry
from ml.metrics import classification_report
from ml.model import ChurnModel, feature_columns, prepare_matrix
from ml.settings import REPO_ROOT, Settings
from ml.warehouse import connect, fetch_frame

log = logging.getLogger(__name__)

LGBM_PARAMS = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "verbose": -1,
    "deterministic": True,
    "force_row_wise": True,
}


@dataclass
class TrainResult:
    run_id: str
    version: str
    metrics: dict[str, float]
    promoted: bool
    decision: str
    seconds: float

    def to_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "model_version": self.version,
            "metrics": self.metrics,
            "promoted": self.promoted,
            "decision": self.decision,
            "seconds": round(self.seconds, 2),
        }


# ---- data ------------------------------------------------------------------------------------


def load_examples(settings: Settings) -> pd.DataFrame:
    """DuckDB → Arrow → pandas in one columnar transfer, never row by row."""
    with connect(settings, read_only=True) as con:
        return fetch_frame(con, "select * from marts.training_examples order by as_of_date, customer_id")


def split_by_cutoff(examples: pd.DataFrame, horizon_days: int) -> dict[str, pd.DataFrame]:
    """train / valid / test by cutoff date, so no label used to fit is unknown at the test cutoff."""
    cutoffs = sorted(pd.to_datetime(examples["as_of_date"]).dt.date.unique())
    if len(cutoffs) < 3:
        raise RuntimeError(
            f"need at least 3 training cutoffs with full labels, found {len(cutoffs)}: "
            "the data history is too short for this horizon (lower --horizon-days or cutoff spacing)"
        )
    test_cutoff = cutoffs[-1]
    observable = [c for c in cutoffs if c + dt.timedelta(days=horizon_days) <= test_cutoff]
    if len(observable) < 2:  # short history: fall back to adjacent cutoffs, and say so
        log.warning("history too short for a fully honest split; validating on the cutoff before the test")
        observable = cutoffs[:-1]
    valid_cutoff = observable[-1]
    dates = pd.to_datetime(examples["as_of_date"]).dt.date
    return {
        "train": examples[dates < valid_cutoff],
        "valid": examples[dates == valid_cutoff],
        "test": examples[dates == test_cutoff],
    }


def categorical_levels(frame: pd.DataFrame, features: list[str]) -> dict[str, list[str]]:
    return {
        c: sorted(frame[c].dropna().astype(str).unique().tolist())
        for c in features
        if frame[c].dtype == object or str(frame[c].dtype).startswith(("string", "category"))
    }


# ---- fit --------------------------------------------------------------------------------------


def fit_booster(train: pd.DataFrame, valid: pd.DataFrame, features, categories, seed: int):
    import lightgbm as lgb

    X_train, X_valid = (prepare_matrix(f, features, categories) for f in (train, valid))
    y_train, y_valid = train["is_churned"].astype(int), valid["is_churned"].astype(int)
    params = {**LGBM_PARAMS, "seed": seed, "num_threads": 2}
    dtrain = lgb.Dataset(X_train, y_train, free_raw_data=False)
    dvalid = lgb.Dataset(X_valid, y_valid, reference=dtrain)
    booster = lgb.train(
        params,
        dtrain,
        num_boost_round=2000,
        valid_sets=[dvalid],
        callbacks=[lgb.early_stopping(50, verbose=False)],
    )
    return booster


def fit_calibrator(raw_valid: np.ndarray, y_valid):
    """Isotonic regression on the validation cutoff maps scores to honest probabilities."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    iso.fit(raw_valid, np.asarray(y_valid, float))
    return iso


def feature_set_hash(features: list[str]) -> str:
    return hashlib.sha256(",".join(features).encode()).hexdigest()[:12]


def code_version() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip() or "unknown"
    except Exception:  # noqa: BLE001 - a missing git is not a training failure
        return "unknown"


# ---- the stage ---------------------------------------------------------------------------------


def train(settings: Settings) -> TrainResult:
    """Fit, evaluate on the backtest cutoff, log, register as challenger, run the promotion gate."""
    import mlflow
    from mlflow.models import infer_signature

    started = time.perf_counter()
    client = registry.configure(settings)

    # prepare data
    examples = load_examples(settings)
    if examples.empty:
        raise RuntimeError("marts.training_examples is empty: not enough history before the as-of date")
    parts = split_by_cutoff(examples, settings.horizon_days)
    features = feature_columns(examples)
    categories = categorical_levels(examples, features)

    with mlflow.start_run(run_name=f"train-{settings.as_of}-h{settings.horizon_days}") as run:
        # train
        booster = fit_booster(parts["train"], parts["valid"], features, categories, settings.seed)
        model = ChurnModel(booster, None, features, categories, settings.horizon_days)
        model.calibrator = fit_calibrator(model.raw_score(parts["valid"]), parts["valid"]["is_churned"])

        # evaluate on the backtest cutoff
        test_prob = model.predict_proba(parts["test"])
        metrics = {f"test_{k}": v for k, v in classification_report(parts["test"]["is_churned"].astype(int), test_prob).items()}
        cutoffs = {k: sorted(pd.to_datetime(v["as_of_date"]).dt.date.astype(str).unique()) for k, v in parts.items()}

        # log
        mlflow.log_params({**LGBM_PARAMS, "best_iteration": booster.best_iteration, "n_features": len(features),
                           "horizon_days": settings.horizon_days, "seed": settings.seed})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v == v})
        mlflow.log_dict(cutoffs, "split_cutoffs.json")
        mlflow.log_dict({"features": features, "categories": categories}, "feature_schema.json")
        tags = {
            "as_of_date": str(settings.as_of),
            "horizon_days": str(settings.horizon_days),
            "data_window": f"{cutoffs['train'][0]}..{cutoffs['test'][-1]}",
            "feature_set_hash": feature_set_hash(features),
            "code_version": code_version(),
        }
        mlflow.set_tags(tags)
        example = parts["test"][features].head(5)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=model,
            signature=infer_signature(example, model.predict(None, example)),
            input_example=example,
            registered_model_name=settings.registered_model_name,
            pip_requirements=["lightgbm", "scikit-learn", "pandas", "numpy"],
        )
        version = str(info.registered_model_version)

    # register and gate
    registry.tag_version(settings, version, tags)
    registry.set_alias(settings, registry.CHALLENGER, version)
    test_metrics = {k.removeprefix("test_"): float(v) for k, v in metrics.items()}
    promoted, decision = promote_if_better(settings, version, test_metrics)
    record_performance(settings, version, run.info.run_id, test_metrics, cutoffs["test"][-1])
    result = TrainResult(run.info.run_id, version, test_metrics, promoted, decision, time.perf_counter() - started)
    log.info("train %s", json.dumps(result.to_dict(), default=str))
    return result


def promote_if_better(settings: Settings, version: str, metrics: dict[str, float]) -> tuple[bool, str]:
    """Move ``champion`` to ``version`` when AUC gains enough and calibration holds; tag the decision."""
    champion = registry.alias_version(settings, registry.CHAMPION)
    if champion is None:
        promoted, decision = True, "first model: promoted to champion"
    else:
        reference = registry.version_metrics(settings, champion.version)
        gain = metrics["auc"] - reference.get("auc", float("-inf"))
        ece_increase = metrics["ece"] - reference.get("ece", float("inf"))
        promoted = gain >= settings.promotion_min_auc_gain and ece_increase <= settings.promotion_max_ece_increase
        decision = (
            f"{'promoted' if promoted else 'kept champion v' + champion.version}: "
            f"auc gain {gain:+.4f} (min {settings.promotion_min_auc_gain}), "
            f"ece change {ece_increase:+.4f} (max {settings.promotion_max_ece_increase})"
        )
    if promoted:
        registry.set_alias(settings, registry.CHAMPION, version)
    registry.tag_version(settings, version, {"promotion_decision": decision})
    log.info("promotion gate: %s", decision)
    return promoted, decision


def record_performance(settings: Settings, version: str, run_id: str, metrics: dict, test_cutoff: str) -> None:
    """Append this version's test metrics to ``ml.model_performance`` (published to analysts)."""
    row = {"model_name": settings.registered_model_name, "model_version": version, "run_id": run_id,
           "as_of_date": str(settings.as_of), "test_cutoff": str(test_cutoff), "horizon_days": settings.horizon_days,
           **{k: float(v) for k, v in metrics.items()}}
    frame = pd.DataFrame([row])  # noqa: F841 - read by DuckDB below
    with connect(settings) as con:
        con.execute("create schema if not exists ml")
        con.execute("create table if not exists ml.model_performance as select * from frame limit 0")
        con.execute("delete from ml.model_performance where model_name = ? and model_version = ?", [settings.registered_model_name, version])
        con.execute("insert into ml.model_performance by name select * from frame")


def train_if_needed(settings: Settings) -> str:
    """Train when asked, or when this horizon has no champion yet."""
    champion = registry.alias_version(settings, registry.CHAMPION)
    if champion is not None and not settings.retrain:
        log.info("champion v%s kept; no training needed", champion.version)
        return f"kept champion v{champion.version}"
    reason = "retrain requested" if settings.retrain else "no champion yet"
    log.info("training: %s", reason)
    result = train(settings)
    return f"trained v{result.version} ({reason}); {result.decision}"
