"""Reason codes: turn per-feature contributions into the top drivers of risk (a leaf).

Only features that push risk *up* can be reasons. The readable text comes from a catalog
(feature → sentence); a feature without an entry falls back to its own name, so a new feature
never produces an empty reason.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def top_reasons(contributions: pd.DataFrame, k: int = 3, catalog: dict[str, str] | None = None) -> list[np.ndarray]:
    """For each row, the ``k`` features with the largest positive contribution, as text (or None)."""
    catalog = catalog or {}
    names = np.array([catalog.get(c, c) for c in contributions.columns], dtype=object)
    values = contributions.to_numpy(float)
    n = len(values)
    if n == 0 or values.shape[1] == 0:
        return [np.full(n, None, dtype=object) for _ in range(k)]
    kk = min(k, values.shape[1])
    order = np.argsort(-values, axis=1, kind="stable")[:, :kk]
    picked = np.take_along_axis(values, order, axis=1)
    out = []
    for j in range(k):
        col = np.full(n, None, dtype=object)
        if j < kk:
            positive = picked[:, j] > 0
            col[positive] = names[order[positive, j]]
        out.append(col)
    return out
