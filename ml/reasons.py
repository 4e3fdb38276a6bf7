"""Reason codes: turn per-feature contributions into the top drivers of risk (a leaf).

Only features that push risk *up* can be reasons. The readable text comes from the reason
catalog (the dbt seed ``reason_catalog``: feature → text when the customer's value is above the
training median, at or below it, or missing), so "few orders in the last 90 days" and "unusual
number of orders" come from the same feature depending on the customer's side of typical. A
feature without an entry falls back to its own name, so a new feature never yields an empty
reason.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

CATALOG_COLUMNS = ("feature", "reason_if_high", "reason_if_low")  # + optional reason_if_missing
HIGH, LOW, MISSING = 1, 0, -1


def catalog_from_frame(frame: pd.DataFrame) -> dict[str, tuple[str, str, str]]:
    """feature → (text if high, text if low, text if missing) from rows of the reason catalog."""
    missing = [c for c in CATALOG_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"reason catalog lacks columns {missing}")
    out = {}
    for row in frame.to_dict("records"):
        feature = row["feature"]
        if isinstance(feature, str) and feature:
            high, low = str(row["reason_if_high"]), str(row["reason_if_low"])
            if_missing = row.get("reason_if_missing")
            out[feature] = (high, low, if_missing if isinstance(if_missing, str) and if_missing.strip() else low)
    return out


def read_catalog(csv_path: Path) -> dict[str, tuple[str, str, str]]:
    return catalog_from_frame(pd.read_csv(csv_path, dtype=str, keep_default_na=False))


def _texts(columns, catalog) -> np.ndarray:
    """A (3, n_features) table of texts: rows for missing, low, high (indexed by side + 1)."""
    table = []
    for c in columns:
        entry = catalog.get(c, c)
        high, low, if_missing = (entry, entry, entry) if isinstance(entry, str) else (tuple(entry) + (entry[-1],))[:3]
        table.append((if_missing, low, high))
    return np.array(table, dtype=object).T.reshape(3, len(table))


def top_reasons(
    contributions: pd.DataFrame,
    k: int = 3,
    catalog: dict | None = None,
    sides: pd.DataFrame | None = None,
) -> list[np.ndarray]:
    """For each row, the ``k`` features with the largest positive contribution, as text (or None).

    ``catalog`` maps a feature to one text or to (if high, if low[, if missing]); ``sides`` (same
    columns as ``contributions``: 1 high, 0 low, -1 missing) picks the wording per row.
    """
    catalog = catalog or {}
    texts = _texts(contributions.columns, catalog)
    values = contributions.to_numpy(float)
    n = len(values)
    if n == 0 or values.shape[1] == 0:
        return [np.full(n, None, dtype=object) for _ in range(k)]
    side = sides[contributions.columns].to_numpy(np.int8) if sides is not None else np.full(values.shape, HIGH, np.int8)
    kk = min(k, values.shape[1])
    order = np.argsort(-values, axis=1, kind="stable")[:, :kk]
    picked = np.take_along_axis(values, order, axis=1)
    picked_side = np.take_along_axis(side, order, axis=1)
    out = []
    for j in range(k):
        col = np.full(n, None, dtype=object)
        if j < kk:
            positive = picked[:, j] > 0
            col[positive] = texts[picked_side[positive, j] + 1, order[positive, j]]
        out.append(col)
    return out
