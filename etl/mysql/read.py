"""Reading MySQL back: the rows, keys and row digests a table holds, through connectorx into Arrow.

The load's chunk checks, parity's full reads and `etl sql --mysql` all read through here.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from ..core.digest import DIGEST
from ..core.rowhash import row_hashes, select_sql
from ..core.stores import Store


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
