"""The run context: a run's Settings, resolved once at its start and then only read.

A run — ``churnwatch run`` or a trigger in the Airflow UI, a scheduled DAG, a stage command — has
one as-of date, one horizon, one campaign id, one warehouse and one value for every knob. They
are fixed once, here:

- the DAGs that ingest take the as-of date ingest resolves (the last good order date when the
  form leaves it empty; ``ml.stages.ingest``), the others and the stage commands call
  ``resolve_run``: the date given, else the last successful ingest's;
- the result travels as one serialised value (``Settings.to_dict``, XCom in Airflow) that every
  later task reads back with ``Settings.from_dict``; dbt gets its vars from the same value
  (``ml.core.dbt.dbt_vars``);
- the training cutoffs' calendar grid is computed by ``training_cutoffs`` for every Python reader
  (dbt's ``training_cutoff_dates`` macro is the same rule for dbt on its own).
"""
from __future__ import annotations

import datetime as dt

from ml.core import defaults
from ml.core.errors import InputError
from ml.core.settings import Settings


class NothingIngested(InputError):
    """No as-of date was given and the warehouse has no successful ingest to take one from."""


def resolve_run(settings: Settings) -> Settings:
    """The run's Settings with the as-of date fixed: the one given, else the last ingest's."""
    if settings.as_of is not None:
        return settings
    from ml.core.warehouse import last_ingested_as_of

    as_of = last_ingested_as_of(settings)
    if as_of is None:
        raise NothingIngested(f"no as-of date given and nothing ingested into {settings.warehouse} yet: "
                              "run ingest (or the churn_features / churn_pipeline DAG) first, or pass --as-of")
    return settings.replace(as_of=as_of)


def training_cutoffs(settings: Settings, n: int | None = None) -> list[dt.date]:
    """The full-label training cutoffs, latest (the backtest's) first: ``as_of - horizon - k * step``
    snapped down to the grid of every ``step`` days from dbt's ``cutoff_grid_anchor``."""
    step = int(settings.cutoff_step_days)
    latest = settings.as_of - dt.timedelta(days=int(settings.horizon_days))
    anchor = defaults.cutoff_grid_anchor()
    if anchor is not None:
        latest -= dt.timedelta(days=(latest - anchor).days % step)
    count = settings.n_training_cutoffs if n is None else n
    return [latest - dt.timedelta(days=k * step) for k in range(int(count))]


def backtest_cutoff(settings: Settings) -> dt.date:
    """The latest full-label training cutoff: the backtest's test cutoff."""
    return training_cutoffs(settings, n=1)[0]
