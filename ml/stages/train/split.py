"""Which examples go where: by time (the backtest's cutoffs) and by customer (folds and samples).

Time: the test cutoff is the one dbt marks ``is_backtest_cutoff`` (``int_cutoffs_enumerated``: the
latest training cutoff, whose label window ends by the as-of date); standing there, only labels
observable by then may fit, tune or calibrate (the *honest* cutoffs). Customers: a customer's fold
and sample membership come from a hash of their id, so they are the same at every cutoff and in
every run, and a sample always keeps whole customers (no customer is half seen).
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.core.errors import HistoryTooShort
from ml.core.settings import Settings
from ml.core.warehouse import connect
from ml.model.value import VALUE_DAYS, year_pairs

log = logging.getLogger(__name__)


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


def plan_split(cutoffs, horizon_days: int, test: dt.date) -> Split:
    """Test on dbt's backtest cutoff ``test``; fit on the cutoffs whose labels were complete by then.

    ``test`` must be the latest of the full-label ``cutoffs``: otherwise the examples were built for
    another as-of date than the one training reads them for, and the backtest would test on the past.
    """
    cutoffs = sorted({pd.Timestamp(c).date() for c in cutoffs})
    if len(cutoffs) < 2:
        raise HistoryTooShort(
            f"need at least 2 training cutoffs with full labels, found {len(cutoffs)}: the data history "
            "is too short for this horizon (lower --horizon-days or the cutoff spacing)"
        )
    marked = "no cutoff" if test is None else str(pd.Timestamp(test).date())
    if marked != str(cutoffs[-1]):
        raise RuntimeError(f"marts.training_examples marks {marked} as the backtest cutoff (is_backtest_cutoff), but "
                           f"the latest full-label cutoff is {cutoffs[-1]}: the features were built for another "
                           "as-of date; build them for this one")
    test = cutoffs[-1]
    honest = [c for c in cutoffs if c + dt.timedelta(days=horizon_days) <= test]
    is_honest = bool(honest)
    if not is_honest:  # short history: validate on the cutoff before the test, and say so
        log.warning("history too short for a fully honest split: fitting on cutoffs whose labels overlap the test window")
        honest = cutoffs[:-1]
    return Split(test, honest[-1], tuple(honest), tuple(cutoffs), is_honest)


def origin_cutoffs(settings: Settings, split: Split) -> list[dt.date]:
    """The rolling origins before the test cutoff, newest first."""
    return [c for c in sorted(split.full, reverse=True) if c < split.test][: max(settings.train_backtest_origins - 1, 0)]


def btyd_origin(settings: Settings, split: Split) -> dt.date | None:
    """The cutoff about a year before the as-of date the BTYD value forecast is checked from."""
    if settings.as_of is None:
        return None
    year_ago = [c for c in split.full if (settings.as_of - c).days >= VALUE_DAYS]
    return max(year_ago) if year_ago else min(split.full)  # else: the longest window there is


def whole_cutoffs(settings: Settings, split: Split) -> list[dt.date]:
    """The cutoffs where every customer is scored: the test cutoff and (when the value model falls
    back to BTYD) the cutoff its forecast is checked from."""
    out = [split.test]
    if len(year_pairs(split.full)) < 2:
        out.append(btyd_origin(settings, split))
    return sorted({c for c in out if c is not None})


# ---- customers ----------------------------------------------------------------------------------


def customer_folds(customer_ids: np.ndarray, k: int) -> np.ndarray:
    """A stable fold per customer (a hash of the id), the same at every cutoff and every run."""
    return (pd.util.hash_array(np.asarray(customer_ids, dtype=object)) % np.uint64(k)).astype(np.int8)


def sample_key(customer_ids: np.ndarray) -> np.ndarray:
    """A stable number in [0, 1) per customer id (a hash): customers enter a sample in its order."""
    ids = np.asarray(customer_ids, dtype=object)
    return pd.util.hash_array(ids, hash_key="churnwatchsample") % np.uint64(1_000_000) / 1_000_000


def sample_threshold(keys: np.ndarray, rows_per_key: np.ndarray, max_rows: int) -> float:
    """The key at or below which about ``max_rows`` rows fall (each key weighted by its rows)."""
    return float(np.quantile(np.repeat(keys, rows_per_key), max_rows / int(rows_per_key.sum())))


def customer_sample(data, rows: np.ndarray, max_rows: int) -> np.ndarray:
    """``rows`` of ``data`` (Examples) restricted to a stable share of customers, about ``max_rows`` rows.

    Whole customers, so every sampled customer keeps all their cutoffs; the same data always
    gives the same sample.
    """
    n = int(rows.sum())
    if n <= max_rows:
        return rows
    u = data.key()
    cut = np.quantile(u[rows], max_rows / n)  # relative to ``rows``: a sample of a sample shrinks too
    return rows & (u <= cut)


# ---- history ------------------------------------------------------------------------------------


def training_cutoffs(as_of: dt.date, horizon_days: int, step_days: int, anchor: dt.date | None, n: int) -> list[dt.date]:
    """The full-label training cutoffs, latest first: dbt's ``training_cutoff_dates`` macro, in Python
    (asked before dbt has built anything, to say how much history a horizon needs)."""
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
