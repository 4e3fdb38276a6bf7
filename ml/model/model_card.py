"""A one-page model card (markdown), logged with every training run as ``model_card.md``."""
from __future__ import annotations

BASELINES = ("days_since_last_order", "rfm_logistic", "bgnbd")


def _f(value, digits: int = 4) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if v != v else f"{v:.{digits}f}"


def _metrics_table(metrics: dict) -> list[str]:
    rows = ["| model | AUC | PR-AUC | Brier | ECE | lift@10% |", "|---|---|---|---|---|---|"]
    rows.append(
        f"| **LightGBM (calibrated)** | **{_f(metrics.get('test_auc'))}** | {_f(metrics.get('test_pr_auc'))} | "
        f"{_f(metrics.get('test_brier'))} | {_f(metrics.get('test_ece'))} | {_f(metrics.get('test_lift_at_10pct'), 2)} |"
    )
    for name in BASELINES:
        m = {k: metrics.get(f"baseline_{name}_{k}") for k in ("auc", "pr_auc", "brier", "ece", "lift_at_10pct")}
        rows.append(f"| {name} | {_f(m['auc'])} | {_f(m['pr_auc'])} | {_f(m['brier'])} | {_f(m['ece'])} | {_f(m['lift_at_10pct'], 2)} |")
    return rows


def _segments(metrics: dict) -> str:
    parts = []
    for key, value in sorted(metrics.items()):
        if key.startswith("segment_auc/"):
            _, dim, level = key.split("/", 2)
            if dim in ("tenure", "orders"):
                parts.append(f"{dim} {level}: {_f(value, 3)}")
    return "; ".join(parts) or "–"


def _origins(metrics: dict) -> str:
    parts = [f"{key.split('/')[1]}: AUC {_f(value, 3)}, ECE {_f(metrics.get(key[:-3] + 'ece'), 3)}"
             for key, value in sorted(metrics.items()) if key.startswith("origin/") and key.endswith("/auc")]
    return "; ".join(parts) or "–"


def _sampling(settings, data, split, metrics: dict) -> list[str]:
    """Where a customer sample stood in for all rows (large data only), in one line."""
    total = int(sum(data.total_rows.values())) if getattr(data, "total_rows", None) else int(data.rows(split.full).sum())
    fitted, searched = int(metrics.get("fit_rows_production", total)), int(metrics.get("search_rows", 0))
    if fitted >= total and searched >= int(metrics.get("fit_rows_backtest", 0)):
        return []
    return [f"- Large data: the boosters fit a stable sample of whole customers ({fitted:,} of {total:,} full-label rows, "
            f"train_max_rows); the search and the rolling origins use {searched:,} honest rows (train_search_max_rows). "
            f"Only those customers' rows, every row of the test cutoff (every customer there is scored and evaluated) "
            f"and a stable customer sample at each earlier rolling origin ({_origin_rows(metrics)} scored) are read "
            f"({int(metrics.get('rows_read', 0)):,} rows)."]


def _origin_rows(metrics: dict) -> str:
    return ", ".join(f"{int(v):,}" for k, v in sorted(metrics.items()) if k.startswith("origin/") and k.endswith("/scored_rows")) or "–"


def render_model_card(settings, tags: dict, split, metrics: dict, best, trials: list, data, top_features: list[str],
                      backtest, production, value_kind: str) -> str:
    """Everything a model owner needs on one page: data, method, results against baselines, caveats."""
    params = {k: best.params[k] for k in ("num_leaves", "min_data_in_leaf", "feature_fraction", "lambda_l2", "learning_rate")}
    if "scale_pos_weight" in best.params:
        params["scale_pos_weight"] = round(best.params["scale_pos_weight"], 3)
    lines = [
        f"# Model card — {settings.registered_model_name}",
        "",
        f"**Predicts** the probability that a customer with at least one order places **no order in the next "
        f"{settings.horizon_days} days** after the as-of date (non-contractual churn). Also carries a 365-day "
        "value forecast (BG/NBD × Gamma-Gamma) and per-customer reason codes (TreeSHAP contributions).",
        "",
        "## Data",
        f"- As-of date {tags['as_of_date']}; training cutoffs {split.full[0]} … {split.test} "
        f"(every {settings.cutoff_step_days} days, {len(split.full)} cutoffs); labels observed up to {tags['label_window_end']}.",
        f"- Backtest: fitted on {len(split.honest)} cutoffs up to {split.valid} ({int(metrics.get('fit_rows_backtest', 0)):,} rows), "
        f"tested on {split.test} ({int(metrics.get('test_rows', 0)):,} customers, churn rate {_f(metrics.get('test_base_rate'), 3)})."
        + ("" if split.is_honest else " **History too short: the fitting labels overlap the test window.**"),
        f"- {len(data.spec.features)} features (set {tags['feature_set_hash']}), strongest: {', '.join(top_features[:8])}.",
        *_sampling(settings, data, split, metrics),
        "",
        "## Method",
        f"- LightGBM, customer-grouped {settings.train_cv_folds}-fold cross-fitting: early stopping on out-of-fold "
        f"margins at the validation cutoff, calibration on out-of-fold margins at every fitted cutoff "
        f"({int(metrics.get('calibration_rows', 0)):,} rows); {len(trials)} seeded search trials; chosen {params}, "
        f"{best.num_iteration} trees (out-of-fold AUC {_f(best.score)}).",
        f"- Calibration: {backtest.calibrator.method} (backtest), {production.calibrator.method} (production).",
        f"- Production booster {'refitted on all ' + str(len(split.full)) + ' full-label cutoffs, calibrated out of fold at ' + str(split.test) if production is not backtest else 'is the backtest booster'}.",
        "",
        f"## Results on the test cutoff {split.test}",
        *_metrics_table(metrics),
        "",
        f"- Recall in the top 10% / 20%: {_f(metrics.get('test_recall_at_10pct'), 3)} / {_f(metrics.get('test_recall_at_20pct'), 3)}.",
        f"- Rolling origins (the recipe re-run standing at earlier cutoffs): {_origins(metrics)}.",
        f"- AUC by segment: {_segments(metrics)}.",
        f"- Value ({value_kind}) checked over {int(metrics.get('value_eval_window_days', 0))} days on "
        f"{int(metrics.get('value_eval_customers', 0)):,} customers: MAE {_f(metrics.get('value_mae'), 2)} "
        f"(naive past-year spend {_f(metrics.get('value_naive_mae'), 2)}), total error {_f(metrics.get('value_total_relative_error'), 3)} "
        f"(naive {_f(metrics.get('value_naive_total_relative_error'), 3)}), rank correlation {_f(metrics.get('value_spearman'), 3)} "
        f"(naive {_f(metrics.get('value_naive_spearman'), 3)}).",
        "",
        "## Caveats",
        "- Reason codes explain the model's score, not the cause of churn; an intervention's effect needs the campaign's control group.",
        "- Calibration pools the fitted cutoffs and relies on the calendar features for the season; a season unlike "
        "any of them (e.g. a new holiday peak inside the horizon) shifts the base rate.",
        "- Customers without any order are out of scope; a customer's first weeks carry little evidence.",
        f"- Code {tags['code_version']}; gate: AUC gain ≥ {settings.promotion_min_auc_gain}, ECE increase ≤ {settings.promotion_max_ece_increase}.",
    ]
    return "\n".join(lines) + "\n"
