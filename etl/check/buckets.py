"""Parity's buckets (etl.check.parity): which a table is grouped by, the names a user asks for checked
against the descriptions (never pasted into SQL), and each bucket's label as a DuckDB expression.
The API's read verification (etl.api.verify) buckets records the same way."""

from __future__ import annotations

from typing import Sequence

from ..core.errors import ParityError
from ..core.rowhash import normalized
from ..core.stores import Store


def table_buckets(store: Store, asked: Sequence[str] | None) -> tuple[str, ...]:
    """The buckets a table is grouped by: its defaults, or those of `asked` the description knows."""
    if asked is None:
        return store.default_buckets
    return tuple(b for b in asked if b in store.bucket_names)


def check_buckets(stores: Sequence[Store], asked: Sequence[str] | None) -> tuple[str, ...] | None:
    """Bucket names from a user, checked against the descriptions (never pasted into SQL)."""
    if asked is None:
        return None
    names = tuple(dict.fromkeys(b.strip() for b in asked if b.strip()))
    if not names:
        raise ParityError("no bucket names given")
    for b in names:
        if not any(b in s.bucket_names for s in stores):
            known = sorted({n for s in stores for n in s.bucket_names})
            raise ParityError(f"unknown bucket {b!r}; the tables know {', '.join(known)}", field=b)
    return names


def bucket_expression(store: Store, bucket: str) -> str:
    """DuckDB expression of a bucket's label (text; NULL is a bucket of its own)."""
    name, trunc = store.bucket_column(bucket)
    col = store.column(name)  # the identifier comes from the description, not from the caller
    if trunc is None:
        return f"CAST({normalized(col)} AS VARCHAR)"
    fmt = "%Y-%m-%d" if trunc == "day" else "%Y-%m"
    ts = f"epoch_ms({normalized(col)})" if col.kind == "epoch_ms" else normalized(col)
    return f"strftime({ts}, '{fmt}')"
