"""MySQL's side of parity (etl.check.parity): one table's keys, bucket columns and row digests (or
its every column, where the table has no row_digest), read through connectorx in parallel
primary-key ranges while DuckDB hashes the stage, and a few rows by key for the drill-down."""

from __future__ import annotations

import threading
from typing import Callable, Sequence

import polars as pl
import pyarrow as pa

from ..core.config import mask_uri
from ..core.digest import DIGEST, duckdb_expression, has_digest
from ..core.errors import ParityError
from ..core.rowhash import hash_expression, select_sql
from ..core.stores import Store
from ..mysql.read import read_sql

# connectorx reads this many primary-key ranges at once (measured in BENCHMARKS.md: 2 beats
# 1 and 4 on a 2-core machine for 1M tickets).
DEFAULT_PARTS = 2
PART_MIN_ROWS = 50_000  # below this one query is faster than several


def split_points(stage_keys: pl.Series, parts: int) -> list:
    """Primary-key values that cut the stage's (sorted) keys into `parts` ranges of equal size."""
    keys = stage_keys.drop_nulls().sort()
    if parts < 2 or keys.len() < parts:
        return []
    return sorted(set(keys[keys.len() * i // parts] for i in range(1, parts)))


def sql_literal(value) -> str:
    if isinstance(value, str):
        # Hex, so no quoting or sql_mode (NO_BACKSLASH_ESCAPES) matters; same collation as the key.
        return f"CONVERT(X'{value.encode('utf-8').hex()}' USING utf8mb4) COLLATE utf8mb4_bin"
    return str(int(value))


def range_queries(store: Store, points: list, columns: Sequence[str] | None = None) -> list[str]:
    """One SELECT (of `columns`, default the described ones) per key range; the ranges cover every
    row exactly once, whatever the points."""
    def select(where: str | None = None) -> str:
        if columns is None:
            return select_sql(store, where)
        return f"SELECT {', '.join(f'`{c}`' for c in columns)} FROM `{store.table}`" + (f" WHERE {where}" if where else "")

    if not points:
        return [select()]
    (key,) = store.primary_key
    k = f"`{store.column(key).name}`"
    bounds = [None, *points, None]
    queries = []
    for lo, hi in zip(bounds, bounds[1:]):
        cond = [f"{k} >= {sql_literal(lo)}" if lo is not None else None, f"{k} < {sql_literal(hi)}" if hi is not None else None]
        queries.append(select(" AND ".join(c for c in cond if c)))
    return queries


class MySQLSide:
    """One table as MySQL holds it, through connectorx: its digests or its rows in parallel key ranges,
    or a few rows by key."""

    def __init__(self, target, store: Store, points: list | None = None, buckets: Sequence[str] = ()):
        self.target, self.store, self.points = target, store, points or []
        self.bucket_columns = tuple(dict.fromkeys(store.bucket_column(b)[0] for b in buckets))
        self.digest = self._has_digest()

    def _has_digest(self) -> bool:
        """Whether the table has the generated `row_digest` (a table made by an older schema has not)."""
        import pymysql

        try:
            with self.target.connect() as conn:
                return has_digest(conn, self.store.table)
        except pymysql.err.Error as e:
            raise ParityError(f"reading MySQL failed: {mask_uri(str(e))[:300]}", store=self.store.name) from None

    @property
    def parts(self) -> int:
        return len(self.points) + 1

    @property
    def method(self) -> str:
        return "digest" if self.digest else "rows"

    def hash_sql(self) -> str:
        """DuckDB expression of the row hash on MySQL's side, over what `read` returns."""
        return f'"{DIGEST}"' if self.digest else hash_expression(self.store)

    def stage_hash_sql(self) -> str:
        """The same hash of the stage's rows."""
        return duckdb_expression(self.store) if self.digest else hash_expression(self.store)

    def _read(self, queries: list[str]) -> pa.Table:
        return read_sql(self.target, queries, error=ParityError, store=self.store.name)

    def read(self) -> pa.Table:
        """Keys, bucket columns and digests of every row; every column where there is no digest.
        (Streaming the batches into DuckDB instead measured slower: see BENCHMARKS.md.)"""
        cols = tuple(dict.fromkeys((*self.store.primary_key, *self.bucket_columns, DIGEST))) if self.digest else None
        return self._read(range_queries(self.store, self.points, cols))

    def read_in_background(self) -> Callable[[], pa.Table]:
        """Start `read` in a thread (the server and connectorx work while DuckDB hashes the stage);
        the function returned waits for the rows and re-raises the read's error."""
        got: dict = {}

        def run():
            try:
                got["rows"] = self.read()
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                got["error"] = e

        thread = threading.Thread(target=run, name=f"parity-read-{self.store.table}", daemon=True)
        thread.start()

        def wait() -> pa.Table:
            thread.join()
            if "error" in got:
                raise got["error"]
            return got.pop("rows")

        return wait

    def rows(self, keys: list) -> pa.Table:
        """The rows with these primary-key values (for the drill-down: a few thousand at most)."""
        (key,) = self.store.primary_key
        queries = [select_sql(self.store, f"`{self.store.column(key).name}` IN ({', '.join(sql_literal(k) for k in keys[i:i + 500])})")
                   for i in range(0, len(keys), 500)]
        if not queries:
            return pa.table({c.name: pa.array([], pa.null()) for c in self.store.columns})
        return self._read(queries)
