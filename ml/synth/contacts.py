"""The ``campaign_contacts`` table: every campaign in the data, the shop's own and the injected.

Each campaign's contact times come from its own stream, so adding a campaign file on day ``t``
leaves the rows of earlier campaigns as they were.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from .calendar import Calendar
from .dynamics import History
from .io import pick, timestamps
from .offers import CHANNELS, OFFERS
from .streams import DayStreams, by_day
from .tables import US


def campaign_id(number: int, cal: Calendar, day: int) -> str:
    return f"RET{number + 1:02d}-{cal.date_of(day):%Y%m%d}"


def build_contacts(hist: History, cal: Calendar, cust_ids: pa.Array,
                   streams: DayStreams) -> dict[str, pa.Array]:
    """One row per listed customer per campaign (held-out controls included, flagged).

    The shop contacts in the evening of its campaign day; an injected campaign file is sent the
    next morning (its as-of date is the day its scores were made).
    """
    recs = [r for r in hist.campaigns if r.day < cal.observed_days]
    ids = [r.campaign_id or campaign_id(r.campaign_no, cal, r.day) for r in recs]
    seq = np.repeat(np.arange(len(recs)), [len(r.customers) for r in recs]).astype(np.int32)

    def cat(part, dtype) -> np.ndarray:
        return np.concatenate([part(r) for r in recs] + [np.zeros(0, dtype)])

    cust = cat(lambda r: r.customers, np.int32)

    def one_campaign(rows: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        rec = recs[seq[rows[0]]] if len(rows) else None
        start = 18 * 3600 if rec is None or rec.campaign_id is None else 86_400 + 8 * 3600
        return dict(second=start + rng.integers(0, 7200, len(rows)))

    second = by_day(seq, streams, one_campaign)["second"] if len(recs) else np.zeros(0, np.int64)
    ts = cal.day_start_us(cat(lambda r: np.full(len(r.customers), r.day), np.int64)) + second * US
    keep = ts < cal.end_us  # a file sent the morning after the export's last day
    return dict(
        campaign_id=pick(ids, seq[keep]), customer_id=cust_ids.take(pa.array(cust[keep])),
        contact_ts=timestamps(ts[keep]), is_control=pa.array(cat(lambda r: r.is_control, bool)[keep]),
        offer_code=pick(list(OFFERS), cat(lambda r: r.offer, np.int8)[keep]),
        channel=pick(list(CHANNELS), cat(lambda r: r.channel, np.int8)[keep]),
    )
