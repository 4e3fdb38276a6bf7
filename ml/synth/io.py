"""Arrow helpers and the per-source writer (Parquet or CSV, typed by the raw contract).

Strings are built in Arrow (casts, pads, takes from small dictionaries) rather than in Python,
which is what keeps tens of millions of rows cheap. Low-cardinality columns are handed to the
Parquet writer as dictionary arrays (no re-hashing of every value); the files are written
without the Arrow schema blob, so every reader sees plain strings with exactly the contract's
column names and types. File encoding runs on one background thread (:class:`WriteQueue`)
while the main thread generates the next chunk: the two cores are both busy.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ml.core.contract import SOURCES

_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "TIMESTAMP": pa.timestamp("us"),
    "DOUBLE": pa.float64(),
    "INTEGER": pa.int32(),
    "BOOLEAN": pa.bool_(),
}
PARQUET_COMPRESSION = "zstd"
ROW_GROUP_ROWS = 1_000_000


def contract_schema(source: str) -> pa.Schema:
    return pa.schema([pa.field(c.name, _ARROW_TYPES[c.type]) for c in SOURCES[source].columns])


# ---- column builders ---------------------------------------------------------------------------


def padded_ids(numbers: np.ndarray, width: int, prefix: str = "") -> pa.Array:
    """Decimal ids zero-padded to ``width`` (so leading zeros appear), with an optional prefix."""
    text = pc.utf8_lpad(pa.array(np.asarray(numbers, dtype=np.int64)).cast(pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, text, "") if prefix else text


def pick(values: pa.Array | list[str], idx: np.ndarray, null: np.ndarray | None = None,
         dense: bool = False) -> pa.Array:
    """``values[idx]``; rows where ``null`` is true (or idx < 0) are NULL.

    A dictionary array unless ``dense`` (use ``dense`` when the result feeds string kernels).
    """
    values = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
    idx = np.asarray(idx)
    mask = idx < 0 if null is None else (np.asarray(null) | (idx < 0))
    indices = pa.array(np.where(mask, 0, idx).astype(np.int32), mask=mask)
    if dense:
        return values.take(indices)
    return pa.DictionaryArray.from_arrays(indices, values)


def with_nulls(values: pa.Array, null: np.ndarray) -> pa.Array:
    """``values`` with the rows flagged in ``null`` set to NULL."""
    return pc.if_else(pa.array(null), pa.scalar(None, values.type), values)


def timestamps(us: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """Naive timestamps from microseconds since the epoch."""
    return pa.array(np.asarray(us, dtype=np.int64).view("datetime64[us]"), mask=null)


def numbers(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    return pa.array(values, mask=null)


def as_contract_table(source: str, columns: dict[str, pa.Array]) -> pa.Table:
    """Exactly the contract's columns, in its order and types (string dictionaries kept)."""
    arrays, fields = [], []
    for f in contract_schema(source):
        col = columns[f.name]
        if not (pa.types.is_dictionary(col.type) and col.type.value_type == f.type):
            col = col.cast(f.type)
        arrays.append(col)
        fields.append(pa.field(f.name, col.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


# ---- writing -------------------------------------------------------------------------------------


class WriteQueue:
    """Runs file writes, in order, on one background thread; at most two wait at a time."""

    def __init__(self):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="synth-write")
        self._pending: deque[Future] = deque()

    def submit(self, fn, *args) -> None:
        while len(self._pending) >= 2:
            self._pending.popleft().result()  # also re-raises a failed write here
        self._pending.append(self._pool.submit(fn, *args))

    def drain(self) -> None:
        while self._pending:
            self._pending.popleft().result()

    def __enter__(self) -> "WriteQueue":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.drain()
        finally:
            self._pool.shutdown(wait=True)


class SourceWriter:
    """Writes one source to ``out_dir/<source>.<fmt>``, in one go or chunk by chunk.

    Chunks are buffered to ~1M rows so Parquet gets sensible row groups whatever the chunk size.
    Encoding happens on ``queue``'s thread when one is given, inline otherwise. ``metadata``
    (text key-values) goes into a Parquet footer; CSV has nowhere to keep it.
    """

    def __init__(self, out_dir: Path, source: str, fmt: str, queue: WriteQueue | None = None,
                 metadata: dict[str, str] | None = None):
        if fmt not in ("parquet", "csv"):
            raise ValueError(f"fmt must be 'parquet' or 'csv', not {fmt!r}")
        self.path = Path(out_dir) / f"{source}.{fmt}"
        self.source, self.fmt, self.queue = source, fmt, queue
        self.rows = 0
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._file = None  # opened on the writer thread with the first table's schema
        self._metadata = metadata

    def write(self, columns: dict[str, pa.Array]) -> None:
        table = as_contract_table(self.source, columns)
        self.rows += table.num_rows
        self._buffer.append(table)
        self._buffered += table.num_rows
        if self._buffered >= ROW_GROUP_ROWS:
            self._flush()

    def close(self) -> None:
        if self._buffer or self.rows == 0:
            self._flush()
        self._run(self._close_file)

    def __enter__(self) -> "SourceWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()

    def _flush(self) -> None:
        tables = self._buffer or [as_contract_table(self.source, _empty_columns(self.source))]
        self._buffer, self._buffered = [], 0
        self._run(self._write_tables, tables)

    def _run(self, fn, *args) -> None:
        if self.queue is None:
            fn(*args)
        else:
            self.queue.submit(fn, *args)

    # -- these run on the writer thread --
    def _write_tables(self, tables: list[pa.Table]) -> None:
        table = pa.concat_tables(tables)
        if self.fmt == "csv":
            table = _csv_friendly(table)
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = (pq.ParquetWriter(self.path, table.schema, compression=PARQUET_COMPRESSION,
                                           store_schema=False)
                          if self.fmt == "parquet" else pacsv.CSVWriter(self.path, table.schema))
        if self.fmt == "parquet":
            self._file.write_table(table, row_group_size=ROW_GROUP_ROWS)
        else:
            self._file.write_table(table)

    def _close_file(self) -> None:
        if self._file is not None:
            if self._metadata and self.fmt == "parquet":
                self._file.add_key_value_metadata(self._metadata)
            self._file.close()


def _empty_columns(source: str) -> dict[str, pa.Array]:
    return {f.name: pa.array([], f.type) for f in contract_schema(source)}


def _csv_friendly(table: pa.Table) -> pa.Table:
    """Plain strings, and timestamps as 'YYYY-MM-DD HH:MM:SS' (every value is whole seconds)."""
    cols = []
    for col in table.columns:
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        elif pa.types.is_timestamp(col.type):
            col = col.cast(pa.timestamp("s"))
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def write_table(out_dir: Path, source: str, fmt: str, columns: dict[str, pa.Array],
                queue: WriteQueue | None = None, metadata: dict[str, str] | None = None) -> int:
    writer = SourceWriter(out_dir, source, fmt, queue, metadata)
    writer.write(columns)
    writer.close()
    return writer.rows
