"""marts.campaign_outcomes: features at the contact day, the outcome window, churnwatch's own campaigns.

One small shop (every source, a campaign every 60 days) plus a campaign of churnwatch's own in
``retention.audience_decisions`` is built once at the as-of date; the leakage test rebuilds on
the data cut at a contact day and compares.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from helpers.raw_tables import cut_at, generate_shop
from ml.core.settings import Settings
from ml.stages.features import build_features
from ml.stages.ingest import ingest

END = dt.date(2025, 12, 31)
HORIZON = 90
OWN_DAY = dt.date(2025, 11, 20)  # a churnwatch decision day: its outcome window is still open at END
OWN_CAMPAIGN = f"CW-{OWN_DAY:%Y%m%d}-H{HORIZON}"
KEYS = ["campaign_id", "customer_id"]


def _settings(warehouse: Path, as_of: dt.date) -> Settings:
    return Settings.load(warehouse=warehouse, as_of=as_of, horizon_days=HORIZON,
                         duckdb_threads=2, duckdb_memory_limit="2GB")


def _execute(db: Path, *statements: str) -> None:
    con = duckdb.connect(str(db))
    try:
        for sql in statements:
            con.execute(sql)
    finally:
        con.close()


def _query(warehouse: Path, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(warehouse / "churnwatch.duckdb"), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def _copy(source_db: Path, folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "churnwatch.duckdb").write_bytes(source_db.read_bytes())
    return folder


@pytest.fixture(scope="module")
def shop_db(tmp_path_factory) -> Path:
    """The raw layer of a 600-customer shop, and 40 customers picked by churnwatch at OWN_DAY
    (every 4th held out); the shop's export lists one of them under the same campaign a day later."""
    db = tmp_path_factory.mktemp("shop") / "shop.duckdb"
    con = duckdb.connect(str(db))
    try:
        generate_shop(con, customers=600, seed=3, end_date=END)
        con.execute("create schema retention")
        con.execute(f"""
            create table retention.audience_decisions as
            select '{OWN_CAMPAIGN}' as campaign_id, customer_id, 'COUPON10' as offer_code,
                   'email' as channel, row_number() over (order by customer_id) % 4 = 0 as is_control,
                   date '{OWN_DAY}' as as_of_date, {HORIZON} as horizon_days, 0.1 as expected_effect
            from (select distinct customer_id from raw.orders where order_ts < date '{OWN_DAY}'
                  order by customer_id limit 40)""")
        con.execute(f"""
            insert into raw.campaign_contacts
            select campaign_id, customer_id, timestamp '{OWN_DAY + dt.timedelta(days=1)} 09:00:00',
                   false, 'SOMETHING_ELSE', 'sms'
            from retention.audience_decisions order by customer_id limit 1""")
    finally:
        con.close()
    return db


@pytest.fixture(scope="module")
def late_build(shop_db, tmp_path_factory) -> Path:
    warehouse = _copy(shop_db, tmp_path_factory.mktemp("late") / "w")
    build_features(_settings(warehouse, END))  # dbt tests of campaign_outcomes included
    return warehouse


def _outcomes(warehouse: Path, where: str = "true") -> pd.DataFrame:
    frame = _query(warehouse, f"select * from marts.campaign_outcomes where {where}")
    return frame.sort_values(KEYS).reset_index(drop=True)


def test_one_row_per_campaign_and_customer_from_both_sources(late_build, shop_db):
    outcomes = _outcomes(late_build)
    assert not outcomes.duplicated(KEYS).any()
    con = duckdb.connect(str(shop_db), read_only=True)
    shop_pairs = con.execute("select count(distinct (campaign_id, customer_id)) from raw.campaign_contacts").fetchone()[0]
    own = con.execute("select * from retention.audience_decisions").df()
    con.close()
    assert len(outcomes) == shop_pairs + len(own) - 1  # the pair the shop exported too is one row
    mine = outcomes[outcomes["campaign_id"] == OWN_CAMPAIGN]
    assert len(mine) == len(own) and (mine["contact_source"] == "churnwatch").all()
    assert (mine["contact_date"].dt.date == OWN_DAY).all() and (mine["offer_code"] == "COUPON10").all()
    assert mine["is_control"].sum() == own["is_control"].sum() > 0
    # the window (OWN_DAY, OWN_DAY + 90] is still open at END: outcome unknown, not "not retained"
    assert (~mine["is_outcome_known"]).all() and mine["is_retained"].isna().all()
    assert set(outcomes["contact_source"]) == {"shop", "churnwatch"}


def test_outcome_is_an_order_within_the_horizon_after_contact(late_build):
    outcomes = _outcomes(late_build)
    orders = _query(late_build, "select customer_id, cast(order_ts as date) as order_date from raw.orders")
    merged = outcomes[KEYS + ["contact_date"]].merge(orders, on="customer_id", how="left")
    in_window = (merged["order_date"] > merged["contact_date"]) & (
        merged["order_date"] <= merged["contact_date"] + pd.Timedelta(days=HORIZON))
    expected = merged.assign(hit=in_window).groupby(KEYS)["hit"].any().reset_index()
    checked = outcomes.merge(expected, on=KEYS)
    known = checked["contact_date"] + pd.Timedelta(days=HORIZON) <= pd.Timestamp(END)
    assert (checked["is_outcome_known"] == known).all()
    assert known.sum() > 100 and (~known).sum() > 10
    assert (checked.loc[known, "is_retained"].astype(bool) == checked.loc[known, "hit"]).all()
    assert 0 < checked.loc[known, "is_retained"].astype(bool).mean() < 1


@pytest.mark.parametrize("which", ["shop", "churnwatch"])
def test_features_at_a_contact_use_nothing_from_the_contact_day_on(which, late_build, shop_db, tmp_path):
    """A contact's features equal the churn features computed on the data cut at the contact day,
    without that day's contacts (the decision never sees the campaign it makes)."""
    if which == "shop":  # a campaign in the middle of the history: earlier contacts exist
        days = sorted(_outcomes(late_build, "contact_source = 'shop'")["contact_date"].dt.date.unique())
        day = days[len(days) // 2]
    else:
        day = OWN_DAY
    cut = _copy(shop_db, tmp_path / "cut")
    bound = f"timestamp '{day}'"
    _execute(cut / "churnwatch.duckdb", "drop table retention.audience_decisions")
    con = duckdb.connect(str(cut / "churnwatch.duckdb"))
    try:
        cut_at(con, day)
        con.execute(f"delete from raw.campaign_contacts where contact_ts >= {bound}")
    finally:
        con.close()
    build_features(_settings(cut, day))

    at_contact = _outcomes(late_build, f"contact_date = date '{day}' and contact_source = '{which}'")
    active = at_contact[at_contact["is_active_at_contact"]]
    assert len(active) >= 20 and (~at_contact["is_active_at_contact"]).sum() < len(at_contact)
    truncated = _query(cut, f"select * from marts.customer_features where as_of_date = date '{day}'")
    features = [c for c in truncated.columns if c not in ("customer_id", "as_of_date")]
    expected = truncated.set_index("customer_id").loc[active["customer_id"], features].reset_index(drop=True)
    pd.testing.assert_frame_equal(active[features].reset_index(drop=True), expected,
                                  check_exact=False, rtol=1e-9, atol=1e-9, check_dtype=False)
    # treated and held out look alike: no trace of the contact in the campaign features
    assert (active["days_since_last_campaign_contact"] != 0).all()


def test_contact_days_are_cutoffs_beside_the_grid(late_build):
    spine = _query(late_build, "select * from intermediate.int_cutoffs_enumerated")
    contact_days = set(_outcomes(late_build)["contact_date"].dt.date)
    roles = dict(zip(spine["cutoff_date"].dt.date, spine["cutoff_role"]))
    first_order = _query(late_build, "select min(cast(order_ts as date)) as d from raw.orders")["d"][0].date()
    assert all(day in roles for day in contact_days if day >= first_order)
    assert {roles[d] for d in contact_days if d in roles} <= {"contact", "training", "scoring"}
    assert (spine["cutoff_role"] == "contact").sum() >= 5
    built = set(_query(late_build, "select distinct as_of_date from marts.customer_features")["as_of_date"].dt.date)
    assert set(roles) == built


def test_bad_contact_rows_are_quarantined_and_counted(tmp_path):
    """Unknown offer and missing control flag go to quarantine with a reason; a contact after the
    as-of date is counted as not happened yet; staged + quarantined + after as-of = read."""
    raw = tmp_path / "raw"
    raw.mkdir()
    orders = ["order_id,customer_id,order_ts,amount"] + [
        f"O{i},C{i % 50:03d},2025-0{1 + i % 9}-1{i % 10} 10:00:00,{20 + i}" for i in range(200)]
    (raw / "orders.csv").write_text("\n".join(orders) + "\n")
    contacts = ["campaign_id,customer_id,contact_ts,is_control,offer_code,channel"]
    contacts += [f"K1,C{i:03d},2025-06-01 18:00:00,{str(i % 5 == 0).lower()},COUPON10,email" for i in range(50)]
    contacts += [f"K2,C{i:03d},2025-07-01 18:00:00,false,,sms" for i in range(50)]  # no offer: fine
    contacts += ["K3,C001,2025-08-01 18:00:00,false,MYSTERY50,email",  # not in the catalog
                 "K3,C002,2025-08-01 18:00:00,,COUPON15,email",        # control flag missing
                 "K4,C003,2026-03-01 18:00:00,false,COUPON15,email"]   # after the as-of date
    (raw / "campaign_contacts.csv").write_text("\n".join(contacts) + "\n")
    warehouse = tmp_path / "w"
    report = ingest(Settings.load(warehouse=warehouse, raw_dir=raw, as_of=dt.date(2025, 12, 31)), run_id="t")
    counts = report.sources["campaign_contacts"]
    assert counts.rows_read == 103 and counts.rows_staged == 100 and counts.rows_after_as_of == 1
    assert counts.reasons == {"offer_code: not in the offer catalog (dbt_project/seeds/offer_catalog.csv)": 1,
                              "is_control: missing": 1}
    assert counts.reconciles()
    quarantined = _query(warehouse, "select reason, source_values from quarantine.campaign_contacts order by 1")
    assert quarantined["source_values"].str.contains("MYSTERY50").sum() == 1
    staged = _query(warehouse, "select count(*) filter (is_control) as control, count(*) as n from raw.campaign_contacts")
    assert staged["n"][0] == 100 and staged["control"][0] == 10
