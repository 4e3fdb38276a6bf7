"""Unit tests of the reason codes and the reason catalog seed."""
from __future__ import annotations

import csv

import pandas as pd

from ml.model.reasons import read_catalog, top_reasons
from ml.core.settings import REPO_ROOT

CATALOG_CSV = REPO_ROOT / "dbt_project" / "seeds" / "reason_catalog.csv"


def test_top_reasons_are_positive_drivers_in_order_with_their_wording():
    contrib = pd.DataFrame({"a": [0.5, -0.1, 0.0], "b": [0.2, -0.2, 0.0], "c": [0.9, 0.3, 0.0]})
    sides = pd.DataFrame({"a": [1, 1, 1], "b": [-1, 0, 0], "c": [1, 0, 1]})  # 1 high, 0 low, -1 missing
    catalog = {"a": ("A high", "A low", "A low"), "b": ("B high", "B low", "B missing"), "c": "C"}
    r1, r2, r3 = top_reasons(contrib, 3, catalog, sides)
    assert list(r1) == ["C", "C", None]
    assert list(r2) == ["A high", None, None]
    assert list(r3) == ["B missing", None, None]


def test_unknown_feature_falls_back_to_its_name():
    (r1,) = top_reasons(pd.DataFrame({"new_feature": [1.0]}), 1, {})
    assert r1[0] == "new_feature"


def test_catalog_seed_covers_every_feature_with_two_texts():
    catalog = read_catalog(CATALOG_CSV)
    with open(CATALOG_CSV, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(catalog), "feature names must be unique"
    assert all(r["reason_if_high"].strip() and r["reason_if_low"].strip() for r in rows)
    assert catalog["mean_days_between_orders"][2] == "Only one order so far"  # own wording when missing
    assert catalog["days_since_last_order"][2] == catalog["days_since_last_order"][1]  # empty: as low
    for feature in ("days_since_last_order", "count_orders_90d", "days_since_last_session", "acquisition_channel"):
        assert feature in catalog


def test_top_reasons_match_a_full_stable_sort_with_ties_and_sides():
    import numpy as np

    rng = np.random.default_rng(0)
    n, features = 3000, 12
    v = rng.normal(size=(n, features))
    v[rng.random((n, features)) < 0.2] = 0.0
    v[:, 3] = v[:, 5]  # exact ties: the earlier feature comes first
    contrib = pd.DataFrame(v, columns=[f"f{i}" for i in range(features)])
    sides = pd.DataFrame(rng.integers(-1, 2, size=(n, features)), columns=contrib.columns)
    catalog = {c: (c + " high", c + " low", c + " missing") for c in contrib.columns}
    got = top_reasons(contrib, 3, catalog, sides)
    order = np.argsort(-v, axis=1, kind="stable")[:, :3]
    wording = {1: 0, 0: 1, -1: 2}
    for j in range(3):
        expected = [catalog[contrib.columns[f]][wording[int(sides.iat[r, f])]] if v[r, f] > 0 else None
                    for r, f in enumerate(order[:, j])]
        assert list(got[j]) == expected
