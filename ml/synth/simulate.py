"""The closed loop: apply the CRM's campaign files to the generated shop and continue it.

``simulate(shop_dir, campaign_files, until, out_dir, horizon_days=90, fmt="parquet",
truth_as_of=None)``

* ``shop_dir``: a shop written by ``generate`` (Parquet) or by an earlier ``simulate``; its
  ``customers.parquet`` footer names the generator's arguments (:class:`.generate.ShopSpec`),
  and an earlier simulation's ``_truth/applied_campaigns.parquet`` the campaigns already applied.
* ``campaign_files``: CRM exports (``W/exports/crm/<campaign_id>.parquet`` or ``.csv``) with at
  least campaign_id, customer_id, as_of_date, offer_code, channel, is_control (more columns are
  accepted; ``assignment`` and ``propensity`` are carried into the truth). Rows with
  ``is_control`` false are contacted the morning after ``as_of_date``; held-out rows are logged.
* ``until``: the last day of the new export (after every campaign's as-of date).
* ``out_dir``: gets the full raw export through ``until`` (the same files the generator writes,
  the campaigns in ``campaign_contacts``) and ``_truth/`` (see ``TRUTH_README``); with
  ``truth_as_of`` also the generator's churn truth at that date (as ``generate`` writes it).
  Keep ``fmt="parquet"`` for a shop the next cycle continues (its footer holds the spec).

The design is a replay: the shop is simulated again from day 0 with the same seed, and every
applied campaign is injected at the end of its as-of day. Injections draw no random numbers and
the exports draw from per-day streams, so without campaigns the output equals the plain
generator's to the same end date, and with them everything before the contact day is unchanged.
A cycle passes only its new file; the campaigns of earlier cycles come from ``shop_dir``.
Unknown customers, offers or channels, and customers not yet signed up at the as-of date, stop
the run with one line naming the file.

Returns ``{"out_dir", "until", "campaigns": {id: {...}}, "seconds", "stage_seconds", "rows"}``.
"""
from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .campaigns import Injection
from .generate import TRUTH_DIR, Shop, _as_date, read_spec, write_shop
from .offers import OFFER_CHANNEL, OFFERS, channel_index, offer_index
from .params import MODEL
from .truth_campaigns import TRUTH_README, campaign_truth

REQUIRED = ("campaign_id", "customer_id", "as_of_date", "offer_code", "channel", "is_control")
CARRIED = ("assignment", "propensity")  # optional columns kept in the truth
APPLIED = "applied_campaigns.parquet"
CAMPAIGN_TRUTH_DIR = "campaigns"  # _truth/campaigns/<campaign_id>.parquet


def simulate(shop_dir: Path, campaign_files, until, out_dir: Path, horizon_days: int = 90,
             fmt: str = "parquet", truth_as_of=None) -> dict:
    """Continue the shop in ``shop_dir`` to ``until`` with ``campaign_files`` applied; see module."""
    t0 = time.perf_counter()
    shop_dir, out_dir, until = Path(shop_dir), Path(out_dir), _as_date(until)
    spec = read_spec(shop_dir)
    if until < spec.end_date:
        raise ValueError(f"until {until} is before the shop's first export ends ({spec.end_date})")
    if out_dir.resolve() == shop_dir.resolve():
        raise ValueError("out_dir must differ from shop_dir (the shop's past is read from it)")
    earlier = _read_applied(shop_dir)
    new = pd.concat([_read_campaign(Path(f)) for f in _as_list(campaign_files)] or [_empty()],
                    ignore_index=True)
    applied = pd.concat([earlier[~earlier["campaign_id"].isin(set(new["campaign_id"]))], new],
                        ignore_index=True)

    injections = _injections(applied, _customers(shop_dir), spec.start, until)
    snapshot_days = {inj.day for day in injections.values() for inj in day}
    truth_dir = out_dir / TRUTH_DIR
    _reset_truth(truth_dir)
    stats, shop = write_shop(out_dir, spec, until, fmt, MODEL, _as_date(truth_as_of), horizon_days,
                             injections, snapshot_days)
    summary = {}
    t_truth = time.perf_counter()
    for campaign_id, rows in new.groupby("campaign_id", sort=True):
        summary[campaign_id] = _write_campaign_truth(truth_dir, shop, campaign_id, rows,
                                                     injections, horizon_days)
    for campaign_id in sorted(set(earlier["campaign_id"]) - set(new["campaign_id"])):
        src = shop_dir / TRUTH_DIR / CAMPAIGN_TRUTH_DIR / f"{campaign_id}.parquet"
        if src.is_file():
            shutil.copyfile(src, truth_dir / CAMPAIGN_TRUTH_DIR / src.name)
    pq.write_table(pa.Table.from_pandas(applied, preserve_index=False), truth_dir / APPLIED)
    readme = truth_dir / "README.txt"  # the generator's, when truth_as_of asked for churn truth
    generator_part = "\n" + readme.read_text() if readme.is_file() else ""
    readme.write_text(TRUTH_README.format(horizon=horizon_days) + generator_part)
    return {"out_dir": str(out_dir), "until": until.isoformat(), "campaigns": summary,
            "rows": stats["rows"], "truth": stats["truth"], "seconds": round(time.perf_counter() - t0, 3),
            "stage_seconds": {**stats["stage_seconds"],
                              "campaign_truth": round(time.perf_counter() - t_truth, 3)}}


# ---- reading campaign files ---------------------------------------------------------------------


def _as_list(files) -> list:
    if files is None:
        return []
    return [files] if isinstance(files, (str, Path)) else list(files)


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in REQUIRED})


def _read_campaign(path: Path) -> pd.DataFrame:
    """One campaign file as text ids, dates, offers; refuse what cannot be applied, in one line."""
    if not path.is_file():
        raise ValueError(f"campaign file {path} does not exist")
    if path.suffix == ".csv":
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types={"customer_id": pa.string(), "campaign_id": pa.string()}))
    else:
        table = pq.read_table(path)
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise ValueError(f"campaign file {path.name} lacks column(s) {', '.join(missing)}")
    df = table.select([c for c in (*REQUIRED, *CARRIED) if c in table.column_names]).to_pandas()
    df["customer_id"] = df["customer_id"].astype(str)
    df["campaign_id"] = df["campaign_id"].astype(str)
    df["as_of_date"] = pd.to_datetime(df["as_of_date"]).dt.date
    df["is_control"] = df["is_control"].astype(str).str.lower().isin(("true", "1", "t"))
    df["channel"] = df["channel"].where(df["channel"].notna(), None)
    try:
        offer = offer_index(df["offer_code"].to_numpy())
        no_channel = df["channel"].isna().to_numpy()
        df.loc[no_channel, "channel"] = [OFFER_CHANNEL[i] for i in offer[no_channel]]
        channel_index(df["channel"].to_numpy())
    except ValueError as err:
        raise ValueError(f"campaign file {path.name}: {err}") from None
    for campaign_id, rows in df.groupby("campaign_id"):
        if rows["as_of_date"].nunique() != 1:
            raise ValueError(f"campaign file {path.name}: campaign {campaign_id} has several "
                             "as_of_date values")
        if rows["customer_id"].duplicated().any():
            dup = rows.loc[rows["customer_id"].duplicated(), "customer_id"].iloc[0]
            raise ValueError(f"campaign file {path.name}: customer {dup} listed twice in {campaign_id}")
    df.attrs["file"] = path.name
    df["source_file"] = path.name
    return df


def _read_applied(shop_dir: Path) -> pd.DataFrame:
    path = shop_dir / TRUTH_DIR / APPLIED
    if not path.is_file():
        return _empty()
    df = pq.read_table(path).to_pandas()
    df["as_of_date"] = pd.to_datetime(df["as_of_date"]).dt.date
    return df


def _customers(shop_dir: Path) -> pd.DataFrame:
    """The shop's customer ids and signup dates in generator row order (the file's order)."""
    table = pq.read_table(shop_dir / "customers.parquet", columns=["customer_id", "signup_ts"])
    return pd.DataFrame({"customer_id": table.column("customer_id").to_pylist(),
                         "signup_date": pd.to_datetime(table.column("signup_ts").to_pandas()).dt.date})


def _injections(applied: pd.DataFrame, customers: pd.DataFrame, start: dt.date,
                until: dt.date) -> dict[int, list[Injection]]:
    """Campaign rows to customer rows, offers and channels, by contact day (end of as-of day)."""
    out: dict[int, list[Injection]] = {}
    for campaign_id, rows in applied.groupby("campaign_id", sort=True):
        where = rows["source_file"].iloc[0] if "source_file" in rows else campaign_id
        as_of = rows["as_of_date"].iloc[0]
        if not start <= as_of < until:
            raise ValueError(f"campaign file {where}: as_of_date {as_of} is not within "
                             f"{start} .. {until - dt.timedelta(days=1)} (the simulated days before until)")
        cust = pd.Index(customers["customer_id"]).get_indexer(rows["customer_id"])
        if (cust < 0).any():
            unknown = rows["customer_id"].to_numpy()[cust < 0]
            raise ValueError(f"campaign file {where}: unknown customer_id {unknown[0]}"
                             + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))
        late = customers["signup_date"].to_numpy()[cust] > as_of
        if late.any():
            raise ValueError(f"campaign file {where}: customer {rows['customer_id'].to_numpy()[late][0]} "
                             f"signed up after the as_of_date {as_of}")
        day = (as_of - start).days
        out.setdefault(day, []).append(Injection(
            campaign_id, day, cust.astype(np.int32), offer_index(rows["offer_code"].to_numpy()),
            channel_index(rows["channel"].to_numpy()), rows["is_control"].to_numpy(bool)))
    return out


# ---- the truth of each new campaign -------------------------------------------------------------


def _reset_truth(truth_dir: Path) -> None:
    if truth_dir.exists():
        shutil.rmtree(truth_dir)
    (truth_dir / CAMPAIGN_TRUTH_DIR).mkdir(parents=True)


def _write_campaign_truth(truth_dir: Path, shop: Shop, campaign_id: str, rows: pd.DataFrame,
                          injections: dict[int, list[Injection]], horizon: int) -> dict:
    inj = next(i for day in injections.values() for i in day if i.campaign_id == campaign_id)
    table = campaign_truth(shop, inj, rows, horizon)
    pq.write_table(table, truth_dir / CAMPAIGN_TRUTH_DIR / f"{campaign_id}.parquet", compression="zstd")
    per_customer = table.filter(pa.compute.equal(table["offer_code"], OFFERS[0]))
    return {"as_of_date": rows["as_of_date"].iloc[0].isoformat(), "rows": len(rows),
            "treated": int((~rows["is_control"]).sum()), "control": int(rows["is_control"].sum()),
            "active_customers": per_customer.num_rows}
