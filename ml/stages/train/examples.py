"""Everything training reads from the warehouse: ``marts.training_examples`` as one float32 matrix.

Only rows whose label window is complete by the as-of date are read, in (cutoff, customer) order,
so the same data always gives the same model; with ``settings.train_exclude_treated`` (off by default)
not the customers a campaign contacted inside the label window (``is_treated_in_label_window``:
their label is the outcome with an intervention, not the risk if the shop does nothing; held-out
controls stay). The backtest's test cutoff is the one dbt marks
(``is_backtest_cutoff``), read with the row counts before any row leaves DuckDB: on large data
the split decides which rows are read at all (see ``read_examples``).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.core.errors import HistoryTooShort
from ml.core.settings import Settings
from ml.core.warehouse import connect, decimals_as_floats, fetch_frame, quote
from ml.model.churn_model import CALENDAR_FEATURES, FeatureSpec, feature_columns
from ml.stages.train.split import (Split, customer_folds, origin_cutoffs, plan_split, sample_key,
                                   sample_threshold, whole_cutoffs)

# the columns baselines, value model and segments read besides the booster's matrix
INFO_COLUMNS = ("days_since_last_order", "days_since_first_order", "mean_days_between_orders",
                "count_orders_lifetime", "amount_lifetime", "amount_365d")
MAX_SEGMENT_LEVELS = 12
# on large data each rolling origin is scored on a stable sample of about this many customers
# (whole customers by the sample key; AUC's standard error there is about 0.0015)
ORIGIN_SCORE_ROWS = 100_000
CHANGED = "training_examples changed while training read it: rerun once the feature build is done"


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
    split: Split | None = None  # the backtest's cutoffs, around dbt's backtest cutoff

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
    if settings.train_exclude_treated:  # the label of a contacted customer is not the risk if nothing is done
        sql += " and not is_treated_in_label_window"
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


def _cutoffs_marked(con, sql: str, params: list) -> tuple[dict[dt.date, int], dt.date | None]:
    """Full-label rows per cutoff, and the cutoff dbt marks as the backtest's."""
    rows = con.execute(f"select as_of_date, count(*), bool_or(is_backtest_cutoff) from ({sql}) group by 1",
                       params).fetchall()
    total = {pd.Timestamp(c).date(): int(k) for c, k, _ in rows}
    marked = [pd.Timestamp(c).date() for c, _, is_backtest in rows if is_backtest]
    return total, (marked[0] if len(marked) == 1 else None)


def _sample_filter(con, settings: Settings, sql: str, params: list, split: Split):
    """On large data: which customers' rows to read, decided in SQL from each customer's row count.

    Returns the fit sample's key threshold, the rolling origins' one, the extra ``where`` clause with
    its parameters, and the number of rows it lets through.
    """
    import pyarrow as pa

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
    n = int(rows[fit].sum() + at_whole[~fit].sum() + at_origins[~fit & scored].sum())  # the rows read
    con.register("train_sample_customers", pa.table({"customer_id": per_customer.column("customer_id"),
                                                     "fit": fit, "origin": scored}).filter(pa.array(fit | scored)))
    where = (" and (customer_id in (select customer_id from train_sample_customers where fit)"
             f" or as_of_date in ({marks(whole)})"
             f" or (as_of_date in ({marks(origins)}) and customer_id in"
             " (select customer_id from train_sample_customers where origin)))")
    return cut, origin_cut, where, [*whole, *origins], n


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
        total, marked = _cutoffs_marked(con, sql, params)
        if not total:
            raise HistoryTooShort("marts.training_examples is empty: not enough history before the as-of date")
        split = plan_split(total, settings.horizon_days, marked)
        spec = feature_spec(con, sql, params)
        segments = [c for c, levels in spec.categories.items() if len(levels) <= MAX_SEGMENT_LEVELS]
        cut, origin_cut, where, extra, n = None, None, "", [], sum(total.values())
        if n > settings.train_max_rows:
            cut, origin_cut, where, extra, n = _sample_filter(con, settings, sql, params, split)
        X = np.empty((n, len(spec.features)), dtype=np.float32)
        y, cutoff, ids, info = np.empty(n, np.int8), np.empty(n, "datetime64[D]"), [], []
        side = ("customer_id", "as_of_date", *INFO_COLUMNS, *segments)
        at = 0
        for batch in con.sql(sql + where, params=[*params, *extra]).to_arrow_reader(batch_rows):
            table = decimals_as_floats(pa.Table.from_batches([batch]))
            m = table.num_rows
            if at + m > n:
                raise RuntimeError(CHANGED)
            X[at:at + m] = spec.matrix(table)
            y[at:at + m] = table.column("is_churned").to_numpy(zero_copy_only=False).astype(np.int8)
            cutoff[at:at + m] = table.column("as_of_date").to_numpy(zero_copy_only=False).astype("datetime64[D]")
            ids.append(table.column("customer_id").to_numpy(zero_copy_only=False))
            info.append(table.select([c for c in side if c in table.column_names]).to_pandas())
            at += m
    if at != n:
        raise RuntimeError(CHANGED)
    codes, customers = pd.factorize(np.concatenate(ids), sort=True)
    del ids
    order = np.lexsort((codes, cutoff))  # as_of_date, then customer_id: same data → same model
    if not np.array_equal(order, np.arange(n)):
        X, y, cutoff, codes = X[order], y[order], cutoff[order], codes[order]
        info = pd.concat(info, ignore_index=True).iloc[order].reset_index(drop=True)
    else:
        info = pd.concat(info, ignore_index=True)
    customers = np.asarray(customers, dtype=object)  # each customer hashed once, then spread to rows
    keys, folds = sample_key(customers)[codes], customer_folds(customers, settings.train_cv_folds)[codes]
    fit_rows = None if cut is None else keys <= cut
    origin_rows = None if origin_cut is None else keys <= origin_cut
    spec.medians = _medians(spec, X, fit_rows)
    return Examples(spec, X, y, cutoff, folds, info, fit_rows, total, keys, origin_rows, split)


def read_frame(settings: Settings, cutoff: dt.date, customers: list | None = None) -> pd.DataFrame:
    """Whole rows of one cutoff (of some ``customers``) as pandas, for a model's pyfunc interface
    (gate, input example)."""
    where = " and as_of_date = ?" + ("" if customers is None else f" and customer_id in ({', '.join('?' * len(customers))})")
    sql, params = _examples_sql(settings, where)
    with connect(settings, read_only=True) as con:
        return fetch_frame(con, sql, [*params, cutoff, *(customers or [])])


def test_cutoff_frame(settings: Settings, data: Examples) -> pd.DataFrame:
    """Every test-cutoff row as pandas (only the promotion gate's champion re-scoring needs it),
    checked to hold the very customers training evaluated."""
    test = data.split.test
    frame = read_frame(settings, test)
    if not np.array_equal(frame["customer_id"].to_numpy(object),
                          data.info.loc[data.rows([test]), "customer_id"].to_numpy(object)):
        raise RuntimeError(CHANGED)
    return frame


def spend_later(settings: Settings) -> pd.Series:
    """Lifetime spend per customer at the as-of date (to check the value model's forecast)."""
    with connect(settings, read_only=True) as con:
        frame = con.sql(
            "select customer_id, amount_lifetime::double as amount_lifetime from marts.customer_features where as_of_date = ?",
            params=[settings.as_of],
        ).df()
    return frame.set_index("customer_id")["amount_lifetime"]
