"""Gate on one ``raw.<source>`` table after ingest: the contract held, nothing slipped through.

Ingest already quarantines faulty rows; this suite checks its output independently: exactly the
contract's columns (extra columns kept out, PII replaced by hashes), keys present and unique,
timestamps plausible and not after the as-of date, amounts and ratings in range, and the table
holding exactly the rows the ingest log says were staged.
"""
from __future__ import annotations

import datetime as dt

import great_expectations as gx

from ml.core.contract import SOURCES

EARLIEST = dt.datetime(1990, 1, 1)
SHA256_HEX = r"^[0-9a-f]{64}$"


def build(params: dict) -> list:
    e = gx.expectations
    source = SOURCES[params["source"]]
    as_of: dt.date = params["as_of"]
    last_moment = dt.datetime.combine(as_of, dt.time.max)
    columns = [f"{c.name}_hash" if c.pii else c.name for c in source.columns]
    out = [e.ExpectTableColumnsToMatchOrderedList(column_list=columns)]
    if params.get("rows_staged") is not None:  # not when gated on a sample
        out.append(e.ExpectTableRowCountToEqual(value=int(params["rows_staged"])))
    if source.required:
        out.append(e.ExpectTableRowCountToBeBetween(min_value=1))
    for col in source.columns:
        if col.key:
            out.append(e.ExpectColumnValuesToNotBeNull(column=col.name))
        if col.pii:
            out.append(e.ExpectColumnValuesToMatchRegex(column=f"{col.name}_hash", regex=SHA256_HEX))
        if col.type == "TIMESTAMP":
            upper = last_moment if col.name == source.ts_column else None
            out.append(e.ExpectColumnValuesToBeBetween(column=col.name, min_value=EARLIEST, max_value=upper))
    if source.unique_key and not params.get("sampled"):
        out.append(e.ExpectCompoundColumnsToBeUnique(column_list=list(source.unique_key))
                   if len(source.unique_key) > 1 else e.ExpectColumnValuesToBeUnique(column=source.unique_key[0]))
    ranges = {"amount": (0, params["max_amount"]), "discount_amount": (0, params["max_amount"]),
              "unit_price": (0, params["max_amount"]), "quantity": (1, None), "rating": (1, 5), "age": (0, 120)}
    for name, (low, high) in ranges.items():
        if name in source.column_names:
            out.append(e.ExpectColumnValuesToBeBetween(column=name, min_value=low, max_value=high))
    if "is_control" in source.column_names:
        out.append(e.ExpectColumnValuesToBeInSet(column="is_control", value_set=[True, False]))
    return out
