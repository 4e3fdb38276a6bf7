"""Day indices, seasonality and the campaign schedule.

The simulation runs on integer days: day 0 is the first day of the history
(``end_date - history_days + 1``), and the last written day is ``end_date``. Days may run past
``end_date`` when the truth date lies after it; nothing on those days is written.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from .params import ShopModel

US_PER_DAY = 86_400_000_000
_EPOCH = dt.date(1970, 1, 1)

# Monday..Sunday. Orders peak on Sunday/Monday evenings, browsing at the weekend.
_ORDER_WEEKLY = np.array([1.08, 0.98, 0.95, 0.95, 0.97, 0.97, 1.10])
_BROWSE_WEEKLY = np.array([1.00, 0.96, 0.95, 0.96, 0.98, 1.06, 1.09])


@dataclass(frozen=True)
class Calendar:
    start: dt.date  # date of day 0
    observed_days: int  # days 0 .. observed_days-1 are written (the last one is end_date)
    n_days: int  # days simulated (>= observed_days)
    order_season: np.ndarray  # multiplier on purchase rates, per day (runs past n_days for the truth)
    browse_season: np.ndarray  # multiplier on browsing rates, per day
    campaign_days: tuple[int, ...]  # campaigns run at the end of these days (also past n_days)

    @classmethod
    def build(cls, end_date: dt.date, history_days: int, simulate_until: dt.date,
              lookahead_days: int, model: ShopModel) -> "Calendar":
        """Simulate through ``simulate_until``; know seasons and campaigns ``lookahead_days`` more."""
        start = end_date - dt.timedelta(days=history_days - 1)
        n_days = max(history_days, (simulate_until - start).days + 1)
        known_days = n_days + lookahead_days + 1
        dates = np.arange(known_days) + (start - _EPOCH).days  # days since epoch
        weekday = (dates + 3) % 7  # 1970-01-01 was a Thursday
        yearly = _yearly_season(dates)
        campaigns = tuple(range(model.campaign_first_day, known_days, model.campaign_every_days))
        return cls(start, history_days, n_days,
                   order_season=_ORDER_WEEKLY[weekday] * yearly,
                   browse_season=_BROWSE_WEEKLY[weekday] * (0.5 + 0.5 * yearly),
                   campaign_days=campaigns)

    def day_of(self, d: dt.date) -> int:
        return (d - self.start).days

    def date_of(self, day: int) -> dt.date:
        return self.start + dt.timedelta(days=int(day))

    def day_start_us(self, day: np.ndarray | int) -> np.ndarray:
        """Microseconds since the epoch at 00:00 of ``day`` (naive UTC timestamps)."""
        return (np.asarray(day, dtype=np.int64) + (self.start - _EPOCH).days) * US_PER_DAY

    @property
    def end_us(self) -> int:
        """First microsecond after ``end_date``: every written timestamp is below it."""
        return int(self.day_start_us(self.observed_days))


def _yearly_season(days_since_epoch: np.ndarray) -> np.ndarray:
    """A winter peak (Christmas) plus a Black-Friday week bump, around a mean of ~1."""
    doy = (days_since_epoch - 0.0) % 365.25  # day of year, good enough for a smooth cycle
    winter = 0.18 * np.cos(2 * np.pi * (doy - 350) / 365.25)
    black_friday = 0.35 * np.exp(-0.5 * ((doy - 329) / 3.0) ** 2)
    return 1.0 + winter + black_friday
