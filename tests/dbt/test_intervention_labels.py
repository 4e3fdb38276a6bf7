"""Labels that know about interventions (issue 19 item 5): a training example whose customer was
contacted inside its label window is flagged in ``marts.training_examples`` and left out of
training when ``settings.train_exclude_treated`` is on; held-out controls are kept."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from ml.core.settings import Settings
from ml.stages.features import build_features
from ml.stages.train.examples import read_frame
from helpers.raw_tables import create_raw_tables, insert_rows

HORIZON = 90
T0 = dt.date(2025, 9, 9)  # on the default cutoff grid: the backtest cutoff of as-of T0 + 90
AS_OF = T0 + dt.timedelta(days=HORIZON)
END = T0 + dt.timedelta(days=HORIZON)  # the last day of T0's label window


def _at(day: dt.date, hh: int = 12) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh)


def _contact(customer: str, day: dt.date, control: bool = False, campaign: str = "C1") -> dict:
    return {"campaign_id": campaign, "customer_id": customer, "contact_ts": _at(day, 10), "is_control": control,
            "offer_code": "COUPON10", "channel": "email"}


def test_treated_in_label_window_are_flagged_and_left_out(tmp_path: Path):
    d = dt.timedelta
    customers = ["treated", "treated-on-cutoff", "treated-last-day", "control", "treated-before",
                 "treated-after", "never"]
    orders = [{"order_id": f"{c}-1", "customer_id": c, "order_ts": _at(T0 - d(days=20)), "amount": 10.0,
               "status": "completed"} for c in customers]
    contacts = [
        _contact("treated", T0 + d(days=10)),
        _contact("treated-on-cutoff", T0),
        _contact("treated-last-day", END),
        _contact("control", T0 + d(days=10), control=True),
        _contact("treated-before", T0 - d(days=5), campaign="C0"),
        _contact("treated-after", END + d(days=1), campaign="C2"),
    ]
    warehouse = tmp_path / "wh"
    warehouse.mkdir()
    con = duckdb.connect(str(warehouse / "churnwatch.duckdb"))
    try:
        create_raw_tables(con)
        insert_rows(con, "orders", orders)
        insert_rows(con, "campaign_contacts", contacts)
    finally:
        con.close()
    settings = Settings.load(warehouse=warehouse, as_of=AS_OF, horizon_days=HORIZON, duckdb_threads=2,
                             duckdb_memory_limit="2GB")
    build_features(settings)

    every = read_frame(settings.replace(train_exclude_treated=False), T0)
    flags = dict(zip(every["customer_id"], every["is_treated_in_label_window"]))
    assert flags == {"treated": True, "treated-on-cutoff": True, "treated-last-day": True, "control": False,
                     "treated-before": False, "treated-after": False, "never": False}

    kept = read_frame(settings.replace(train_exclude_treated=True), T0)
    assert sorted(kept["customer_id"]) == ["control", "never", "treated-after", "treated-before"]
    assert not Settings.load().train_exclude_treated  # off by default: see the setting's comment
