"""One row hash for a staged frame and for the same rows read back from MySQL.

`row_hashes(data, store)` turns a frame (Polars, or Arrow from connectorx) into the key
column(s) plus `row_hash`, a 64-bit hash of every described column, computed in DuckDB.
Load uses it to diff the stage against MySQL and to verify each chunk it writes; parity
uses it for bucket checksums. Both sides go through the same normalization, driven by
the store description, so equal rows hash equal whatever engine produced them:

| kind                        | normalized to         | why                                                  |
|-----------------------------|-----------------------|------------------------------------------------------|
| varchar, text, json         | VARCHAR, unchanged    | MySQL returns text as stored (trailing spaces, tabs,  |
|                             |                       | NUL bytes, 4-byte UTF-8 included)                    |
| double                      | DOUBLE                | the same IEEE value on both sides                   |
| datetime                    | TIMESTAMP_MS          | the stage holds ms, connectorx gives us              |
| bool                        | TINYINT               | MySQL holds TINYINT(1): a stored 2 must not hash as 1 |
| int / bigint / epoch_ms     | INTEGER / BIGINT      | widths differ between Arrow readers                  |

NULL and '' hash differently, and so do the same values in different columns: the hash is
DuckDB's variadic `hash(c1, c2, ...)` over the normalized columns in description order.

A set of rows is summarized by `checksum`: the row count and the sum of the row hashes
modulo 2**64 (order-independent, so chunks, buckets and whole tables are checked the
same way; keys are unique, so two equal rows cannot cancel out as they would with XOR).

DuckDB's `hash` is stable within one DuckDB version, not promised across versions: row
hashes are compared within one process, never stored as a contract. (The load ledger
stores chunk checksums as a record; a resumed run recomputes both sides.)
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from . import duck
from .stores import Column, Store

HASH = "row_hash"


def normalized(col: Column) -> str:
    """The DuckDB expression a column is hashed as (see the table in the module docstring)."""
    q = f'"{col.name}"'
    return {
        "varchar": f"CAST({q} AS VARCHAR)",
        "text": f"CAST({q} AS VARCHAR)",
        "mediumtext": f"CAST({q} AS VARCHAR)",
        "json": f"CAST({q} AS VARCHAR)",
        "int": f"CAST({q} AS INTEGER)",
        "bigint": f"CAST({q} AS BIGINT)",
        "epoch_ms": f"CAST({q} AS BIGINT)",
        "bool": f"CAST({q} AS TINYINT)",
        "double": f"CAST({q} AS DOUBLE)",
        "datetime": f"CAST({q} AS TIMESTAMP_MS)",
    }[col.kind]


def hash_expression(store: Store) -> str:
    """The row hash over every described column."""
    return "hash(" + ", ".join(normalized(c) for c in store.columns) + ")"


def row_hashes(data: pl.DataFrame | pa.Table, store: Store) -> pl.DataFrame:
    """Key column(s) + `row_hash` (UInt64) for every row of `data`, in the order given.

    `data` holds (at least) the store's described columns: a staged frame, or the
    rows read back from MySQL by `read_mysql`.
    """
    keys = ", ".join(f'"{k}"' for k in store.primary_key)
    con = _duckdb()
    name = f"rows_{uuid.uuid4().hex}"
    con.register(name, data)
    try:
        return con.sql(f"SELECT {keys}, {hash_expression(store)} AS {HASH} FROM {name}").pl()
    finally:
        con.unregister(name)


_local = threading.local()


def _duckdb():
    """One DuckDB per thread, kept: opening one costs tens of milliseconds, and a load checks many chunks."""
    if getattr(_local, "con", None) is None:
        _local.con = duck.connect()
    return _local.con


@dataclass(frozen=True)
class Checksum:
    """Row count and the sum of row hashes (mod 2**64) of a set of rows."""

    rows: int
    value: int

    def __str__(self) -> str:
        return f"{self.rows}:{self.value:016x}"


def checksum(hashes: pl.DataFrame | pl.Series) -> Checksum:
    series = hashes[HASH] if isinstance(hashes, pl.DataFrame) else hashes
    values = series.to_numpy()
    # numpy's uint64 sum wraps modulo 2**64: exactly the sum we want, order-independent.
    return Checksum(len(values), int(np.sum(values, dtype=np.uint64)) if len(values) else 0)


# ---------------------------------------------------------------- reading MySQL back


def select_sql(store: Store, where: str | None = None) -> str:
    """SELECT of the described columns (never the managed ones), as connectorx runs it."""
    cols = ", ".join(f"`{c.name}`" for c in store.columns)
    return f"SELECT {cols} FROM `{store.table}`" + (f" WHERE {where}" if where else "")


def connectorx_uri(target) -> str:
    """connectorx takes the same mysql:// URI (password percent-encoded) as MySQLTarget.uri."""
    return target.uri


def read_mysql(target, store: Store, where: str | None = None) -> pa.Table:
    """The store's rows as MySQL holds them, read through connectorx into Arrow."""
    import connectorx as cx

    return cx.read_sql(connectorx_uri(target), select_sql(store, where), return_type="arrow")


def read_digests(target, store: Store, where: str) -> pa.Table:
    """The primary key and the `row_digest` MySQL keeps (etl.digest) of the rows in `where`."""
    import connectorx as cx

    from .digest import DIGEST

    keys = ", ".join(f"`{k}`" for k in store.primary_key)
    return cx.read_sql(connectorx_uri(target), f"SELECT {keys}, `{DIGEST}` FROM `{store.table}` WHERE {where}",
                       return_type="arrow")


def read_keys(target, store: Store) -> pa.Table:
    """Only the primary key column(s) of every row MySQL holds."""
    import connectorx as cx

    keys = ", ".join(f"`{k}`" for k in store.primary_key)
    return cx.read_sql(connectorx_uri(target), f"SELECT {keys} FROM `{store.table}`", return_type="arrow")


def mysql_row_hashes(target, store: Store, where: str | None = None) -> pl.DataFrame:
    return row_hashes(read_mysql(target, store, where), store)
