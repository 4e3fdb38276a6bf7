"""Scoring benchmark: score with reason codes → policy → recommendations → publish, per tier.

    python benchmarks/bench_scoring.py --tier M      # 1M customers → results/scoring-M.json

Setup (not timed): generate the shop, ingest it, build the features (only the scoring cutoff and
one training cutoff: scoring needs no more), and train a champion on a small shop of the same
generator into a shared MLflow registry (the features have the same columns at any size, and
training speed is another benchmark's business). A previous scoring run a month earlier is
simulated from the scores so that the risk alerts have something to compare with.

Timed, each step as the DAG calls it: ``score`` (probabilities, top-3 reasons, value at risk),
``decide`` (tiers, segments, budgeted policy, control group), ``marts`` (dbt: offer catalog,
segments, co-purchase similarities, recommendations, audience, campaign results, risk alerts, with
their data tests) and ``publish`` (Parquet snapshots, CRM export, catalog swap).
``customers_per_s`` = scored customers / the sum of the timed steps.

Reason codes come from LightGBM's exact TreeSHAP (``pred_contrib``), whose cost grows with trees ×
leaves × depth²; with the current champion it runs at a few hundred rows per second, so a full
1M-customer pass would take hours. Above ``--full-score-limit`` customers the ``score`` step is
therefore measured in parts: loading the population, the probabilities and the write run on every
customer; the reason codes run on a random ``--reason-sample`` and their time is scaled linearly
to the population (``score_reasons_extrapolated`` in the JSON; the other customers get reasons
copied from the sample so the later steps see realistic data). At or below the limit the real
``ml.score.score`` runs.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

TIERS = {"S": 10_000, "M": 1_000_000, "L": 10_000_000}
END_DATE = dt.date(2025, 12, 31)
TRAIN_CUSTOMERS = 20_000
BUDGET_PER_CUSTOMER = 2.0  # a campaign big enough to make recommendations and export real work
TARGET_CUSTOMERS_PER_S = 20_000


def _timed(steps: dict, name: str, fn, *args, **kwargs):
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    steps[name] = round(time.perf_counter() - started, 2)
    print(f"  {name}: {steps[name]}s", flush=True)
    return result


def _shop(path: Path, customers: int, seed: int, setup: dict, name: str) -> Path:
    from ml.synth import generate

    if (path / "orders.parquet").exists():
        return path
    _timed(setup, name, generate, path, customers=customers, seed=seed, end_date=END_DATE)
    return path


def _simulate_previous_scoring(settings, days: int = 30) -> None:
    """A scoring run ``days`` earlier: the same customers, probabilities drawn lower for a few."""
    import duckdb

    previous = settings.as_of - dt.timedelta(days=days)
    con = duckdb.connect(str(settings.db_path))
    try:
        con.execute("delete from scoring.churn_scores where as_of_date = ? and horizon_days = ?",
                    [previous, settings.horizon_days])
        con.execute("""
            insert into scoring.churn_scores by name
            select * replace (
                ?::date as as_of_date,
                greatest(0.0, churn_probability - case when hash(customer_id) % 20 = 0 then 0.3 else 0.02 end)
                    as churn_probability,
                coalesce(reason_3, reason_1) as reason_1)
            from scoring.churn_scores where as_of_date = ? and horizon_days = ?""",
            [previous, settings.as_of, settings.horizon_days])
    finally:
        con.close()


def _score_in_parts(settings, steps: dict, sample_rows: int) -> dict:
    """ml.score.score's work, with the reason codes timed on a sample and scaled (see docstring)."""
    import numpy as np
    import pandas as pd

    from ml import registry
    from ml.reasons import top_reasons
    from ml.score import load_population, predicted_value, risk_tier
    from ml.warehouse import connect

    model, ref = _timed(steps, "score_load_model", registry.load_champion, settings)
    population = _timed(steps, "score_load_population", load_population, settings)
    prob = _timed(steps, "score_probability", model.predict_proba, population)
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(len(population), size=min(sample_rows, len(population)), replace=False))
    started = time.perf_counter()
    sampled = top_reasons(model.contributions(population.iloc[sample]), k=3)
    measured = time.perf_counter() - started
    steps["score_reasons_extrapolated"] = round(measured * len(population) / len(sample), 2)
    print(f"  reasons on {len(sample):,} rows: {measured:.1f}s → {steps['score_reasons_extrapolated']}s "
          f"for {len(population):,}", flush=True)
    donor = np.arange(len(population)) % len(sample)
    reasons = [col[donor] for col in sampled]
    for col, full in zip(sampled, reasons):
        full[sample] = col

    def write() -> None:
        value = predicted_value(population)
        scores = pd.DataFrame({
            "customer_id": population["customer_id"].astype(str).to_numpy(),
            "as_of_date": pd.to_datetime(population["as_of_date"]).dt.date,
            "horizon_days": settings.horizon_days,
            "churn_probability": prob,
            "risk_tier": risk_tier(prob, (("high", settings.risk_tier_high), ("medium", settings.risk_tier_medium),
                                         ("low", 0.0))),
            "predicted_value": value, "value_at_risk": prob * value,
            "reason_1": reasons[0], "reason_2": reasons[1], "reason_3": reasons[2],
            "model_name": settings.registered_model_name, "model_version": ref.version, "run_id": ref.run_id,
            "scored_at": pd.Timestamp(dt.datetime.combine(settings.as_of + dt.timedelta(days=1), dt.time())),
        })
        with connect(settings) as con:
            con.execute("create schema if not exists scoring")
            con.execute("create table if not exists scoring.churn_scores as select * from scores limit 0")
            con.execute("delete from scoring.churn_scores where as_of_date = ? and horizon_days = ?",
                        [settings.as_of, settings.horizon_days])
            con.execute("insert into scoring.churn_scores by name select * from scores")

    _timed(steps, "score_write", write)
    steps["score"] = round(sum(v for k, v in steps.items() if k.startswith("score_")), 2)
    return {"rows": len(population), "reason_sample_rows": len(sample)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="M", choices=sorted(TIERS))
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where shops and warehouses go (default: /tmp/churnwatch-bench-scoring); reused if present")
    parser.add_argument("--clean", action="store_true", help="delete the work folder afterwards")
    parser.add_argument("--full-score-limit", type=int, default=50_000,
                        help="up to this many customers the real ml.score.score runs (default 50,000)")
    parser.add_argument("--train-customers", type=int, default=TRAIN_CUSTOMERS,
                        help="size of the shop the champion is trained on (default 20,000)")
    parser.add_argument("--reason-sample", type=int, default=5_000,
                        help="above the limit: customers whose reason codes are timed (default 5,000)")
    args = parser.parse_args()
    os.environ.setdefault("CHURNWATCH_PII_SALT", "bench-only-salt")

    from ml.ingest import ingest
    from ml.publish import publish
    from ml.retention import build_marts, decide
    from ml.score import score
    from ml.settings import Settings
    from ml.transform import build_features

    customers = TIERS[args.tier]
    work = args.workdir or Path("/tmp/churnwatch-bench-scoring")
    work.mkdir(parents=True, exist_ok=True)
    registry_dir = work / f"registry-{args.train_customers}"
    registry_dir.mkdir(exist_ok=True)
    tracking = f"sqlite:///{registry_dir / 'mlflow.db'}"
    setup: dict[str, float] = {}
    print(f"== scoring benchmark, tier {args.tier} ({customers:,} customers), work in {work}", flush=True)

    # setup: a champion trained on a small shop, in a registry the big warehouse shares
    train_settings = Settings.load(raw_dir=_shop(work / f"shop-train-{args.train_customers}", args.train_customers, 7, setup,
                                                             "generate_train"),
                                   warehouse=work / f"wh-train-{args.train_customers}", as_of=END_DATE, horizon_days=90,
                                   mlflow_tracking_uri=tracking, retrain=True)
    from ml.registry import alias_version

    if alias_version(train_settings, "champion") is None:
        from ml.train import train

        _timed(setup, "ingest_train", ingest, train_settings)
        _timed(setup, "features_train", build_features, train_settings)
        _timed(setup, "train", train, train_settings)

    # setup: the tier's shop, ingested, with features at the scoring cutoff
    settings = Settings.load(raw_dir=_shop(work / f"shop-{args.tier}", customers, 11, setup, "generate"),
                             warehouse=work / f"wh-{args.tier}", as_of=END_DATE, horizon_days=90,
                             mlflow_tracking_uri=tracking, n_training_cutoffs=1,
                             campaign_budget=BUDGET_PER_CUSTOMER * customers)
    if not settings.db_path.exists():
        _timed(setup, "ingest", ingest, settings)
        _timed(setup, "features", build_features, settings)

    # the timed path, as the DAG runs it (a previous scoring simulated in between, untimed)
    steps: dict[str, float] = {}
    score_parts: dict[str, float] = {}
    if customers <= args.full_score_limit:
        scored = _timed(steps, "score", score, settings)
    else:
        scored = _score_in_parts(settings, score_parts, args.reason_sample)
        steps["score"] = score_parts.pop("score")
    _simulate_previous_scoring(settings)
    decided = _timed(steps, "decide", decide, settings)
    marts = _timed(steps, "marts", build_marts, settings)
    published = _timed(steps, "publish", publish, settings)

    total = sum(steps.values())
    after_scoring = total - steps["score"]
    result = {
        "benchmark": "scoring",
        "tier": args.tier,
        "customers": customers,
        "scored_customers": scored["rows"],
        "customers_per_s": round(scored["rows"] / total, 1),
        "target_customers_per_s": TARGET_CUSTOMERS_PER_S,
        "meets_target": scored["rows"] / total >= TARGET_CUSTOMERS_PER_S,
        "total_seconds": round(total, 2),
        "step_seconds": steps,
        "score_parts_seconds": score_parts or None,
        "score_reasons_extrapolated": bool(score_parts),
        "reason_sample_rows": scored.get("reason_sample_rows"),
        "customers_per_s_after_scoring": round(scored["rows"] / after_scoring, 1),
        "setup_seconds": setup,
        "campaign": {k: decided[k] for k in ("campaign_id", "audience", "treated", "control", "budget", "spend",
                                            "expected_net_value")},
        "mart_rows": marts["rows"],
        "crm_export_rows": (published.get("crm_export") or {}).get("rows"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "duckdb_threads": settings.duckdb_threads, "duckdb_memory_limit": settings.duckdb_memory_limit},
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    out = HERE / "results" / f"scoring-{args.tier}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if args.clean:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
