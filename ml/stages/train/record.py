"""Log: one MLflow run per training — tags, parameters, metrics, pictures, model card, the model.

The run is the training's whole record: a reader of the registry can tell from it which data and
code made a version (tags), how it was chosen (search trials, split), how good it is against the
baselines (metrics, plots, model card) and load it (the pyfunc model with signature and example).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import subprocess

import numpy as np
import pandas as pd

from ml.core.settings import REPO_ROOT, Settings
from ml.model import plots
from ml.model.churn_model import ChurnModel
from ml.model.metrics import pr_auc
from ml.model.model_card import render_model_card
from ml.stages.train.examples import Examples, read_frame
from ml.stages.train.fit import SEARCH_SPACE, Backtest

SHAP_SAMPLE = 1000  # customers in the SHAP summary plot (pred_contrib costs ~1 ms a row)
PLOT_SAMPLE = 100_000  # test customers the curves are drawn from (legends: the metrics of all of them)
PIP_REQUIREMENTS = ["lightgbm", "scikit-learn", "scipy", "pandas", "numpy", "pyarrow"]


def run_tags(settings: Settings, data: Examples, refitted: bool) -> dict[str, str]:
    """What a version was made from: as-of date, data window, split, feature set and code."""
    split = data.split
    return {
        "as_of_date": str(settings.as_of),
        "horizon_days": str(settings.horizon_days),
        "data_window": f"{min(split.full)}..{split.test}",
        "label_window_end": str(split.test + dt.timedelta(days=settings.horizon_days)),
        "test_cutoff": str(split.test),
        "split_honest": str(split.is_honest).lower(),
        "feature_set_hash": feature_set_hash(data.spec.features),
        "code_version": code_version(),
        "production_refit": str(refitted).lower(),
    }


def feature_set_hash(features: list[str]) -> str:
    return hashlib.sha256(",".join(features).encode()).hexdigest()[:12]


def code_version() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip() or "unknown"
    except Exception:  # noqa: BLE001 - a missing git is not a training failure
        return "unknown"


def log_run(settings: Settings, tags: dict, data: Examples, backtest: Backtest, model: ChurnModel,
            metrics: dict, evaluated: tuple, p_test: np.ndarray, margin_test: np.ndarray) -> tuple[str, str]:
    """Everything about this training in one MLflow run, the model registered; (run id, version).

    ``evaluated``: ``evaluate``'s scores, segments and BG/NBD baseline."""
    import mlflow
    from mlflow.models import infer_signature

    split, best, production = data.split, backtest.best, model.production
    scores, segments, bgnbd = evaluated
    honest, full, test = (data.rows(split.honest) & data.fitted(), data.rows(split.full) & data.fitted(),
                          data.rows([split.test]))
    with mlflow.start_run(run_name=f"train-{settings.as_of}-h{settings.horizon_days}") as run:
        mlflow.set_tags(tags)
        mlflow.log_params({
            **{k: v for k, v in best.params.items() if k not in ("verbose", "num_threads")},
            "num_iteration": best.num_iteration, "cv_folds": settings.train_cv_folds,
            "search_trials": len(backtest.trials), "calibration": backtest.scorer.calibrator.method,
            "production_calibration": production.calibrator.method, "n_features": len(data.spec.features),
            "horizon_days": settings.horizon_days, "train_rows_backtest": int(honest.sum()),
            "train_rows_production": int(full.sum() if production is not backtest.scorer else honest.sum()),
        })
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v == v})
        mlflow.log_dict(split.to_dict(), "split_cutoffs.json")
        mlflow.log_dict({"features": data.spec.features, "categories": data.spec.categories}, "feature_schema.json")
        mlflow.log_dict({"trials": backtest.trials, "search_space": SEARCH_SPACE}, "search_trials.json")
        mlflow.log_dict(segments, "segment_auc.json")
        mlflow.log_dict({"bgnbd_baseline": bgnbd.to_dict(), "value_model": model.value.to_dict()},
                        "value_and_btyd.json")
        y_test = data.y[test]
        log_pictures(data, test, model, scores, y_test, p_test, margin_test, metrics)
        gain = backtest.scorer.booster.feature_importance("gain")
        top_features = [data.spec.features[i] for i in np.argsort(gain)[::-1][:10]]
        mlflow.log_text(render_model_card(settings, tags, split, metrics, best, backtest.trials, data, top_features,
                                          backtest.scorer, production, model.value.kind), "model_card.md")
        example = read_frame(settings, split.test, data.info.loc[test, "customer_id"].head(5).tolist())[data.spec.input_columns]
        numeric = [c for c in example.columns if pd.api.types.is_numeric_dtype(example[c])]
        example[numeric] = example[numeric].astype("float64")  # counts may be missing at scoring time
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=model,
            signature=infer_signature(example, model.predict(None, example)),
            input_example=example,
            registered_model_name=settings.registered_model_name,
            pip_requirements=PIP_REQUIREMENTS,
        )
        return run.info.run_id, str(info.registered_model_version)


def log_timings(run_id: str, timings: dict[str, float]) -> None:
    """The phases' seconds, added to the run once the last phase has ended."""
    import mlflow

    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({f"seconds_{k}": v for k, v in timings.items()})


def log_pictures(data: Examples, test: np.ndarray, model: ChurnModel, scores: dict, y, p, margin,
                 metrics: dict) -> None:
    """ROC, PR, calibration, gains/lift, importance and SHAP summary as run artifacts.

    The curves are drawn from a fixed sample of PLOT_SAMPLE test customers (a picture needs no
    more); their legends carry the AUC and AP of every test customer, as logged in ``metrics``."""
    import mlflow

    probabilities = {"model (calibrated)": p, "model (uncalibrated)": 1 / (1 + np.exp(-margin))}
    probabilities.update({k: v for k, v in scores.items() if k in ("rfm_logistic", "bgnbd")})
    full = {kind: {name: metrics.get("test_" + kind if name == "model" else f"baseline_{name}_{kind}") for name in scores}
            for kind in ("auc", "pr_auc")}
    full["pr_auc"] = {name: pr_auc(y, s) if full["pr_auc"][name] is None else full["pr_auc"][name] for name, s in scores.items()}
    drawn = np.arange(len(y))
    if len(y) > PLOT_SAMPLE:
        drawn = np.sort(np.random.default_rng(0).choice(len(y), PLOT_SAMPLE, replace=False))
    y_drawn, scores_drawn = y[drawn], {k: v[drawn] for k, v in scores.items()}
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(np.flatnonzero(test), min(SHAP_SAMPLE, int(test.sum())), replace=False))
    figures = {
        "plots/roc.png": plots.roc(y_drawn, scores_drawn, full["auc"]),
        "plots/precision_recall.png": plots.precision_recall(y_drawn, scores_drawn, full["pr_auc"]),
        "plots/calibration.png": plots.calibration(y_drawn, {k: v[drawn] for k, v in probabilities.items()}),
        "plots/gains_lift.png": plots.gains(y_drawn, scores_drawn),
        "plots/feature_importance.png": plots.feature_importance(
            data.spec.features, model.backtest.booster.feature_importance("gain")),
        "plots/shap_summary.png": plots.shap_summary(
            data.spec.features, model.backtest.contributions(data.X[sample]), data.X[sample]),
    }
    for path, fig in figures.items():
        mlflow.log_figure(fig, path)
        plots.close(fig)
