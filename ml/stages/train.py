"""Train: LightGBM on ``marts.training_examples`` with an honest rolling-origin backtest, in MLflow.

Standing at the backtest cutoff t0 (the latest cutoff whose label window is complete), only labels
observable by t0 may fit, tune or calibrate the model: those of the cutoffs ``t`` with
``t + horizon <= t0`` (the *honest* cutoffs; the latest of them is the validation cutoff).

The same customers appear at every cutoff, and a customer who has left stays left, so a
validation set of the *same* customers at a later cutoff rewards memorising customers: early
stopping then runs to thousands of trees that do worse on new data. Hence every fit is
cross-fitted over customer folds: fold k's booster trains on the other folds' customers at all
honest cutoffs and is early-stopped on fold k's customers at the validation cutoff. The folds'
out-of-fold margins at that cutoff pick the hyper-parameters (a small seeded search), fix the
number of trees and fit the calibrator. The backtest booster is then fitted on every honest row
and evaluated on t0 against three baselines.

The production booster repeats the recipe one horizon later: refitted on every full-label cutoff
(including t0) with the tuned settings and tree count, and calibrated on out-of-fold margins at
t0, so the customers scored today get the freshest labels and the latest season's calibration.
Both scorers travel in the registered model; the promotion gate compares backtest scorers.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.core import registry
from ml.model import plots
from ml.model.baselines import btyd_inputs, fit_baselines, fit_bgnbd
from ml.model.calibration import fit_calibrator
from ml.core.errors import HistoryTooShort
from ml.model.metrics import auc, classification_report, pr_auc, segment_auc
from ml.model.churn_model import CALENDAR_FEATURES, ChurnModel, FeatureSpec, Scorer, feature_columns
from ml.model.model_card import render_model_card
from ml.core.settings import REPO_ROOT, Settings
from ml.model.value import VALUE_DAYS, BTYDValue, evaluate_btyd, fit_value, year_pairs
from ml.core.warehouse import connect, decimals_as_floats, fetch_frame, quote

log = logging.getLogger(__name__)

LGBM_PARAMS = {
    "objective": "binary",
    "metric": "binary_logloss",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 100,
    "feature_fraction": 0.7,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 10.0,
    "cat_smooth": 50.0,
    "min_data_per_group": 200,
    "max_cat_to_onehot": 8,
    "verbose": -1,
    "deterministic": True,
    "force_row_wise": True,
}
SEARCH_SPACE = {  # bounded: every trial is one draw from these, seeded
    "num_leaves": [7, 15, 31, 63],
    "min_data_in_leaf": [50, 100, 200, 400],
    "feature_fraction": [0.5, 0.7, 0.9],
    "lambda_l2": [0.0, 1.0, 10.0, 30.0],
    "balance_classes": [False, True],  # scale_pos_weight = negatives / positives
}
MAX_ROUNDS, PATIENCE = 1000, 50  # a cap keeps reason codes cheap (their cost grows with trees × leaves)
# the columns baselines, value model and segments read besides the booster's matrix
INFO_COLUMNS = ("days_since_last_order", "days_since_first_order", "mean_days_between_orders",
                "count_orders_lifetime", "amount_lifetime", "amount_365d")
MAX_SEGMENT_LEVELS = 12
SHAP_SAMPLE = 1000  # customers in the SHAP summary plot (pred_contrib costs ~1 ms a row)
PLOT_SAMPLE = 100_000  # test customers the curves are drawn from (legends: the metrics of all of them)
# on large data each rolling origin is scored on a stable sample of about this many customers
# (whole customers by the sample key; AUC's standard error there is about 0.0015)
ORIGIN_SCORE_ROWS = 100_000


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


class Timer:
    """Wall time per phase, and wall and CPU time spent inside LightGBM's own training."""

    def __init__(self):
        self.phases: dict[str, float] = {}
        self.lightgbm = 0.0
        self.lightgbm_cpu = 0.0
        self.fits = 0

    @contextmanager
    def phase(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - started

    def fit(self, *args, **kwargs):
        import lightgbm as lgb

        started, cpu = time.perf_counter(), time.process_time()
        try:
            return lgb.train(*args, **kwargs)
        finally:
            self.lightgbm += time.perf_counter() - started
            self.lightgbm_cpu += time.process_time() - cpu
            self.fits += 1

    def construct(self, dataset):
        """LightGBM's binning of a Dataset counts as LightGBM's own time."""
        started, cpu = time.perf_counter(), time.process_time()
        try:
            return dataset.construct()
        finally:
            self.lightgbm += time.perf_counter() - started
            self.lightgbm_cpu += time.process_time() - cpu

    def summary(self) -> dict[str, float]:
        return {**self.phases, "lightgbm_fit": self.lightgbm, "lightgbm_fit_cpu": self.lightgbm_cpu,
                "lightgbm_fits": float(self.fits)}


# ---- data ------------------------------------------------------------------------------------


@dataclass
class Examples:
    """Training examples as the booster's matrix plus the few columns everything else needs.

    On large data (more full-label rows than ``train_max_rows``) only some rows are read: every
    row of the fit sample's customers (``fit_rows``), every row of the cutoffs evaluated whole (the
    test cutoff, see ``whole_cutoffs``) and, at the rolling origins, a stable sample of about
    ``ORIGIN_SCORE_ROWS`` customers each (``origin_rows``).
    """

    spec: FeatureSpec
    X: np.ndarray  # float32 feature matrix
    y: np.ndarray  # 0/1
    cutoff: np.ndarray  # datetime64[D] per row
    fold: np.ndarray  # customer fold per row
    info: pd.DataFrame  # customer_id, as_of_date and INFO_COLUMNS + segment columns
    fit_rows: np.ndarray | None = None  # the boosters' customer sample (None: every row)
    total_rows: dict = field(default_factory=dict)  # full-label rows per cutoff in the warehouse
    sample_key: np.ndarray | None = None  # the customer's stable sample key per row
    origin_rows: np.ndarray | None = None  # the customers the rolling origins are scored on (None: all)

    def rows(self, cutoffs) -> np.ndarray:
        return np.isin(self.cutoff, np.array(list(cutoffs), dtype="datetime64[D]"))

    def fitted(self) -> np.ndarray:
        return np.ones(len(self.y), bool) if self.fit_rows is None else self.fit_rows

    def key(self) -> np.ndarray:
        if self.sample_key is None:
            self.sample_key = sample_key(self.info["customer_id"].to_numpy(object))
        return self.sample_key


def _examples_sql(settings: Settings, where: str = "", ordered: bool = True) -> tuple[str, list]:
    """This horizon's examples with complete labels, in a fixed order (same data → same model)."""
    sql = "select * from marts.training_examples where horizon_days = ?"
    params: list = [settings.horizon_days]
    if settings.as_of is not None:
        sql += " and as_of_date + to_days(horizon_days) <= ?"
        params.append(settings.as_of)
    return sql + where + (" order by as_of_date, customer_id" if ordered else ""), params


def feature_spec(con, sql: str, params: list) -> FeatureSpec:
    """Features and text levels from DuckDB, before any row reaches Python (medians come later)."""
    rel = con.sql(sql, params=params)
    types = dict(zip(rel.columns, (str(t) for t in rel.types)))
    features = feature_columns(rel.columns)
    text = [c for c in features if types[c] == "VARCHAR"]
    numeric = [c for c in features if c not in text]
    categories = {}
    if text:  # every text column's levels in one pass over the examples
        levels = ", ".join(f"list(distinct {quote(c)} order by {quote(c)}) filter (where {quote(c)} is not null)"
                           for c in text)
        categories = dict(zip(text, (list(v or []) for v in con.execute(f"select {levels} from ({sql})", params).fetchall()[0])))
    return FeatureSpec(features + list(CALENDAR_FEATURES), categories, {c: 0.0 for c in numeric})


def _medians(spec: FeatureSpec, X: np.ndarray, rows: np.ndarray | None = None,
             sample_rows: int = 200_000) -> dict[str, float]:
    """Typical value per numeric feature, from a fixed sample of the matrix's ``rows`` (default all;
    exact median over every row of every column would cost DuckDB gigabytes at tier M for a
    reason's wording)."""
    rows = np.arange(len(X)) if rows is None else np.flatnonzero(rows)
    if len(rows) > sample_rows:
        rows = np.sort(rows[np.random.default_rng(0).choice(len(rows), sample_rows, replace=False)])
    out = {}
    for name in spec.medians:
        column = X[rows, spec.features.index(name)]
        out[name] = float(np.nanmedian(column)) if np.isfinite(column).any() else 0.0
    return out


def sample_key(customer_ids: np.ndarray) -> np.ndarray:
    """A stable number in [0, 1) per customer id (a hash): customers enter a sample in its order."""
    ids = np.asarray(customer_ids, dtype=object)
    return pd.util.hash_array(ids, hash_key="churnwatchsample") % np.uint64(1_000_000) / 1_000_000


def sample_threshold(keys: np.ndarray, rows_per_key: np.ndarray, max_rows: int) -> float:
    """The key at or below which about ``max_rows`` rows fall (each key weighted by its rows)."""
    return float(np.quantile(np.repeat(keys, rows_per_key), max_rows / int(rows_per_key.sum())))


def whole_cutoffs(settings: Settings, split: "Split") -> list[dt.date]:
    """The cutoffs where every customer is scored: the test cutoff and (when the value model falls
    back to BTYD) the cutoff its forecast is checked from."""
    out = [split.test]
    if len(year_pairs(split.full)) < 2:
        out.append(btyd_origin(settings, split))
    return sorted({c for c in out if c is not None})


def _key_folds(codes: np.ndarray, customers: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample key and fold per row from the rows' customer codes (each customer hashed once)."""
    return sample_key(customers)[codes], customer_folds(customers, k)[codes]


def read_examples(settings: Settings, batch_rows: int = 500_000) -> Examples:
    """DuckDB → Arrow record batches → one float32 matrix, filled batch by batch.

    Only the matrix and a few side columns are ever held whole; the Arrow data passes through
    one batch at a time, so memory stays near the matrix's own size at any tier. Rows are put in
    (cutoff, customer) order here rather than by DuckDB: sorting every column of every row in the
    database took gigabytes at tier M (measured: 12 GB peak), sorting two keys in numpy does not.

    Above ``train_max_rows`` full-label rows the boosters fit a stable sample of whole customers
    (``customer_sample``'s rule, decided in SQL from each customer's row count), so only the
    sample's rows and the whole cutoffs' rows leave DuckDB: the same rows, in the same order, as
    reading everything and sampling afterwards, at a fraction of the cost.
    """
    import pyarrow as pa

    sql, params = _examples_sql(settings, ordered=False)
    with connect(settings, read_only=True) as con:
        total = {pd.Timestamp(c).date(): int(k) for c, k in
                 con.execute(f"select as_of_date, count(*) from ({sql}) group by 1", params).fetchall()}
        if not total:
            raise HistoryTooShort("marts.training_examples is empty: not enough history before the as-of date")
        spec = feature_spec(con, sql, params)
        segments = [c for c, levels in spec.categories.items() if len(levels) <= MAX_SEGMENT_LEVELS]
        cut, origin_cut, where, extra, n = None, None, "", [], sum(total.values())
        if n > settings.train_max_rows:
            split = plan_split(total, settings.horizon_days)
            whole = whole_cutoffs(settings, split)
            origins = [c for c in origin_cutoffs(settings, split) if c not in whole] or [None]
            marks = lambda cutoffs: ", ".join("?" * len(cutoffs))  # noqa: E731
            per_customer = con.sql(
                f"select customer_id, count(*) as n, count(*) filter (where as_of_date in ({marks(whole)})) as n_whole, "
                f"count(*) filter (where as_of_date in ({marks(origins)})) as n_origins from ({sql}) group by 1",
                params=[*whole, *origins, *params]).to_arrow_table()
            keys = sample_key(per_customer.column("customer_id").to_numpy(zero_copy_only=False))
            rows, at_whole, at_origins = (per_customer.column(c).to_numpy() for c in ("n", "n_whole", "n_origins"))
            cut = sample_threshold(keys, rows, settings.train_max_rows)
            origin_cut = (sample_threshold(keys, at_origins, ORIGIN_SCORE_ROWS * len(origins))
                          if at_origins.sum() > ORIGIN_SCORE_ROWS * len(origins) else 1.0)
            fit, scored = keys <= cut, keys <= origin_cut
            n = int(rows[fit].sum() + at_whole[~fit].sum() + at_origins[~fit & scored].sum())  # the rows read below
            con.register("train_sample_customers", pa.table({"customer_id": per_customer.column("customer_id"),
                                                             "fit": fit, "origin": scored}).filter(pa.array(fit | scored)))
            where = (" and (customer_id in (select customer_id from train_sample_customers where fit)"
                     f" or as_of_date in ({marks(whole)})"
                     f" or (as_of_date in ({marks(origins)}) and customer_id in"
                     " (select customer_id from train_sample_customers where origin)))")
            extra = [*whole, *origins]
            del per_customer, keys, rows, at_whole, at_origins
        X = np.empty((n, len(spec.features)), dtype=np.float32)
        y, cutoff, ids, info = np.empty(n, np.int8), np.empty(n, "datetime64[D]"), [], []
        side = ("customer_id", "as_of_date", *INFO_COLUMNS, *segments)
        at = 0
        for batch in con.sql(sql + where, params=[*params, *extra]).to_arrow_reader(batch_rows):
            table = decimals_as_floats(pa.Table.from_batches([batch]))
            m = table.num_rows
            if at + m > n:
                raise RuntimeError("training_examples changed while training read it: rerun once the feature build is done")
            X[at:at + m] = spec.matrix(table)
            y[at:at + m] = table.column("is_churned").to_numpy(zero_copy_only=False).astype(np.int8)
            cutoff[at:at + m] = table.column("as_of_date").to_numpy(zero_copy_only=False).astype("datetime64[D]")
            ids.append(table.column("customer_id").to_numpy(zero_copy_only=False))
            info.append(table.select([c for c in side if c in table.column_names]).to_pandas())
            at += m
    if at != n:
        raise RuntimeError("training_examples changed while training read it: rerun once the feature build is done")
    codes, customers = pd.factorize(np.concatenate(ids), sort=True)
    del ids
    order = np.lexsort((codes, cutoff))  # as_of_date, then customer_id: same data → same model
    if not np.array_equal(order, np.arange(n)):
        X, y, cutoff, codes = X[order], y[order], cutoff[order], codes[order]
        info = pd.concat(info, ignore_index=True).iloc[order].reset_index(drop=True)
    else:
        info = pd.concat(info, ignore_index=True)
    keys, folds = _key_folds(codes, np.asarray(customers, dtype=object), settings.train_cv_folds)
    fit_rows = None if cut is None else keys <= cut
    origin_rows = None if origin_cut is None else keys <= origin_cut
    spec.medians = _medians(spec, X, fit_rows)
    return Examples(spec, X, y, cutoff, folds, info, fit_rows, total, keys, origin_rows)


def read_frame(settings: Settings, cutoff: dt.date, customers: list | None = None) -> pd.DataFrame:
    """Whole rows of one cutoff (of some ``customers``) as pandas, for a model's pyfunc interface
    (gate, input example)."""
    where = " and as_of_date = ?" + ("" if customers is None else f" and customer_id in ({', '.join('?' * len(customers))})")
    sql, params = _examples_sql(settings, where)
    with connect(settings, read_only=True) as con:
        return fetch_frame(con, sql, [*params, cutoff, *(customers or [])])


def test_cutoff_frame(settings: Settings, data: Examples, split: Split) -> pd.DataFrame:
    """Every test-cutoff row as pandas (only the promotion gate's champion re-scoring needs it),
    checked to hold the very customers training evaluated."""
    frame = read_frame(settings, split.test)
    if not np.array_equal(frame["customer_id"].to_numpy(object),
                          data.info.loc[data.rows([split.test]), "customer_id"].to_numpy(object)):
        raise RuntimeError("training_examples changed while training read it: rerun once the feature build is done")
    return frame


def customer_folds(customer_ids: np.ndarray, k: int) -> np.ndarray:
    """A stable fold per customer (a hash of the id), the same at every cutoff and every run."""
    return (pd.util.hash_array(np.asarray(customer_ids, dtype=object)) % np.uint64(k)).astype(np.int8)


@dataclass(frozen=True)
class Split:
    """The backtest's cutoffs: fit on ``honest`` (≤ ``valid``), test on ``test``; production on ``full``."""

    test: dt.date
    valid: dt.date
    honest: tuple[dt.date, ...]
    full: tuple[dt.date, ...]
    is_honest: bool

    def to_dict(self) -> dict:
        return {"test": str(self.test), "valid": str(self.valid), "honest": [str(c) for c in self.honest],
                "full": [str(c) for c in self.full], "is_honest": self.is_honest}


def training_cutoffs(as_of: dt.date, horizon_days: int, step_days: int, anchor: dt.date | None, n: int) -> list[dt.date]:
    """The full-label training cutoffs, latest first: dbt's ``training_cutoff_dates`` macro, in Python."""
    latest = as_of - dt.timedelta(days=horizon_days)
    if anchor is not None:
        latest -= dt.timedelta(days=(latest - anchor).days % step_days)
    return [latest - dt.timedelta(days=k * step_days) for k in range(n)]


def require_training_history(settings: Settings) -> None:
    """Stop at once, saying what the horizon needs and what was found, when the orders cannot give
    the two full-label training cutoffs a time split needs (dbt drops cutoffs before the first
    order). Raised before any data is read; the error is the user's to fix, so it is not retried."""
    import yaml

    if settings.as_of is None:
        return
    anchor = (yaml.safe_load((settings.dbt_project_dir / "dbt_project.yml").read_text()).get("vars") or {}).get("cutoff_grid_anchor")
    anchor = dt.date.fromisoformat(str(anchor)[:10]) if anchor not in (None, "", "None", "null") else None
    step, horizon, as_of = int(settings.cutoff_step_days), int(settings.horizon_days), settings.as_of
    needed = lambda h: training_cutoffs(as_of, h, step, anchor, 2)[-1]  # noqa: E731
    with connect(settings, read_only=True) as con:
        first = con.execute("select min(cast(order_ts as date)) from raw.orders where cast(order_ts as date) <= ?",
                            [as_of]).fetchone()[0]
    if first is not None and first <= needed(horizon):
        return
    found = f"the orders start on {first}, {(as_of - first).days} days before it" if first else "there are no orders before it"
    longest = next((h for h in range(horizon - 1, 6, -1) if first is not None and first <= needed(h)), None)
    advice = (f"the longest horizon these orders support is {longest} days" if longest
              else "these orders are too short for any horizon")
    raise HistoryTooShort(
        f"history too short for the {horizon}-day horizon: training needs orders from {needed(horizon)} or earlier, "
        f"{(as_of - needed(horizon)).days} days before the as-of date {as_of} (two training cutoffs {step} days apart, "
        f"each followed by {horizon} days of outcomes); {found}. Export older orders or lower --horizon-days ({advice})."
    )


def plan_split(cutoffs, horizon_days: int) -> Split:
    """Test on the latest cutoff; fit on the cutoffs whose labels were complete by then."""
    cutoffs = sorted({pd.Timestamp(c).date() for c in cutoffs})
    if len(cutoffs) < 2:
        raise HistoryTooShort(
            f"need at least 2 training cutoffs with full labels, found {len(cutoffs)}: the data history "
            "is too short for this horizon (lower --horizon-days or the cutoff spacing)"
        )
    test = cutoffs[-1]
    honest = [c for c in cutoffs if c + dt.timedelta(days=horizon_days) <= test]
    is_honest = bool(honest)
    if not is_honest:  # short history: validate on the cutoff before the test, and say so
        log.warning("history too short for a fully honest split: fitting on cutoffs whose labels overlap the test window")
        honest = cutoffs[:-1]
    return Split(test, honest[-1], tuple(honest), tuple(cutoffs), is_honest)


# ---- fit ----------------------------------------------------------------------------------------


@dataclass
class CrossFit:
    params: dict
    iterations: list[int]
    margin: np.ndarray  # out-of-fold margin on the calibration rows
    y: np.ndarray
    score: float  # out-of-fold AUC on the early-stopping rows (the validation cutoff)

    @property
    def num_iteration(self) -> int:
        return max(1, int(round(float(np.mean(self.iterations)))))


def _dataset(timer: Timer, data: Examples, rows: np.ndarray, threads: int):
    """One binned LightGBM Dataset over ``rows``; folds and refits take subsets of it."""
    import lightgbm as lgb

    idx = np.flatnonzero(rows)
    ds = lgb.Dataset(
        data.X[idx], data.y[idx].astype(float), categorical_feature=data.spec.categorical_indices,
        params={"feature_pre_filter": False, "verbose": -1, "num_threads": threads}, free_raw_data=True,
    )
    return timer.construct(ds), idx


def customer_sample(data: Examples, rows: np.ndarray, max_rows: int) -> np.ndarray:
    """``rows`` restricted to a stable share of customers (a hash of the id), about ``max_rows`` rows.

    Whole customers, so every sampled customer keeps all their cutoffs; the same data always
    gives the same sample.
    """
    n = int(rows.sum())
    if n <= max_rows:
        return rows
    u = data.key()
    cut = np.quantile(u[rows], max_rows / n)  # relative to ``rows``: a sample of a sample shrinks too
    return rows & (u <= cut)


def _calibration_rows(rows: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    """A fixed random subset of ``rows`` (all of them when few): enough to pin a calibrator down."""
    n = int(rows.sum())
    if n <= max_rows:
        return rows
    keep = np.zeros_like(rows)
    keep[np.sort(np.random.default_rng(seed).choice(np.flatnonzero(rows), max_rows, replace=False))] = True
    return keep


def cross_fit(timer: Timer, data: Examples, ds, idx: np.ndarray, stop_on: np.ndarray, params: dict,
              folds: int, rounds: int | None = None, calibrate_on: np.ndarray | None = None) -> CrossFit:
    """Customer-fold boosters on ``ds`` (rows ``idx``); out-of-fold margins on ``calibrate_on`` rows.

    Without ``rounds`` each fold is early-stopped on its own customers' ``stop_on`` rows (the
    validation cutoff), which also give the out-of-fold AUC that ranks search candidates.
    ``calibrate_on`` (default: ``stop_on``) may span every cutoff of the fit: fold k's customers
    are unseen by fold k's booster at all of them, and more rows make a steadier calibrator.
    """
    import lightgbm as lgb

    fold = data.fold[idx]
    target = stop_on[idx]
    calibrate = target if calibrate_on is None else calibrate_on[idx]
    margin = np.full(len(idx), np.nan)
    iterations = []
    for k in range(folds):
        train_local = np.flatnonzero(fold != k)
        valid_local = np.flatnonzero(target & (fold == k))
        dtrain = ds.subset(train_local)
        if rounds is None:
            booster = timer.fit(params, dtrain, MAX_ROUNDS, valid_sets=[ds.subset(valid_local)],
                                callbacks=[lgb.early_stopping(PATIENCE, first_metric_only=True, verbose=False)])
            iterations.append(int(booster.best_iteration or booster.current_iteration()))
        else:
            booster = timer.fit(params, dtrain, rounds)
            iterations.append(rounds)
        out_local = np.flatnonzero((target | calibrate) & (fold == k))
        margin[out_local] = booster.predict(data.X[idx[out_local]], num_iteration=iterations[-1], raw_score=True)
    y = data.y[idx]
    return CrossFit(params, iterations, margin[calibrate], y[calibrate], auc(y[target], margin[target]))


def lgbm_params(settings: Settings, overrides: dict, y: np.ndarray) -> dict:
    params = {**LGBM_PARAMS, "seed": settings.seed, "num_threads": settings.train_threads}
    overrides = dict(overrides)
    if overrides.pop("balance_classes", False):
        positives = max(float(y.sum()), 1.0)
        params["scale_pos_weight"] = (len(y) - positives) / positives
        params["metric"] = "auc"  # a reweighted log-loss would judge the reweighting, not the ranking
    return {**params, **overrides}


def search_candidates(trials: int, seed: int) -> list[dict]:
    """The defaults first, then seeded draws from SEARCH_SPACE (no duplicates): reproducible."""
    rng = np.random.default_rng(seed)
    out, seen = [{}], {json.dumps({}, sort_keys=True)}
    for _ in range(50 * max(trials, 1)):
        if len(out) >= trials:
            break
        draw = {k: v[int(rng.integers(len(v)))] for k, v in SEARCH_SPACE.items()}
        draw = {k: (v.item() if hasattr(v, "item") else v) for k, v in draw.items()}
        key = json.dumps(draw, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(draw)
    return out[: max(trials, 1)]


def tune(timer: Timer, settings: Settings, data: Examples, ds, idx, stop_on,
         calibrate_on=None) -> tuple[CrossFit, list[dict]]:
    """Bounded search: each candidate cross-fitted and early-stopped; best out-of-fold AUC wins."""
    best, history = None, []
    for i, overrides in enumerate(search_candidates(settings.train_search_trials, settings.seed)):
        params = lgbm_params(settings, overrides, data.y[idx])
        cf = cross_fit(timer, data, ds, idx, stop_on, params, settings.train_cv_folds, calibrate_on=calibrate_on)
        history.append({"trial": i, **overrides, "cv_auc": cf.score, "iterations": cf.iterations})
        log.info("trial %d %s: cv auc %.4f, trees %s", i, overrides, cf.score, cf.iterations)
        if best is None or cf.score > best.score + 1e-6:  # ties keep the earlier (simpler) candidate
            best = cf
    return best, history


def fit_scorer(timer: Timer, settings: Settings, ds, cf: CrossFit) -> Scorer:
    booster = timer.fit(cf.params, ds, cf.num_iteration)
    calibrator = fit_calibrator(cf.margin, cf.y, settings.calibration_method, seed=settings.seed)
    return Scorer(booster, cf.num_iteration, calibrator)


def origin_cutoffs(settings: Settings, split: Split) -> list[dt.date]:
    """The rolling origins before the test cutoff, newest first."""
    return [c for c in sorted(split.full, reverse=True) if c < split.test][: max(settings.train_backtest_origins - 1, 0)]


def rolling_origins(timer: Timer, settings: Settings, data: Examples, split: Split, params: dict,
                    customers: np.ndarray) -> dict[str, float]:
    """The recipe again, standing at earlier cutoffs: how stable the backtest is over time.

    At each origin o (the cutoffs before the test cutoff, newest first) only labels observable at
    o fit the booster, early-stopped out of fold at the latest of them and calibrated out of fold
    on all of them; the tuned settings are kept (the search ran once, at the test cutoff). Rows
    come from ``customers`` (the search sample on large data); the origin is scored on all its
    customers (on large data: a stable sample of about ORIGIN_SCORE_ROWS, see read_examples).
    """
    out: dict[str, float] = {}
    for origin in origin_cutoffs(settings, split):
        honest = [c for c in split.full if c + dt.timedelta(days=settings.horizon_days) <= origin]
        if not honest:
            break
        fit_rows = data.rows(honest) & customers
        ds, idx = _dataset(timer, data, fit_rows, settings.train_threads)
        cf = cross_fit(timer, data, ds, idx, data.rows([honest[-1]]), params, settings.train_cv_folds,
                       calibrate_on=_calibration_rows(fit_rows, settings.train_calibration_max_rows, settings.seed))
        scorer = fit_scorer(timer, settings, ds, cf)
        rows = data.rows([origin]) if data.origin_rows is None else data.rows([origin]) & data.origin_rows
        report = classification_report(data.y[rows], scorer.proba(data.X[rows]))
        out.update({f"origin/{origin}/{k}": report[k] for k in ("auc", "ece", "brier", "base_rate")})
        out[f"origin/{origin}/scored_rows"] = float(rows.sum())
    return out


# ---- evaluate ------------------------------------------------------------------------------------


def tenure_band(days: np.ndarray) -> np.ndarray:
    return np.select([days < 90, days < 365], ["lt90d", "90-364d"], "365d_plus").astype(object)


def orders_band(count: np.ndarray) -> np.ndarray:
    return np.select([count <= 1, count <= 4], ["1", "2-4"], "5_plus").astype(object)


def segment_report(info: pd.DataFrame, y: np.ndarray, prob: np.ndarray) -> dict[str, dict[str, float]]:
    """AUC per segment: tenure, order count and every low-cardinality categorical feature."""
    segments = {
        "tenure": tenure_band(info["days_since_first_order"].fillna(0).to_numpy(float)),
        "orders": orders_band(info["count_orders_lifetime"].fillna(0).to_numpy(float)),
    }
    for c in info.columns:
        if c not in ("customer_id", "as_of_date", *INFO_COLUMNS):
            segments[c] = info[c].astype("string").fillna("unknown").to_numpy(object)
    return {name: segment_auc(y, prob, values) for name, values in segments.items()}


def _metric_key(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z_\-. /]", "_", str(text))


def feature_set_hash(features: list[str]) -> str:
    return hashlib.sha256(",".join(features).encode()).hexdigest()[:12]


def code_version() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip() or "unknown"
    except Exception:  # noqa: BLE001 - a missing git is not a training failure
        return "unknown"


def btyd_value(settings: Settings, data: "Examples", split: Split):
    """BG/NBD × Gamma-Gamma fitted at the test cutoff; its error from a cutoff about a year back."""
    model, metrics = BTYDValue.fit(data.info[data.rows([split.test])], seed=settings.seed), {}
    origin = btyd_origin(settings, split)
    if origin is not None:
        later = spend_later(settings)
        if len(later):
            metrics = evaluate_btyd(data.info[data.rows([origin])], later, (settings.as_of - origin).days, settings.seed)
    return model, metrics


def btyd_origin(settings: Settings, split: Split) -> dt.date | None:
    """The cutoff about a year before the as-of date the BTYD value forecast is checked from."""
    if settings.as_of is None:
        return None
    year_ago = [c for c in split.full if (settings.as_of - c).days >= VALUE_DAYS]
    return max(year_ago) if year_ago else min(split.full)  # else: the longest window there is


def spend_later(settings: Settings) -> pd.Series:
    """Lifetime spend per customer at the as-of date (to check the value model's forecast)."""
    with connect(settings, read_only=True) as con:
        frame = con.sql(
            "select customer_id, amount_lifetime::double as amount_lifetime from marts.customer_features where as_of_date = ?",
            params=[settings.as_of],
        ).df()
    return frame.set_index("customer_id")["amount_lifetime"]


def evaluate(timer: Timer, settings: Settings, data: Examples, split: Split, best: CrossFit,
             p_test: np.ndarray, customers: np.ndarray) -> tuple[dict, dict, dict, object]:
    """Test-cutoff metrics of the model and the baselines, rolling origins and segment AUCs."""
    honest, test = data.rows(split.honest), data.rows([split.test])
    y_test = data.y[test]
    metrics = {f"test_{k}": v for k, v in classification_report(y_test, p_test).items()}
    metrics.update({"test_rows": float(len(y_test)), "cv_auc": best.score})
    info_honest, info_test = data.info[honest], data.info[test]
    bgnbd = fit_bgnbd(info_honest, seed=settings.seed)
    scores = {"model": p_test}
    for baseline in fit_baselines(info_honest, data.y[honest], settings.horizon_days, bgnbd, settings.seed):
        s = baseline.score(info_test)
        scores[baseline.name] = s
        report = classification_report(y_test, s) if baseline.gives_probability else {"auc": auc(y_test, s)}
        for k in ("auc", "pr_auc", "brier", "ece", "lift_at_10pct"):
            if k in report:
                metrics[f"baseline_{baseline.name}_{k}"] = report[k]
    origins = {f"origin/{split.test}/{k}": metrics[f"test_{k}"] for k in ("auc", "ece", "brier", "base_rate")}
    origins.update(rolling_origins(timer, settings, data, split, best.params, customers))
    aucs = [v for k, v in origins.items() if k.endswith("/auc")]
    metrics.update({**origins, "backtest_origins": float(len(aucs)), "backtest_auc_mean": float(np.mean(aucs)),
                    "backtest_auc_min": float(np.min(aucs)),
                    "backtest_ece_max": max(v for k, v in origins.items() if k.endswith("/ece"))})
    segments = segment_report(info_test.reset_index(drop=True), y_test, p_test)
    for dim, values in segments.items():
        for level, value in values.items():
            metrics[f"segment_auc/{_metric_key(dim)}/{_metric_key(level)}"] = value
    return metrics, scores, segments, bgnbd


# ---- the stage ---------------------------------------------------------------------------------


def train(settings: Settings) -> TrainResult:
    """Backtest, fit, evaluate against baselines, log, register as challenger, run the gate."""
    import mlflow
    from mlflow.models import infer_signature

    started, started_cpu, timer = time.perf_counter(), time.process_time(), Timer()
    registry.configure(settings)

    # prepare data
    require_training_history(settings)
    with timer.phase("load"):
        # on very large data the boosters fit a stable sample of whole customers and only its rows,
        # the test cutoff's (every customer there is scored and evaluated) and a stable customer
        # sample at each earlier rolling origin are read; below train_max_rows, every row
        data = read_examples(settings)
        split = plan_split(data.total_rows, settings.horizon_days)
        fitted = data.fitted()
        honest, test, full = data.rows(split.honest) & fitted, data.rows([split.test]), data.rows(split.full) & fitted
        at_valid, at_test = data.rows([split.valid]), test

    # tune and fit the backtest scorer on honest rows: early-stopped out of fold at the validation
    # cutoff, calibrated on out-of-fold margins at every honest cutoff. On large data the search
    # runs on a stable sample of customers; the chosen settings are then cross-fitted on all rows.
    with timer.phase("backtest"):
        searched = customer_sample(data, honest, settings.train_search_max_rows)
        calibrate = _calibration_rows(honest, settings.train_calibration_max_rows, settings.seed)
        ds_honest, idx_honest = _dataset(timer, data, searched, settings.train_threads)
        if searched.sum() == honest.sum():
            best, trials = tune(timer, settings, data, ds_honest, idx_honest, at_valid, calibrate)
        else:
            chosen, trials = tune(timer, settings, data, ds_honest, idx_honest, at_valid)
            del ds_honest
            ds_honest, idx_honest = _dataset(timer, data, honest, settings.train_threads)
            best = cross_fit(timer, data, ds_honest, idx_honest, at_valid, chosen.params, settings.train_cv_folds,
                             calibrate_on=calibrate)
        backtest = fit_scorer(timer, settings, ds_honest, best)
        del ds_honest

    # production: the same recipe on every full-label cutoff, early-stopping rounds kept, calibrated
    # out of fold at every full-label cutoff
    with timer.phase("production"):
        if settings.train_refit and split.is_honest:
            ds_full, idx_full = _dataset(timer, data, full, settings.train_threads)
            cf_full = cross_fit(timer, data, ds_full, idx_full, at_test, best.params, settings.train_cv_folds,
                                rounds=best.num_iteration,
                                calibrate_on=_calibration_rows(full, settings.train_calibration_max_rows, settings.seed))
            production = fit_scorer(timer, settings, ds_full, cf_full)
            del ds_full
        else:
            cf_full, production = None, backtest

    # evaluate on the test cutoff: model, baselines, rolling origins, segments
    with timer.phase("evaluate"):
        y_test, margin_test = data.y[test], backtest.margin(data.X[test])
        p_test = backtest.proba_from_margin(margin_test)  # = backtest.proba(X), the margin kept for the plots
        metrics, scores, segments, bgnbd = evaluate(timer, settings, data, split, best, p_test,
                                                    customer_sample(data, full, settings.train_search_max_rows))
        metrics.update({"fit_rows_backtest": float(honest.sum()), "fit_rows_production": float(full.sum()),
                        "rows_read": float(len(data.y)), "rows_total": float(sum(data.total_rows.values())),
                        "search_rows": float(searched.sum()), "calibration_rows": float(len(best.y))})
        if cf_full is not None:
            metrics["production_cv_auc"] = cf_full.score

    # value: spend over the next year if retained (ml/model/value.py)
    with timer.phase("value"):
        value_model, value_metrics = fit_value(
            timer.fit, data.spec, data.X, data.y, data.cutoff, data.info,
            {"seed": settings.seed, "num_threads": settings.train_threads},
            lambda: btyd_value(settings, data, split), rows=fitted)
        metrics.update(value_metrics)

    model = ChurnModel(data.spec, production, backtest, settings.horizon_days, value_model)
    tags = {
        "as_of_date": str(settings.as_of),
        "horizon_days": str(settings.horizon_days),
        "data_window": f"{min(split.full)}..{split.test}",
        "label_window_end": str(split.test + dt.timedelta(days=settings.horizon_days)),
        "test_cutoff": str(split.test),
        "split_honest": str(split.is_honest).lower(),
        "feature_set_hash": feature_set_hash(data.spec.features),
        "code_version": code_version(),
        "production_refit": str(production is not backtest).lower(),
    }

    with timer.phase("log"), mlflow.start_run(run_name=f"train-{settings.as_of}-h{settings.horizon_days}") as run:
        mlflow.set_tags(tags)
        mlflow.log_params({
            **{k: v for k, v in best.params.items() if k not in ("verbose", "num_threads")},
            "num_iteration": best.num_iteration, "cv_folds": settings.train_cv_folds,
            "search_trials": len(trials), "calibration": backtest.calibrator.method,
            "production_calibration": production.calibrator.method, "n_features": len(data.spec.features),
            "horizon_days": settings.horizon_days, "train_rows_backtest": int(honest.sum()),
            "train_rows_production": int(full.sum() if production is not backtest else honest.sum()),
        })
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v == v})
        mlflow.log_dict(split.to_dict(), "split_cutoffs.json")
        mlflow.log_dict({"features": data.spec.features, "categories": data.spec.categories}, "feature_schema.json")
        mlflow.log_dict({"trials": trials, "search_space": SEARCH_SPACE}, "search_trials.json")
        mlflow.log_dict(segments, "segment_auc.json")
        mlflow.log_dict({"bgnbd_baseline": bgnbd.to_dict(), "value_model": value_model.to_dict()}, "value_and_btyd.json")
        log_pictures(data, test, model, scores, y_test, p_test, margin_test, metrics)
        gain = backtest.booster.feature_importance("gain")
        top_features = [data.spec.features[i] for i in np.argsort(gain)[::-1][:10]]
        mlflow.log_text(render_model_card(settings, tags, split, metrics, best, trials, data, top_features,
                                          backtest, production, value_model.kind), "model_card.md")
        example = read_frame(settings, split.test, data.info.loc[test, "customer_id"].head(5).tolist())[data.spec.input_columns]
        numeric = [c for c in example.columns if pd.api.types.is_numeric_dtype(example[c])]
        example[numeric] = example[numeric].astype("float64")  # counts may be missing at scoring time
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=model,
            signature=infer_signature(example, model.predict(None, example)),
            input_example=example,
            registered_model_name=settings.registered_model_name,
            pip_requirements=["lightgbm", "scikit-learn", "scipy", "pandas", "numpy", "pyarrow"],
        )
        version = str(info.registered_model_version)

    # register and gate
    with timer.phase("register"):
        registry.tag_version(settings, version, tags)
        registry.set_alias(settings, registry.CHALLENGER, version)
        test_metrics = {k.removeprefix("test_"): float(v) for k, v in metrics.items() if k.startswith("test_")}
        promoted, decision = promote_if_better(settings, version, lambda: test_cutoff_frame(settings, data, split),
                                               y_test, test_metrics, split.test)
        record_performance(settings, version, run.info.run_id, metrics, split.test, promoted, decision, value_model.kind)
    timings = timer.summary()
    with mlflow.start_run(run_id=run.info.run_id):
        mlflow.log_metrics({f"seconds_{k}": v for k, v in timings.items()})
    backtest_frame = pd.DataFrame({"customer_id": data.info.loc[test, "customer_id"].to_numpy(),
                                   "is_churned": y_test, "churn_probability": p_test})
    timings["total_cpu"] = time.process_time() - started_cpu
    result = TrainResult(run.info.run_id, version, test_metrics, promoted, decision,
                         time.perf_counter() - started, timings, backtest_frame)
    log.info("train %s", json.dumps(result.to_dict(), default=str))
    return result


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


def promote_if_better(settings: Settings, version: str, test_frame, y_test: np.ndarray,
                      metrics: dict[str, float], test_cutoff: dt.date) -> tuple[bool, str]:
    """Move ``champion`` to ``version`` when, on the same test cutoff, AUC gains enough and
    calibration holds; tag the decision either way.

    ``test_frame``: the test cutoff's rows, or a function returning them (read only when a champion
    is re-scored). Both versions are judged by their backtest scorers (fitted only on labels observable at their
    own test cutoff), re-scored here on this run's test customers, so a champion whose production
    booster has seen these labels gets no unfair advantage.
    """
    champion = registry.alias_version(settings, registry.CHAMPION)
    if champion is None:
        promoted, decision, basis = True, "first model: promoted to champion", "none"
    else:
        reference, basis = champion_on_test_cutoff(settings, champion.version, test_frame, y_test, test_cutoff)
        if reference is None:
            promoted, decision = False, f"kept champion v{champion.version}: {basis}"
        else:
            gain = metrics["auc"] - reference["auc"]
            ece_increase = metrics["ece"] - reference["ece"]
            promoted = gain >= settings.promotion_min_auc_gain and ece_increase <= settings.promotion_max_ece_increase
            decision = (
                f"{'promoted over v' + champion.version if promoted else 'kept champion v' + champion.version}: "
                f"auc {metrics['auc']:.4f} vs {reference['auc']:.4f} (gain {gain:+.4f}, min {settings.promotion_min_auc_gain}), "
                f"ece {metrics['ece']:.4f} vs {reference['ece']:.4f} (change {ece_increase:+.4f}, max {settings.promotion_max_ece_increase}) "
                f"on test cutoff {test_cutoff}"
            )
    if promoted:
        registry.promote(settings, version, decision)
    registry.tag_version(settings, version, {"promotion_decision": decision, "gate_basis": basis,
                                             "promoted": str(promoted).lower()})
    log.info("promotion gate: %s", decision)
    return promoted, decision


def champion_on_test_cutoff(settings: Settings, version: str, test_frame, y_test: np.ndarray,
                            test_cutoff: dt.date) -> tuple[dict | None, str]:
    """The champion's AUC and ECE on this test cutoff's customers, and how they were obtained."""
    from ml.model.metrics import expected_calibration_error

    tags = registry.version_tags(settings, version)
    own_test = tags.get("test_cutoff")
    if own_test and dt.date.fromisoformat(own_test) > test_cutoff:
        return None, f"its backtest already saw labels after this test cutoff ({own_test} > {test_cutoff}); not comparable"
    try:
        champion = registry.load_version(settings, version)
    except Exception as exc:  # noqa: BLE001 - an unloadable champion is judged by its logged metrics
        logged = registry.version_metrics(settings, version)
        if own_test == str(test_cutoff) and "auc" in logged and "ece" in logged:
            return {"auc": logged["auc"], "ece": logged["ece"]}, f"logged metrics (model not loadable: {exc})"
        return None, f"champion not loadable and not comparable: {exc}"
    proba = champion.backtest_proba if hasattr(champion, "backtest_proba") else champion.predict_proba
    p = proba(test_frame() if callable(test_frame) else test_frame)
    return {"auc": auc(y_test, p), "ece": expected_calibration_error(y_test, p)}, "rescored backtest scorer"


PERFORMANCE_KEYS = ("auc", "pr_auc", "brier", "ece", "lift_at_10pct", "lift_at_20pct", "recall_at_10pct",
                    "recall_at_20pct", "base_rate")


def record_performance(settings: Settings, version: str, run_id: str, metrics: dict, test_cutoff,
                       promoted: bool, decision: str, value_kind: str) -> None:
    """Upsert this version's test metrics into ``ml.model_performance`` (published to analysts)."""
    row = {"model_name": settings.registered_model_name, "model_version": version, "run_id": run_id,
           "as_of_date": settings.as_of, "test_cutoff": test_cutoff, "horizon_days": settings.horizon_days,
           **{k: float(metrics[f"test_{k}"]) for k in PERFORMANCE_KEYS if f"test_{k}" in metrics},
           "test_customers": int(metrics["test_rows"]), "cv_auc": float(metrics.get("cv_auc", np.nan)),
           "backtest_auc_mean": float(metrics.get("backtest_auc_mean", np.nan)),
           **{k: float(v) for k, v in metrics.items() if k.startswith("baseline_") and k.endswith("_auc")},
           **{k: float(v) for k, v in metrics.items() if k in ("value_mae", "value_total_relative_error", "value_spearman")},
           "value_model": value_kind,
           "promoted": promoted, "promotion_decision": decision,
           "trained_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)}
    frame = pd.DataFrame([row])
    with connect(settings) as con:
        con.execute("create schema if not exists ml")
        con.execute("create table if not exists ml.model_performance as select * from frame limit 0")
        existing = {r[0] for r in con.execute("select column_name from information_schema.columns "
                                              "where table_schema = 'ml' and table_name = 'model_performance'").fetchall()}
        for name in frame.columns:  # new metrics become new columns; old rows keep NULL there
            if name not in existing:
                kind = con.execute(f'select typeof("{name}") from frame').fetchall()[0][0]
                con.execute(f'alter table ml.model_performance add column "{name}" {kind}')
        con.execute("delete from ml.model_performance where model_name = ? and model_version = ?",
                    [settings.registered_model_name, version])
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
