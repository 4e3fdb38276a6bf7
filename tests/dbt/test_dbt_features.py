"""The dbt feature layer: point-in-time correctness, optional sources, labels, incrementality.

Each test builds its own warehouse(s) with ``ml.stages.features.build_features`` (the same call the
pipeline makes, dbt tests included) on raw tables laid out as ingest writes them.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from ml.core.contract import SOURCES
from ml.core.settings import Settings
from ml.core.dbt import run_dbt
from ml.stages.features import build_features
from helpers.raw_tables import (
    create_raw_tables,
    cut_at,
    empty_optional_sources,
    generate_shop,
    insert_rows,
    load_synth_dir,
    synth_available,
)

END = dt.date(2025, 12, 31)
HORIZON = 90
OPTIONAL_FEATURES = [
    "avg_units_per_order", "count_distinct_products", "count_sessions_30d", "count_views_90d",
    "cart_abandonment_rate_90d", "days_since_last_session", "count_reviews", "mean_review_rating",
    "count_tickets", "count_tickets_unresolved", "count_campaign_contacts",
    "campaign_response_rate", "days_since_signup", "region", "age_band", "acquisition_channel",
]


def _settings(warehouse: Path, as_of: dt.date) -> Settings:
    return Settings.load(warehouse=warehouse, as_of=as_of, horizon_days=HORIZON,
                         duckdb_threads=2, duckdb_memory_limit="2GB")


def _warehouse(tmp_path: Path, name: str, source_db: Path | None = None) -> Path:
    """A fresh warehouse folder, its raw layer copied from ``source_db`` when given."""
    warehouse = tmp_path / name
    warehouse.mkdir()
    if source_db is not None:
        (warehouse / "churnwatch.duckdb").write_bytes(source_db.read_bytes())
    return warehouse


def _fill(db: Path, fill) -> None:
    con = duckdb.connect(str(db))
    try:
        fill(con)
    finally:
        con.close()


def _query(warehouse: Path, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(warehouse / "churnwatch.duckdb"), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def _features(warehouse: Path, where: str = "true") -> pd.DataFrame:
    frame = _query(warehouse, f"select * from marts.customer_features where {where}")
    return frame.sort_values(["as_of_date", "customer_id"]).reset_index(drop=True)


def _assert_same_rows(left: pd.DataFrame, right: pd.DataFrame) -> None:
    assert len(left) > 0
    pd.testing.assert_frame_equal(left, right, check_exact=False, rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def shop_db(tmp_path_factory) -> Path:
    """A small shop with every source present (raw layer only)."""
    db = tmp_path_factory.mktemp("shop") / "shop.duckdb"
    _fill(db, lambda con: generate_shop(con, customers=600, seed=3, end_date=END))
    return db


@pytest.fixture(scope="module")
def late_build(shop_db, tmp_path_factory) -> Path:
    """Features built on all the data at the latest as-of date."""
    warehouse = _warehouse(tmp_path_factory.mktemp("late"), "w", shop_db)
    build_features(_settings(warehouse, END))
    return warehouse


def test_every_source_feeds_the_features(late_build):
    frame = _features(late_build, f"as_of_date = date '{END}'")
    for column in OPTIONAL_FEATURES:
        assert frame[column].notna().any(), f"{column} is all NULL although its source has data"


def test_cutoff_features_use_no_later_data(late_build, shop_db, tmp_path):
    """Features at cutoff t are the same on all the data and on the data cut at t."""
    training = _query(late_build, "select cutoff_date from intermediate.int_cutoffs_enumerated "
                                  "where cutoff_role = 'training' order by cutoff_date")["cutoff_date"]
    cutoffs = [training.iloc[0].date(), training.iloc[len(training) // 2].date(), training.iloc[-1].date()]
    for t in cutoffs:
        cut = _warehouse(tmp_path, f"cut-{t}", shop_db)
        _fill(cut / "churnwatch.duckdb", lambda con: cut_at(con, t))
        build_features(_settings(cut, t))
        at_t = f"as_of_date = date '{t}'"
        # a training cutoff of the late run equals the scoring cutoff of a run on data cut at t
        _assert_same_rows(_features(late_build, at_t), _features(cut, at_t))

    # and a run at as-of t on the full data equals one on the cut data, cutoff by cutoff
    t = cutoffs[-1]
    full = _warehouse(tmp_path, f"full-{t}", shop_db)
    build_features(_settings(full, t))
    _assert_same_rows(_features(full), _features(tmp_path / f"cut-{t}"))


def test_orders_only_builds_a_valid_feature_table(shop_db, tmp_path):
    warehouse = _warehouse(tmp_path, "orders-only", shop_db)
    _fill(warehouse / "churnwatch.duckdb", empty_optional_sources)
    result = build_features(_settings(warehouse, END))  # dbt tests included: raises on failure
    assert result["rows"]["customer_features"] > 0 and result["rows"]["training_examples"] > 0
    frame = _features(warehouse)
    for column in OPTIONAL_FEATURES:
        assert frame[column].isna().all(), f"{column} invented without its source"
    for column in ("days_since_last_order", "count_orders_90d", "amount_365d", "days_since_first_order"):
        assert frame[column].notna().all()


def test_daily_incremental_run_matches_a_full_rebuild(shop_db, late_build, tmp_path):
    """as_of + 1 day after a run at as_of: same rows as building from scratch at as_of + 1."""
    day_before, day = END - dt.timedelta(days=1), END
    incremental = _warehouse(tmp_path, "incremental", shop_db)
    first = build_features(_settings(incremental, day_before))
    second = build_features(_settings(incremental, day))
    assert second["training_cutoffs"] == first["training_cutoffs"]  # same grid cutoffs: kept
    kept = _query(incremental, "select count(distinct as_of_date) as n from marts.customer_features where as_of_date "
                               "not in (select cutoff_date from intermediate.int_cutoffs_enumerated "
                               "where cutoff_role = 'contact')")["n"][0]
    assert kept == len(second["training_cutoffs"]) + 1  # yesterday's scoring cutoff dropped
    _assert_same_rows(_features(incremental), _features(late_build))
    examples = "select * from marts.training_examples order by as_of_date, customer_id"
    _assert_same_rows(_query(incremental, examples), _query(late_build, examples))


def test_rerun_at_the_same_as_of_changes_nothing(shop_db, late_build, tmp_path):
    """A second run with nothing new to build (no pending cutoff, no new day) keeps the rows."""
    warehouse = _warehouse(tmp_path, "rerun", shop_db)
    build_features(_settings(warehouse, END))
    again = build_features(_settings(warehouse, END))  # every cutoff built: empty per-cutoff unions
    assert again["rows"]["customer_features"] == len(_features(late_build))
    _assert_same_rows(_features(warehouse), _features(late_build))


def test_dbt_tests_pass_on_a_tier_s_like_shop(tmp_path):
    warehouse = _warehouse(tmp_path, "tier-s")
    db = warehouse / "churnwatch.duckdb"
    if synth_available():
        from ml.synth import generate

        raw_dir = tmp_path / "raw"
        generate(raw_dir, customers=10_000, seed=5, end_date=END, horizon_days=HORIZON, fmt="parquet")
        _fill(db, lambda con: load_synth_dir(con, raw_dir))
    else:
        _fill(db, lambda con: generate_shop(con, customers=10_000, seed=5, end_date=END))
    settings = _settings(warehouse, END)
    result = build_features(settings)
    assert result["rows"]["customer_features"] > 5_000
    assert len(result["training_cutoffs"]) == settings.n_training_cutoffs
    run_dbt(settings, ["docs", "generate", "--select", "+marts.features"])
    assert (warehouse / "dbt" / "target" / "catalog.json").exists()


# ---- labels on hand-made data -------------------------------------------------------------

T0 = dt.date(2025, 9, 9)  # on the default cutoff grid: the backtest cutoff of as-of T0 + 90
AS_OF = T0 + dt.timedelta(days=HORIZON)


def _at(day: dt.date, hh: int = 12, mm: int = 0, ss: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, ss)


def _order(customer: str, ts: dt.datetime, n: int) -> dict:
    return {"order_id": f"{customer}-{n}", "customer_id": customer, "order_ts": ts, "amount": 10.0,
            "status": "completed"}


def test_labels_follow_the_label_window(tmp_path):
    t, d = T0, dt.timedelta
    end = t + d(days=HORIZON)
    orders = [
        _order("inside", _at(t - d(days=10)), 1), _order("inside", _at(t + d(days=5)), 2),
        _order("after-window", _at(t - d(days=10)), 1), _order("after-window", _at(end + d(days=1), 0), 2),
        _order("last-day", _at(t - d(days=3)), 1), _order("last-day", _at(end, 23, 59, 59), 2),
        _order("first-minute", _at(t, 23, 59, 59), 1), _order("first-minute", _at(t + d(days=1), 0), 2),
        _order("gone", _at(t - d(days=40)), 1),
        _order("newcomer", _at(t + d(days=2)), 1),
    ]

    def fill(con):
        create_raw_tables(con)
        insert_rows(con, "orders", orders)

    warehouse = _warehouse(tmp_path, "labels")
    _fill(warehouse / "churnwatch.duckdb", fill)
    build_features(_settings(warehouse, AS_OF))
    examples = _query(warehouse, f"select * from marts.training_examples where as_of_date = date '{t}'")
    labels = dict(zip(examples["customer_id"], examples["is_churned"]))
    assert labels == {"inside": False, "after-window": True, "last-day": False,
                      "first-minute": False, "gone": True}
    assert examples["is_backtest_cutoff"].all()
    row = examples.set_index("customer_id").loc["first-minute"]
    assert row["count_orders_lifetime"] == 1 and row["days_since_last_order"] == 0
    assert set(SOURCES) >= {"orders"}


def test_a_failed_build_names_the_failing_node(tmp_path):
    def fill(con):
        create_raw_tables(con)
        insert_rows(con, "orders", [_order("x", _at(T0), 1) | {"customer_id": None}])

    warehouse = _warehouse(tmp_path, "broken")
    _fill(warehouse / "churnwatch.duckdb", fill)
    with pytest.raises(RuntimeError) as failure:
        build_features(_settings(warehouse, AS_OF))
    message = str(failure.value)
    assert "\n" not in message
    assert "source_not_null_shop_orders_customer_id" in message


def test_cli_full_refresh_rebuilds_the_same_features(late_build, tmp_path):
    """``churnwatch features --full-refresh`` rebuilds every table from raw (the recovery after
    an upgrade changed feature SQL) and lands on the same rows as the incremental history."""
    import json
    import shutil

    from ml.faces.cli import main

    warehouse = tmp_path / "refresh"
    shutil.copytree(late_build, warehouse, ignore=shutil.ignore_patterns("dbt"))
    code = main(["features", "--warehouse", str(warehouse), "--as-of", END.isoformat(),
                 "--horizon-days", str(HORIZON)])
    assert code == 0
    results = json.loads((warehouse / "dbt" / "target" / "run_results.json").read_text())
    assert not results["args"].get("full_refresh")  # an ordinary run: incremental
    code = main(["features", "--warehouse", str(warehouse), "--as-of", END.isoformat(),
                 "--horizon-days", str(HORIZON), "--full-refresh"])
    assert code == 0
    results = json.loads((warehouse / "dbt" / "target" / "run_results.json").read_text())
    assert results["args"]["full_refresh"] is True
    _assert_same_rows(_features(warehouse), _features(late_build))


def test_float_features_are_exact_and_the_same_on_every_build():
    """The macros of ``exact_aggregates.sql`` (money sums, the gap stddev) equal DuckDB's float
    aggregates to float precision and, unlike them, give the same bits however two threads
    split the rows (same inputs, same features, same published scores)."""
    import jinja2

    path = Path(__file__).resolve().parents[2] / "dbt_project" / "macros" / "exact_aggregates.sql"
    macros = jinja2.Environment().from_string(path.read_text()).module
    exact = {"gap_stddev": macros.exact_stddev_samp("gap"),
             "amount": f"cast(sum({macros.exact_money('amount')}) as double)"}
    floats = {"gap_stddev": "stddev_samp(gap)", "amount": "sum(amount)"}
    con = duckdb.connect()
    con.execute("set threads = 2")
    con.execute("""create table facts as
                   select i % 200000 as customer, 1 + hash(i) % 400 as gap,
                          round((hash(i * 7) % 100000) / 100.0 + 0.99, 2)::double as amount
                   from range(3000000) t(i)""")

    def aggregate(expressions: dict) -> dict:
        select = ", ".join(f"{sql} as {name}" for name, sql in expressions.items())
        return con.execute(f"select {select} from facts group by customer order by customer").fetchnumpy()

    first, reference = aggregate(exact), aggregate(floats)
    for name in exact:
        assert abs(first[name] - reference[name]).max() <= 1e-12 * reference[name].max(), name
    for _ in range(3):
        again = aggregate(exact)
        for name in exact:
            assert (again[name] == first[name]).all(), name
    one = con.execute(f"select {exact['gap_stddev']} from (values (3), (NULL)) t(gap)").fetchone()[0]
    assert one is None  # one value: no spread, as stddev_samp
