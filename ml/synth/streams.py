"""Random streams keyed by day, so what happens on one day never shifts the draws of another.

The tables and events are dressed up day by day, each day from its own stream
``default_rng([seed, stream, day])``. A campaign that changes who orders from day ``t`` on then
changes nothing written about the days before ``t``: the closed-loop simulator relies on it
(a continued shop keeps its past), and so does the equality of a simulator run without
campaigns with the plain generator.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DayStreams:
    seed: int
    stream: int

    def day(self, day: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.stream, int(day)])


def by_day(day: np.ndarray, streams: DayStreams, draw) -> dict[str, np.ndarray]:
    """``draw(rows, rng)`` for each day's rows of a day-sorted array; results concatenated.

    ``draw`` returns a dict of arrays (any lengths, e.g. one row per order line); each key's
    arrays are concatenated in day order.
    """
    days, starts = np.unique(day, return_index=True)
    ends = np.append(starts[1:], len(day))
    parts: dict[str, list[np.ndarray]] = {}
    for d, a, b in zip(days, starts, ends):
        for key, value in draw(np.arange(a, b), streams.day(d)).items():
            parts.setdefault(key, []).append(value)
    if not parts:
        empty = draw(np.arange(0), streams.day(0))
        return {key: value[:0] for key, value in empty.items()}
    return {key: np.concatenate(values) for key, values in parts.items()}
