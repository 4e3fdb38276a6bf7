"""Train: LightGBM on ``marts.training_examples`` with an honest rolling-origin backtest, in MLflow.

``train(settings)`` runs the phases below in order; ``train_if_needed`` runs it when asked or when
the horizon has no champion yet.

Standing at the backtest cutoff t0 (the latest cutoff whose label window is complete, marked by
dbt as ``is_backtest_cutoff``), only labels observable by t0 may fit, tune or calibrate the model:
those of the cutoffs ``t`` with ``t + horizon <= t0`` (the *honest* cutoffs; the latest of them is
the validation cutoff). Every fit is cross-fitted over customer folds (why: :mod:`.fit`); the
folds' out-of-fold margins pick the hyper-parameters (a small seeded search), fix the number of
trees and fit the calibrator. The backtest booster is then fitted on every honest row and
evaluated on t0 against three baselines.

The production booster repeats the recipe one horizon later: refitted on every full-label cutoff
(including t0) with the tuned settings and tree count, and calibrated on out-of-fold margins at
every full-label cutoff, so the customers scored today get the freshest labels and the latest
season's calibration. Both scorers travel in the registered model; the promotion gate compares
backtest scorers.

Modules, in the order a training uses them:

- :mod:`.split` — the backtest's cutoffs around dbt's mark; customer folds and stable samples;
- :mod:`.examples` — everything read from the warehouse (one float32 matrix, sampled on large data);
- :mod:`.fit` — the search, cross-fits and the two scorers (:mod:`.timer` times LightGBM);
- :mod:`.evaluate` — test-cutoff metrics beside the baselines, rolling origins, segments;
- :mod:`.record` — the MLflow run: tags, params, metrics, plots, model card, the model;
- :mod:`.promote` — challenger alias and the gate to champion;
- :mod:`.performance` — the version's row in ``ml.model_performance``.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

import pandas as pd

from ml.core import registry
from ml.core.settings import Settings
from ml.model.churn_model import ChurnModel
from ml.model.value import fit_value
from ml.stages.train.evaluate import btyd_value, evaluate
from ml.stages.train.examples import read_examples, test_cutoff_frame
from ml.stages.train.fit import fit_backtest, fit_production
from ml.stages.train.performance import record_performance
from ml.stages.train.promote import register_and_gate
from ml.stages.train.record import log_run, log_timings, run_tags
from ml.stages.train.split import customer_sample, require_training_history
from ml.stages.train.timer import Timer

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_id: str
    version: str
    metrics: dict[str, float]
    promoted: bool
    decision: str
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    backtest: pd.DataFrame | None = None  # customer_id, is_churned, churn_probability at the test cutoff

    def to_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "model_version": self.version,
            "metrics": self.metrics,
            "promoted": self.promoted,
            "decision": self.decision,
            "seconds": round(self.seconds, 2),
            "timings": {k: round(v, 2) for k, v in self.timings.items()},
        }


def train(settings: Settings) -> TrainResult:
    """Backtest, fit, evaluate against baselines, log, register as challenger, run the gate."""
    started, started_cpu, timer = time.perf_counter(), time.process_time(), Timer()
    registry.configure(settings)

    # prepare data: on very large data the boosters fit a stable sample of whole customers, and only
    # its rows, the test cutoff's and a stable customer sample at each rolling origin are read
    require_training_history(settings)
    with timer.phase("load"):
        data = read_examples(settings)
        split, fitted = data.split, data.fitted()
        honest, test, full = data.rows(split.honest) & fitted, data.rows([split.test]), data.rows(split.full) & fitted

    # train the backtest scorer on honest rows (tuned, cross-fitted, calibrated out of fold)
    with timer.phase("backtest"):
        backtest = fit_backtest(timer, settings, data, honest)

    # train the production scorer: the same recipe on every full-label cutoff
    with timer.phase("production"):
        if settings.train_refit and split.is_honest:
            cf_full, production = fit_production(timer, settings, data, full, backtest.best)
        else:
            cf_full, production = None, backtest.scorer

    # evaluate on the test cutoff: model, baselines, rolling origins, segments
    with timer.phase("evaluate"):
        y_test, margin_test = data.y[test], backtest.scorer.margin(data.X[test])
        p_test = backtest.scorer.proba_from_margin(margin_test)  # = proba(X), the margin kept for the plots
        metrics, scores, segments, bgnbd = evaluate(timer, settings, data, backtest.best, p_test,
                                                    customer_sample(data, full, settings.train_search_max_rows))
        metrics.update({"fit_rows_backtest": float(honest.sum()), "fit_rows_production": float(full.sum()),
                        "rows_read": float(len(data.y)), "rows_total": float(sum(data.total_rows.values())),
                        "search_rows": float(backtest.searched.sum()), "calibration_rows": float(len(backtest.best.y))})
        if cf_full is not None:
            metrics["production_cv_auc"] = cf_full.score

    # value: spend over the next year if retained (ml/model/value.py)
    with timer.phase("value"):
        value_model, value_metrics = fit_value(
            timer.fit, data.spec, data.X, data.y, data.cutoff, data.info,
            {"seed": settings.seed, "num_threads": settings.train_threads},
            lambda: btyd_value(settings, data), rows=fitted)
        metrics.update(value_metrics)

    # log the run and register the model
    model = ChurnModel(data.spec, production, backtest.scorer, settings.horizon_days, value_model)
    tags = run_tags(settings, data, refitted=production is not backtest.scorer)
    with timer.phase("log"):
        run_id, version = log_run(settings, tags, data, backtest, model, metrics, (scores, segments, bgnbd),
                                  p_test, margin_test)

    # challenger, gate, published performance
    with timer.phase("register"):
        test_metrics = {k.removeprefix("test_"): float(v) for k, v in metrics.items() if k.startswith("test_")}
        promoted, decision = register_and_gate(settings, version, tags, lambda: test_cutoff_frame(settings, data),
                                               y_test, test_metrics, split.test)
        record_performance(settings, version, run_id, metrics, split.test, promoted, decision, value_model.kind)
    timings = timer.summary()
    log_timings(run_id, timings)
    backtest_frame = pd.DataFrame({"customer_id": data.info.loc[test, "customer_id"].to_numpy(),
                                   "is_churned": y_test, "churn_probability": p_test})
    timings["total_cpu"] = time.process_time() - started_cpu
    result = TrainResult(run_id, version, test_metrics, promoted, decision,
                         time.perf_counter() - started, timings, backtest_frame)
    log.info("train %s", json.dumps(result.to_dict(), default=str))
    return result


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
