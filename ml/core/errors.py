"""Errors that a person must fix: the input is wrong, and running again cannot help.

A stage raises ``InputError`` (or a subclass) when the fault lies in what it was given — a missing
folder, an export that is too short for the horizon — rather than in the machine (a lock held, a
disk full, a crashed worker), which a retry may cure. The faces treat the two apart: the Airflow
tasks turn an ``InputError`` into a failure without retries (``ml.faces.airflow_tasks``), and ``churnwatch``
prints its message as the run's one error line. The message is the whole explanation: what is
wrong, what was found, and what to change.

A leaf: imports nothing of ours, so every stage can raise these.
"""
from __future__ import annotations


class InputError(RuntimeError):
    """The input must be fixed by a person; retrying the same run cannot succeed."""


class HistoryTooShort(InputError):
    """The orders do not reach far enough back to train a model for the horizon."""
