"""``generate``: build a synthetic shop on disk, optionally with its ground truth."""
from __future__ import annotations

import datetime as dt
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ml.core.contract import SOURCES

from .calendar import Calendar
from .dynamics import History, simulate
from .events import write_events
from .io import SourceWriter, WriteQueue, write_table
from .params import MODEL, ShopModel
from .tables import (build_contacts, build_customers_table, build_orders, build_reviews,
                     build_tickets, campaign_id, customer_ids)
from .truth import campaign_effect, churn_truth
from .world import Customers, build_catalog, build_customers

TRUTH_DIR = "_truth"
# one independent random stream per part, so changing how one part draws leaves the others alone
_STREAMS = ("catalog", "customers", "simulation", "ids", "orders", "reviews", "tickets",
            "contacts", "profiles")


def generate(out_dir: Path, customers: int, seed: int, end_date: dt.date,
             truth_as_of: dt.date | None = None, horizon_days: int = 90,
             fmt: str = "parquet", history_days: int = 730,
             model: ShopModel = MODEL) -> dict:
    """Write a synthetic shop (one file per raw source) to ``out_dir``; return run stats.

    The data covers the days ``(end_date - history_days, end_date]``; nothing is dated later.
    With ``truth_as_of=D`` the true churn probabilities at ``D`` over ``horizon_days`` and the
    true campaign effects go to ``out_dir/_truth/`` (see the README written there). Same
    arguments and seed give byte-identical files. Existing source files in ``out_dir`` (either
    format) and an old ``_truth/`` are replaced.

    Returns ``{"rows": {source: n}, "seconds": s, "stage_seconds": {...}, ...}``.
    """
    end_date, truth_as_of = _as_date(end_date), _as_date(truth_as_of)
    _check_arguments(customers, end_date, truth_as_of, horizon_days, fmt, history_days)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_outputs(out_dir)
    timer = _StageTimer()

    with timer("world"):
        cal, rng, catalog, people, ids = build_world(customers, seed, end_date, truth_as_of,
                                                     horizon_days, history_days, model)
    truth_day = cal.day_of(truth_as_of) if truth_as_of else None
    with timer("simulate"):
        hist = simulate(people, cal, model, rng["simulation"],
                        {truth_day} if truth_day is not None else set())

    rows: dict[str, int] = {}
    with WriteQueue() as queue:
        with timer("tables"):
            orders, order_cols, item_cols = build_orders(hist, people, catalog, cal, model, ids,
                                                         rng["orders"])
            tables = {
                "orders": lambda: order_cols,
                "order_items": lambda: item_cols,
                "customers": lambda: build_customers_table(people, cal, ids, rng["profiles"]),
                "reviews": lambda: build_reviews(orders, cal, ids, rng["reviews"]),
                "support_tickets": lambda: build_tickets(orders, cal, ids, rng["tickets"]),
                "campaign_contacts": lambda: build_contacts(hist, people, cal, ids, rng["contacts"]),
            }
            for source, build in tables.items():
                rows[source] = write_table(out_dir, source, fmt, build(), queue)
            del order_cols, item_cols, tables
        with timer("events"):
            writer = SourceWriter(out_dir, "events", fmt, queue)
            write_events(writer, hist, orders, people, catalog, cal, model, ids, seed)
            writer.close()
            rows["events"] = writer.rows
            queue.drain()

    truth = None
    if truth_as_of is not None:
        with timer("truth"):
            truth = _write_truth(out_dir / TRUTH_DIR, people, hist, cal, model, ids,
                                 truth_as_of, horizon_days)
    return {
        "out_dir": str(out_dir), "customers": customers, "seed": seed,
        "start_date": cal.start.isoformat(), "end_date": end_date.isoformat(), "format": fmt,
        "rows": {s: rows[s] for s in SOURCES if s in rows},
        "seconds": round(timer.total, 3), "stage_seconds": timer.stages, "truth": truth,
    }


def build_world(customers: int, seed: int, end_date: dt.date, truth_as_of: dt.date | None,
                horizon_days: int, history_days: int, model: ShopModel):
    """The calendar, random streams, catalog, customers and ids of one ``generate`` call.

    Shared with :func:`.latent.latent_states`, which replays the same shop to read its hidden
    state: both must draw exactly the same world from the same arguments.
    """
    cal = Calendar.build(end_date, history_days, max(end_date, truth_as_of or end_date),
                         horizon_days, model)
    rng = {name: np.random.default_rng([seed, i]) for i, name in enumerate(_STREAMS)}
    catalog = build_catalog(min(2000, max(300, customers // 5)), rng["catalog"])
    people = build_customers(customers, cal.observed_days, catalog, model, rng["customers"])
    ids = customer_ids(customers, rng["ids"])
    return cal, rng, catalog, people, ids


# ---- the truth files ------------------------------------------------------------------------------


def _write_truth(truth_dir: Path, people: Customers, hist: History, cal: Calendar,
                 model: ShopModel, ids: pa.Array, as_of: dt.date, horizon: int) -> dict:
    truth_dir.mkdir(parents=True, exist_ok=True)
    active, p = churn_truth(people, hist.snapshots[cal.day_of(as_of)], cal, model, horizon)
    pq.write_table(pa.table({
        "customer_id": ids.take(pa.array(active)),
        "truth_as_of": pa.array(np.full(len(active), as_of), pa.date32()),
        "horizon_days": pa.array(np.full(len(active), horizon, np.int32)),
        "true_churn_probability": pa.array(p),
    }), truth_dir / "churn_truth.parquet", compression="zstd")
    effects = _campaign_effects_table(people, hist, cal, model, horizon)
    pq.write_table(effects, truth_dir / "campaign_effects.parquet", compression="zstd")
    (truth_dir / "README.txt").write_text(TRUTH_README.format(as_of=as_of, horizon=horizon))
    return {"as_of": as_of.isoformat(), "horizon_days": horizon, "active_customers": len(active),
            "mean_true_churn_probability": round(float(p.mean()), 4) if len(p) else None,
            "campaigns": effects.num_rows}


def _campaign_effects_table(people: Customers, hist: History, cal: Calendar, model: ShopModel,
                            horizon: int) -> pa.Table:
    rows = []
    for rec in hist.campaigns:
        if rec.day >= cal.observed_days or len(rec.customers) == 0:
            continue  # not in the written data
        e = campaign_effect(people, rec, cal, model, horizon)
        gain = e["if_treated"] - e["if_control"]
        treated = ~rec.is_control
        rows.append(dict(
            campaign_id=campaign_id(rec.campaign_no, cal, rec.day), campaign_date=cal.date_of(rec.day),
            horizon_days=horizon, contacted=len(rec.customers), treated=int(treated.sum()),
            control=int(rec.is_control.sum()),
            true_average_effect=float(gain.mean()),
            true_effect_on_treated=float(gain[treated].mean()) if treated.any() else None,
            true_retention_if_treated=float(e["if_treated"].mean()),
            true_retention_if_control=float(e["if_control"].mean()),
        ))
    schema = pa.schema([("campaign_id", pa.string()), ("campaign_date", pa.date32()),
                        ("horizon_days", pa.int32()), ("contacted", pa.int64()),
                        ("treated", pa.int64()), ("control", pa.int64()),
                        ("true_average_effect", pa.float64()), ("true_effect_on_treated", pa.float64()),
                        ("true_retention_if_treated", pa.float64()),
                        ("true_retention_if_control", pa.float64())])
    return pa.Table.from_pylist(rows, schema=schema)


TRUTH_README = """\
Ground truth of this synthetic shop. The churnwatch pipeline never reads this folder; it is
here to score what the pipeline learns against what is known to be true.

churn_truth.parquet -- one row per customer active at truth_as_of ({as_of}), i.e. with at least
one order (of any status) on or before that day, as the pipeline's labels define it.
  customer_id             as in the raw files (text, leading zeros kept)
  truth_as_of             the cutoff date D
  horizon_days            H ({horizon})
  true_churn_probability  P(the customer places no order -- of any status -- on the days
                          D+1 .. D+H), given their full latent state at the end of day D
                          (alive or dropped out, engagement, traits, any campaign treatment
                          still acting). Computed exactly from the generating process, averaging
                          over its remaining randomness (dropout day, purchase draws, assignment
                          in any campaign inside the window). A customer who has already dropped
                          out has probability 1. With end_date >= D+H the realised churn in the
                          data is one draw from these probabilities.

campaign_effects.parquet -- one row per retention campaign in the data (campaign_contacts).
  campaign_id, campaign_date   as in campaign_contacts (contact at the end of campaign_date c)
  horizon_days                 H: retention means at least one order on days c+1 .. c+H
  contacted, treated, control  customers picked, treated, held out as control
  true_average_effect          mean over all contacted customers (treated and control) of
                               P(retained | treated) - P(retained | control), each computed from
                               the customer's latent state just before assignment. Assignment is
                               random, so this is the expected value of the realised difference
                               in retention rate, treated minus control.
  true_effect_on_treated       the same mean over the treated only
  true_retention_if_treated    mean P(retained | treated) over the contacted
  true_retention_if_control    mean P(retained | control) over the contacted
Effects are heterogeneous: most customers respond (lower dropout hazard, higher purchase rate
for 60 days), some do not react, a few react badly; offer and contact channel scale the effect.
"""


# ---- small helpers --------------------------------------------------------------------------------


def _as_date(value) -> dt.date | None:
    if value is None or (isinstance(value, dt.date) and not isinstance(value, dt.datetime)):
        return value
    if isinstance(value, dt.datetime):
        return value.date()
    return dt.date.fromisoformat(str(value)[:10])


def _check_arguments(customers: int, end_date: dt.date, truth_as_of: dt.date | None,
                     horizon_days: int, fmt: str, history_days: int) -> None:
    if customers < 1:
        raise ValueError(f"customers must be at least 1, not {customers}")
    if history_days < 1 or horizon_days < 1:
        raise ValueError("history_days and horizon_days must be positive")
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', not {fmt!r}")
    start = end_date - dt.timedelta(days=history_days - 1)
    if truth_as_of is not None and truth_as_of < start:
        raise ValueError(f"truth_as_of {truth_as_of} is before the history starts ({start})")


def _remove_stale_outputs(out_dir: Path) -> None:
    """Drop earlier generated files so a csv run never leaves parquet files behind (or back)."""
    for source in SOURCES:
        for ext in ("parquet", "csv"):
            (out_dir / f"{source}.{ext}").unlink(missing_ok=True)
    truth = out_dir / TRUTH_DIR
    for name in ("churn_truth.parquet", "campaign_effects.parquet", "README.txt"):
        (truth / name).unlink(missing_ok=True)


class _StageTimer:
    def __init__(self):
        self.stages: dict[str, float] = {}
        self._t0 = time.perf_counter()

    @contextmanager
    def __call__(self, name: str):
        t = time.perf_counter()
        yield
        self.stages[name] = round(time.perf_counter() - t, 3)

    @property
    def total(self) -> float:
        return time.perf_counter() - self._t0
