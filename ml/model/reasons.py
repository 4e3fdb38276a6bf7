"""Reason codes: turn per-feature contributions into the top drivers of risk (a leaf).

Only features that push risk *up* can be reasons. The readable text comes from the reason
catalog (the dbt seed ``reason_catalog``: feature → text when the customer's value is above the
training median, at or below it, or missing), so "few orders in the last 90 days" and "unusual
number of orders" come from the same feature depending on the customer's side of typical. A
feature without an entry falls back to its own name, so a new feature never yields an empty
reason.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

CATALOG_COLUMNS = ("feature", "reason_if_high", "reason_if_low")  # + optional reason_if_missing
HIGH, LOW, MISSING = 1, 0, -1
CHUNK_ROWS = 16_384


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


def _top_k_positive(by_feature: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a feature-major (features, rows) array: the ``k`` largest values and their
    feature indices, largest first; ties go to the earlier feature. One pass over the features,
    each a few vectorised comparisons (no sort of the whole matrix)."""
    n = by_feature.shape[1]
    best = np.full((k, n), -np.inf)
    index = np.full((k, n), -1, dtype=np.int64)
    for f in range(by_feature.shape[0]):
        v = by_feature[f]
        beats = [v > best[j] for j in range(k)]
        for j in range(k - 1, 0, -1):  # shift down the slots v displaces, then put v in its slot
            take_prev, take_v = beats[j - 1], beats[j] & ~beats[j - 1]
            best[j] = np.where(take_prev, best[j - 1], np.where(take_v, v, best[j]))
            index[j] = np.where(take_prev, index[j - 1], np.where(take_v, f, index[j]))
        best[0] = np.where(beats[0], v, best[0])
        index[0] = np.where(beats[0], f, index[0])
    return best, index


def top_reasons(
    contributions: pd.DataFrame,
    k: int = 3,
    catalog: dict | None = None,
    sides: Mapping[str, np.ndarray] | pd.DataFrame | None = None,
) -> list[np.ndarray]:
    """For each row, the ``k`` features with the largest positive contribution, as text (or None).

    ``catalog`` maps a feature to one text or to (if high, if low[, if missing]); ``sides`` (per
    column of ``contributions``: 1 high, 0 low, -1 missing; a frame, or a mapping such as
    ``ValueSides`` that computes a column when read) picks the wording per row.
    """
    catalog = catalog or {}
    columns = list(contributions.columns)
    texts = _texts(columns, catalog)
    n = len(contributions)
    if n == 0 or not columns:
        return [np.full(n, None, dtype=object) for _ in range(k)]
    # feature-major: a column of the frame is a contiguous row here (a view for one float block)
    by_feature = np.asarray(contributions.to_numpy(float)).T
    kk = min(k, len(columns))
    values, order = np.empty((kk, n)), np.empty((kk, n), dtype=np.int64)
    for start in range(0, n, CHUNK_ROWS):  # chunks that stay in cache: ~3x faster than one pass
        stop = start + CHUNK_ROWS
        values[:, start:stop], order[:, start:stop] = _top_k_positive(by_feature[:, start:stop], kk)
    out = []
    for j in range(k):
        col = np.full(n, None, dtype=object)
        if j < len(values):
            positive = np.flatnonzero(values[j] > 0)
            feature = order[j, positive]
            if sides is None:
                side = np.full(len(positive), HIGH, np.int8)
            else:
                side = np.empty(len(positive), np.int8)
                for f in np.unique(feature):  # read only the picked features' sides
                    at = feature == f
                    side[at] = np.asarray(sides[columns[f]])[positive[at]]
            col[positive] = texts[side + 1, feature]
        out.append(col)
    return out
