"""The synthetic shop: contract-shaped, deterministic, honest truth (fast: small shops only)."""
from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ml.core.contract import EVENT_TYPES, ORDER_STATUSES, SOURCES
from ml.synth import generate

AS_OF = dt.date(2025, 9, 30)
HORIZON = 90
END = AS_OF + dt.timedelta(days=HORIZON)  # label window fully observed
HISTORY = 730


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("shop")
    stats = generate(out, customers=6000, seed=11, end_date=END, truth_as_of=AS_OF,
                     horizon_days=HORIZON)
    return out, stats


def sql(query: str) -> list[tuple]:
    return duckdb.sql(query).fetchall()


def file_hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def auc(score: np.ndarray, label: np.ndarray) -> float:
    """Mann-Whitney AUC with average ranks for ties."""
    ranks = pd.Series(score).rank(method="average").to_numpy()
    pos = label.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# ---- shape of the output ---------------------------------------------------------------------


def test_every_source_written_with_contract_columns_and_types(shop):
    out, stats = shop
    for name, source in SOURCES.items():
        path = out / f"{name}.parquet"
        assert path.is_file(), name
        described = sql(f"DESCRIBE SELECT * FROM '{path}'")
        assert [(r[0], r[1]) for r in described] == [(c.name, c.type) for c in source.columns], name
        assert stats["rows"][name] == pq.ParquetFile(path).metadata.num_rows > 0
        # plain Arrow types too (no dictionary / categorical surprises for pandas users)
        schema = pq.read_schema(path)
        assert all(not str(t).startswith("dictionary") for t in schema.types), name


def test_volumes_near_tier_s_ratios(shop):
    _, stats = shop
    per_customer = {k: v / 6000 for k, v in stats["rows"].items()}
    assert 4 < per_customer["orders"] < 9
    assert 35 < per_customer["events"] < 80
    assert per_customer["order_items"] > per_customer["orders"]


def test_nothing_dated_outside_the_history(shop):
    out, _ = shop
    start = END - dt.timedelta(days=HISTORY - 1)
    for name, source in SOURCES.items():
        ts_cols = [c.name for c in source.columns if c.type == "TIMESTAMP"]
        for col in ts_cols:
            lo, hi = sql(f"SELECT min({col}), max({col}) FROM '{out / name}.parquet'")[0]
            assert lo.date() >= start, (name, col, lo)
            assert hi.date() <= END, (name, col, hi)


def test_categorical_values_follow_the_contract(shop):
    out, _ = shop
    statuses = {r[0] for r in sql(f"SELECT DISTINCT status FROM '{out}/orders.parquet'")}
    assert statuses == set(ORDER_STATUSES)
    types = {r[0] for r in sql(f"SELECT DISTINCT event_type FROM '{out}/events.parquet'")}
    assert types == set(EVENT_TYPES)
    ratings = {r[0] for r in sql(f"SELECT DISTINCT rating FROM '{out}/reviews.parquet'")}
    assert ratings == {1, 2, 3, 4, 5}
    channels = {r[0] for r in sql(f"SELECT DISTINCT channel FROM '{out}/campaign_contacts.parquet'")}
    assert channels == {"email", "sms", "push"}


def test_ids_are_text_with_leading_zeros_and_join_up(shop):
    out, _ = shop
    total, zero_led = sql(f"SELECT count(*), count(*) FILTER (WHERE customer_id LIKE '0%') "
                          f"FROM '{out}/customers.parquet'")[0]
    assert 0 < zero_led < total
    assert sql(f"SELECT count(DISTINCT customer_id) FROM '{out}/customers.parquet'")[0][0] == total
    for name in ("orders", "events", "reviews", "support_tickets", "campaign_contacts"):
        orphans = sql(f"SELECT count(*) FROM '{out}/{name}.parquet' x ANTI JOIN "
                      f"'{out}/customers.parquet' c USING (customer_id)")[0][0]
        assert orphans == 0, name
    assert sql(f"SELECT count(*) FROM '{out}/order_items.parquet' i ANTI JOIN "
               f"'{out}/orders.parquet' o USING (order_id)")[0][0] == 0


def test_amount_is_lines_minus_discount(shop):
    out, _ = shop
    worst = sql(f"""
        SELECT max(abs(o.amount - (l.lines - coalesce(o.discount_amount, 0))))
        FROM '{out}/orders.parquet' o
        JOIN (SELECT order_id, sum(quantity * unit_price) AS lines
              FROM '{out}/order_items.parquet' GROUP BY 1) l USING (order_id)""")[0][0]
    assert worst < 0.011


def test_every_order_ends_a_purchase_session_that_browsed_first(shop):
    out, _ = shop
    missing = sql(f"""
        SELECT count(*) FROM '{out}/orders.parquet' o ANTI JOIN
          (SELECT customer_id, event_ts FROM '{out}/events.parquet' WHERE event_type = 'purchase') e
          ON e.customer_id = o.customer_id AND e.event_ts = o.order_ts""")[0][0]
    assert missing == 0
    bad_funnel = sql(f"""
        SELECT count(*) FROM (
          SELECT session_id,
                 min(event_ts) FILTER (WHERE event_type = 'view') AS first_view,
                 max(event_ts) FILTER (WHERE event_type = 'purchase') AS bought
          FROM '{out}/events.parquet' GROUP BY 1)
        WHERE bought IS NOT NULL AND (first_view IS NULL OR first_view > bought)""")[0][0]
    assert bad_funnel == 0


def test_weekly_and_yearly_seasonality_show(shop):
    out, _ = shop
    by_month = dict(sql(f"SELECT month(order_ts), count(*) FROM '{out}/orders.parquet' "
                        f"WHERE year(order_ts) = 2024 GROUP BY 1"))
    assert by_month[11] + by_month[12] > 1.3 * (by_month[6] + by_month[7])


# ---- determinism -------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    kwargs = dict(customers=800, end_date=END, truth_as_of=AS_OF, history_days=400)
    generate(tmp_path / "a", seed=5, **kwargs)
    generate(tmp_path / "b", seed=5, **kwargs)
    generate(tmp_path / "c", seed=6, **kwargs)
    a, b, c = (file_hashes(tmp_path / x) for x in "abc")
    assert a == b
    assert len(a) == 7 + 3  # sources + truth files
    assert a["orders.parquet"] != c["orders.parquet"]


def test_csv_format_keeps_leading_zeros_and_plain_timestamps(tmp_path):
    stats = generate(tmp_path, customers=500, seed=3, end_date=END, fmt="csv", history_days=300)
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == sorted(f"{s}.csv" for s in SOURCES)
    ids = sql(f"SELECT customer_id FROM read_csv('{tmp_path}/customers.csv', all_varchar=true)")
    assert any(i[0].startswith("0") for i in ids)
    first_line = (tmp_path / "orders.csv").read_text().splitlines()[1]
    assert " " in first_line.split(",")[2] and "." not in first_line.split(",")[2]
    assert stats["rows"]["events"] == sql(f"SELECT count(*) FROM '{tmp_path}/events.csv'")[0][0]


def test_truth_may_lie_after_end_date_without_leaking_data(tmp_path):
    as_of = END + dt.timedelta(days=20)
    generate(tmp_path, customers=400, seed=2, end_date=END, truth_as_of=as_of, history_days=300)
    assert sql(f"SELECT max(order_ts) FROM '{tmp_path}/orders.parquet'")[0][0].date() <= END
    truth = pq.read_table(tmp_path / "_truth" / "churn_truth.parquet").to_pandas()
    assert (truth["truth_as_of"] == as_of).all()


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError):
        generate(tmp_path, customers=0, seed=1, end_date=END)
    with pytest.raises(ValueError):
        generate(tmp_path, customers=10, seed=1, end_date=END, fmt="xlsx")
    with pytest.raises(ValueError):
        generate(tmp_path, customers=10, seed=1, end_date=END, truth_as_of=END - dt.timedelta(days=900))


# ---- the truth is honest -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def realised(shop) -> pd.DataFrame:
    """Truth rows with the churn realised in the data: no order (any status) in (D, D+H]."""
    out, _ = shop
    return duckdb.sql(f"""
        SELECT t.customer_id, t.true_churn_probability AS p,
               NOT EXISTS (SELECT 1 FROM '{out}/orders.parquet' o
                           WHERE o.customer_id = t.customer_id
                             AND o.order_ts >= DATE '{AS_OF}' + 1
                             AND o.order_ts < DATE '{END}' + 1) AS churned
        FROM '{out}/_truth/churn_truth.parquet' t""").df()


def test_truth_has_one_row_per_active_customer(shop):
    out, stats = shop
    truth = pq.read_table(out / "_truth" / "churn_truth.parquet")
    assert truth.column_names == ["customer_id", "truth_as_of", "horizon_days", "true_churn_probability"]
    # active as the pipeline's labels define it: an order of any status on or before D
    active = {r[0] for r in sql(f"SELECT DISTINCT customer_id FROM '{out}/orders.parquet' "
                                f"WHERE order_ts < DATE '{AS_OF}' + 1")}
    ids = truth.column("customer_id").to_pylist()
    assert len(ids) == len(set(ids)) == len(active) == stats["truth"]["active_customers"]
    assert set(ids) == active
    p = truth.column("true_churn_probability").to_numpy()
    assert ((p >= 0) & (p <= 1)).all()
    assert set(truth.column("horizon_days").to_pylist()) == {HORIZON}
    assert (out / "_truth" / "README.txt").read_text().count("true_average_effect") >= 1


def test_churn_rate_in_band_and_truth_calibrated(realised):
    rate = realised["churned"].mean()
    assert 0.30 < rate < 0.60
    assert abs(realised["p"].mean() - rate) < 0.03


def test_truth_is_informative(realised):
    assert auc(realised["p"].to_numpy(), realised["churned"].to_numpy()) > 0.8
    # and not only through the already-dropped-out (p = 1): it ranks the undecided too
    undecided = realised[realised["p"] < 0.999]
    assert auc(undecided["p"].to_numpy(), undecided["churned"].to_numpy()) > 0.7


def test_campaigns_realised_effect_has_the_sign_of_the_truth(shop):
    out, _ = shop
    effects = pq.read_table(out / "_truth" / "campaign_effects.parquet").to_pandas()
    assert len(effects) >= 5
    assert (effects["control"] / effects["contacted"]).between(0.08, 0.25).all()
    done = effects[effects["campaign_date"] + dt.timedelta(days=HORIZON) <= END]
    got = duckdb.sql(f"""
        SELECT c.is_control, avg(CASE WHEN EXISTS (
                   SELECT 1 FROM '{out}/orders.parquet' o WHERE o.customer_id = c.customer_id
                     AND o.order_ts >= c.contact_ts::DATE + 1
                     AND o.order_ts < c.contact_ts::DATE + 1 + {HORIZON}) THEN 1 ELSE 0 END) AS retained
        FROM '{out}/campaign_contacts.parquet' c
        WHERE c.campaign_id IN ({", ".join(repr(x) for x in done["campaign_id"])})
        GROUP BY 1""").df().set_index("is_control")["retained"]
    realised_lift = got[False] - got[True]
    true_lift = np.average(done["true_average_effect"], weights=done["contacted"])
    assert true_lift > 0.02  # most customers respond
    assert np.sign(realised_lift) == np.sign(true_lift)


# ---- the hidden side, replayed ---------------------------------------------------------------------


def test_latent_replay_is_the_shop_that_was_written(shop):
    """latent_states replays the generate call: its truth equals the written truth exactly, and
    its active customers at an earlier cutoff are exactly those with an order in the files."""
    from ml.synth.latent import TRAITS, latent_states

    out, _ = shop
    earlier = AS_OF - dt.timedelta(days=60)
    latent = latent_states(6000, 11, END, [earlier, AS_OF], truth_as_of=AS_OF, horizon_days=HORIZON)

    truth = pq.read_table(out / "_truth" / "churn_truth.parquet").to_pandas()
    at_truth = latent[(latent["as_of_date"] == pd.Timestamp(AS_OF)) & latent["is_active"]]
    merged = truth.merge(at_truth, on="customer_id", how="outer", validate="1:1", indicator=True)
    assert (merged["_merge"] == "both").all()
    np.testing.assert_array_equal(merged["true_churn_probability_x"], merged["true_churn_probability_y"])

    at_earlier = latent[latent["as_of_date"] == pd.Timestamp(earlier)]
    buyers = {r[0] for r in sql(f"SELECT DISTINCT customer_id FROM '{out}/orders.parquet' "
                                f"WHERE order_ts < DATE '{earlier + dt.timedelta(days=1)}'")}
    assert set(at_earlier.loc[at_earlier["is_active"], "customer_id"]) == buyers
    dead = at_earlier["alive"] == 0
    assert dead.any() and (at_earlier.loc[dead, "true_churn_probability"] == 1.0).all()
    assert at_earlier[list(TRAITS)].notna().all().all()
