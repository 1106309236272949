"""Reading MySQL back: the rows, keys and row digests a table holds, through connectorx into Arrow.

The load's chunk checks, parity's reads and `etl sql --mysql` all read through here, and a failed
read is reported one way (`read_sql`): connectorx raises plain RuntimeErrors, some with the URI,
password included, in them, so the caller's EtlError names what was read, with the URI masked.
"""

from __future__ import annotations

from typing import Sequence

import polars as pl
import pyarrow as pa

from ..core.config import mask_uri
from ..core.digest import DIGEST
from ..core.errors import EtlError
from ..core.rowhash import row_hashes, select_sql
from ..core.stores import Store


def connectorx_uri(target) -> str:
    """connectorx takes the same mysql:// URI (password percent-encoded) as MySQLTarget.uri."""
    return target.uri


def read_sql(target, queries: str | Sequence[str], *, error: type[EtlError] = EtlError, what: str = "reading MySQL",
             store: str | None = None) -> pa.Table:
    """One SELECT, or several read side by side into one table, through connectorx into Arrow. A
    failure is raised as `error` ("<what> failed: ...", naming `store`), the URI masked."""
    import connectorx as cx

    query = queries if isinstance(queries, str) or len(queries) > 1 else queries[0]
    try:
        return cx.read_sql(connectorx_uri(target), query if isinstance(query, str) else list(query), return_type="arrow")
    except Exception as e:  # noqa: BLE001 - connectorx raises plain RuntimeErrors (and others), see the docstring
        raise error(f"{what} failed: {mask_uri(str(e))[:300]}", store=store) from None


def read_mysql(target, store: Store, where: str | None = None, **failing) -> pa.Table:
    """The store's rows as MySQL holds them, read through connectorx into Arrow. `failing`: read_sql's
    `error` and `what` (a failure names the store)."""
    return read_sql(target, select_sql(store, where), store=store.name, **failing)


def read_digests(target, store: Store, where: str, **failing) -> pa.Table:
    """The primary key and the `row_digest` MySQL keeps (etl.digest) of the rows in `where`."""
    keys = ", ".join(f"`{k}`" for k in store.primary_key)
    return read_sql(target, f"SELECT {keys}, `{DIGEST}` FROM `{store.table}` WHERE {where}", store=store.name, **failing)


def read_keys(target, store: Store, **failing) -> pa.Table:
    """Only the primary key column(s) of every row MySQL holds."""
    keys = ", ".join(f"`{k}`" for k in store.primary_key)
    return read_sql(target, f"SELECT {keys} FROM `{store.table}`", store=store.name, **failing)


def mysql_row_hashes(target, store: Store, where: str | None = None) -> pl.DataFrame:
    return row_hashes(read_mysql(target, store, where), store)
