"""The hidden side of a generated shop at chosen cutoffs: traits, alive/dead state, engagement.

``latent_states`` replays a ``generate`` call (same arguments, same seed: the same world and
the same day-by-day draws; snapshots consume no randomness) and returns, per customer signed up
by each cutoff, what no pipeline can observe. Benchmarks use it to measure how much of the gap
between a model and the true probabilities is information the data does not carry
(``benchmarks/bench_ceiling.py``); the pipeline never reads it.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from .dynamics import simulate
from .generate import _as_date, build_world
from .params import MODEL, ShopModel
from .truth import prob_no_order

TRAITS = ("lam", "h0", "rho", "m0", "fatigue", "quality", "basket", "price_sensitivity",
          "receptiveness", "dog")
STATE = ("alive", "z")


def latent_states(customers: int, seed: int, end_date: dt.date, cutoffs, truth_as_of=None,
                  horizon_days: int = 90, history_days: int = 730,
                  model: ShopModel = MODEL) -> pd.DataFrame:
    """One row per (customer_id, as_of_date) for every customer signed up by each cutoff.

    Pass the arguments of the ``generate`` call that wrote the shop. Columns: the static
    ``TRAITS``, the dynamic ``STATE`` at the end of the cutoff day, ``is_active`` (an order of
    any status on or before it, the pipeline's population) and ``true_churn_probability`` over
    ``horizon_days`` (equal to ``_truth/churn_truth.parquet`` at the truth date).
    """
    end_date, truth_as_of = _as_date(end_date), _as_date(truth_as_of)
    cal, rng, _catalog, people, ids = build_world(customers, seed, end_date, truth_as_of,
                                                  horizon_days, history_days, model)
    days = {cal.day_of(_as_date(c)): _as_date(c) for c in cutoffs}
    if any(day < 0 or day >= cal.n_days for day in days):
        raise ValueError(f"cutoffs must lie in the simulated days {cal.start} .. {cal.date_of(cal.n_days - 1)}")
    hist = simulate(people, cal, model, rng["simulation"], set(days))
    ids = np.asarray(ids.to_pylist(), dtype=object)
    frames = []
    for day, cutoff in sorted(days.items()):
        state = hist.snapshots[day]
        n = len(state.z)
        traits = people.subset(slice(0, n))
        frames.append(pd.DataFrame({
            "customer_id": ids[:n],
            "as_of_date": pd.Timestamp(cutoff),
            **{name: getattr(traits, name) for name in TRAITS},
            "alive": state.alive.astype(float),
            "z": state.z,
            "is_active": state.last_order >= 0,
            "true_churn_probability": prob_no_order(traits, state, cal, model, horizon_days,
                                                    np.arange(n)),
        }))
    return pd.concat(frames, ignore_index=True)
