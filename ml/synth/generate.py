"""``generate``: build a synthetic shop on disk, optionally with its ground truth.

:func:`write_shop` is the common path of :func:`generate` and :func:`.simulate.simulate`: the
same world, simulated through a chosen last day, with any injected campaigns. The generator's
arguments (:class:`ShopSpec`) are kept in the footer of ``customers.parquet`` so the simulator
can replay the very same shop later; the pipeline never reads them.
"""
from __future__ import annotations

import datetime as dt
import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ml.core.contract import SOURCES

from .calendar import Calendar
from .campaigns import Injection
from .contacts import build_contacts
from .dynamics import History, simulate
from .events import write_events
from .io import SourceWriter, WriteQueue, write_table
from .params import MODEL, ShopModel
from .streams import DayStreams
from .tables import build_customers_table, build_orders, build_reviews, build_tickets, customer_ids
from .truth_files import write_truth
from .world import Customers, build_catalog, build_customers

TRUTH_DIR = "_truth"
# one independent random stream per part, so changing how one part draws leaves the others alone
_STREAMS = ("catalog", "customers", "simulation", "ids", "orders", "reviews", "tickets",
            "contacts", "profiles")
SPEC_KEY = "churnwatch.synth"  # footer key of customers.parquet


@dataclass(frozen=True)
class ShopSpec:
    """The arguments that fix a generated shop's world and random streams."""
    customers: int
    seed: int
    end_date: dt.date  # the last day of the first export
    history_days: int

    @property
    def start(self) -> dt.date:
        return self.end_date - dt.timedelta(days=self.history_days - 1)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "end_date": self.end_date.isoformat()}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ShopSpec":
        raw = json.loads(text)
        return cls(int(raw["customers"]), int(raw["seed"]), _as_date(raw["end_date"]),
                   int(raw["history_days"]))


@dataclass
class Shop:
    """What :func:`write_shop` simulated, for callers that compute more truth from it."""
    cal: Calendar
    people: Customers
    hist: History
    ids: pa.Array


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
    stats, _ = write_shop(out_dir, ShopSpec(customers, seed, end_date, history_days), end_date,
                          fmt, model, truth_as_of, horizon_days)
    return stats


def write_shop(out_dir: Path, spec: ShopSpec, until: dt.date, fmt: str = "parquet",
               model: ShopModel = MODEL, truth_as_of: dt.date | None = None,
               horizon_days: int = 90, injections: dict[int, list[Injection]] | None = None,
               snapshot_days: set[int] = frozenset()) -> tuple[dict, Shop]:
    """The shop of ``spec`` exported through ``until`` (>= its end date), campaigns injected."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_outputs(out_dir)
    timer = _StageTimer()
    seed = spec.seed

    with timer("world"):
        cal, rng, catalog, people, ids = build_world(spec.customers, seed, spec.end_date,
                                                     truth_as_of, horizon_days, spec.history_days,
                                                     model, until=until)
    truth_day = cal.day_of(truth_as_of) if truth_as_of else None
    with timer("simulate"):
        hist = simulate(people, cal, model, rng["simulation"],
                        set(snapshot_days) | ({truth_day} if truth_day is not None else set()),
                        injections)

    day_streams = {name: DayStreams(seed, i) for i, name in enumerate(_STREAMS)}
    rows: dict[str, int] = {}
    with WriteQueue() as queue:
        with timer("tables"):
            orders, order_cols, item_cols = build_orders(hist, people, catalog, cal, model, ids,
                                                         day_streams["orders"])
            tables = {
                "orders": lambda: order_cols,
                "order_items": lambda: item_cols,
                "customers": lambda: build_customers_table(people, cal, ids, rng["profiles"]),
                "reviews": lambda: build_reviews(orders, cal, ids, day_streams["reviews"]),
                "support_tickets": lambda: build_tickets(orders, cal, ids, day_streams["tickets"]),
                "campaign_contacts": lambda: build_contacts(hist, cal, ids, day_streams["contacts"]),
            }
            for source, build in tables.items():
                meta = {SPEC_KEY: spec.to_json()} if source == "customers" else None
                rows[source] = write_table(out_dir, source, fmt, build(), queue, meta)
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
            truth = write_truth(out_dir / TRUTH_DIR, people, hist, cal, model, ids,
                                 truth_as_of, horizon_days)
    stats = {
        "out_dir": str(out_dir), "customers": spec.customers, "seed": seed,
        "start_date": cal.start.isoformat(), "end_date": until.isoformat(), "format": fmt,
        "rows": {s: rows[s] for s in SOURCES if s in rows},
        "seconds": round(timer.total, 3), "stage_seconds": timer.stages, "truth": truth,
    }
    return stats, Shop(cal, people, hist, ids)


def read_spec(shop_dir: Path) -> ShopSpec:
    """The generator's arguments, from the footer of ``shop_dir/customers.parquet``."""
    path = Path(shop_dir) / "customers.parquet"
    if not path.is_file():
        raise ValueError(f"{shop_dir} holds no customers.parquet: simulate needs a Parquet shop "
                         "written by churnwatch generate")
    meta = pq.read_metadata(path).metadata or {}
    if SPEC_KEY.encode() not in meta:
        raise ValueError(f"{path} does not record the generator's arguments (not written by "
                         "churnwatch generate, or by an older version)")
    return ShopSpec.from_json(meta[SPEC_KEY.encode()].decode())


def build_world(customers: int, seed: int, end_date: dt.date, truth_as_of: dt.date | None,
                horizon_days: int, history_days: int, model: ShopModel,
                until: dt.date | None = None):
    """The calendar, random streams, catalog, customers and ids of one ``generate`` call.

    Shared with :func:`.latent.latent_states`, which replays the same shop to read its hidden
    state, and with the simulator, which continues it to ``until``: all must draw exactly the
    same world from the same arguments. Customers sign up over the first export's history.
    """
    until = until or end_date
    start = end_date - dt.timedelta(days=history_days - 1)
    cal = Calendar.build(until, (until - start).days + 1, max(until, truth_as_of or until),
                         horizon_days, model)
    rng = {name: np.random.default_rng([seed, i]) for i, name in enumerate(_STREAMS)}
    catalog = build_catalog(min(2000, max(300, customers // 5)), rng["catalog"])
    people = build_customers(customers, history_days, catalog, model, rng["customers"])
    ids = customer_ids(customers, rng["ids"])
    return cal, rng, catalog, people, ids


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
