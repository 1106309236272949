"""Chunk planning for the load, as pure functions on frames (no server): what to insert, update
and delete, cut into chunks; what an unfinished chunk still has to write; how the table settled.

`keys` is the staged table's index: key, ORDER (the key as MySQL orders it), row hash and ROW
(the row's position in the staged frame), sorted by ORDER. `server` frames hold key and row hash
of what MySQL holds. etl/mysql/load.py reads the server and writes; everything it decides is here.
"""

from __future__ import annotations

import polars as pl

from ..core.errors import LoadError
from ..core.rowhash import HASH, checksum, row_hashes
from ..core.stores import Store
from .ledger import INSERT, UPDATE, Chunk

ORDER = "__order"  # sort key: the primary key as MySQL orders it
ROW = "__row"  # position of a key's row in the staged frame


def key_of(store: Store) -> str:
    if len(store.primary_key) != 1:
        raise LoadError("the loader handles single-column primary keys only", store=store.name)
    return store.primary_key[0]


def mysql_order(frame: pl.DataFrame, store: Store) -> pl.DataFrame:
    """Sorted by primary key as MySQL orders it, with that order kept in ORDER."""
    key = key_of(store)
    width = pad_width(frame[key]) if store.column(key).is_text else None
    order = pl.col(key).str.pad_end(width, " ") if width else pl.col(key)
    frame = frame.with_columns(order.alias(ORDER))
    return frame if frame[ORDER].is_sorted() else frame.sort(ORDER)


def pad_width(keys: pl.Series) -> int | None:
    """utf8mb4_bin compares keys as if the shorter were padded with spaces. That order differs
    from the byte order only where one key goes on with a character below ' ' (a tab, say)
    where another ends; only then is the (costly) padding needed: to the longest key."""
    if keys.str.contains(r"[\x00-\x1f]").any():
        return int(keys.str.len_chars().max())
    return None


def index(frame: pl.DataFrame, store: Store) -> tuple[pl.DataFrame, int | None]:
    """(keys, pad width) of a staged frame; LoadError when two rows share a key as MySQL compares keys."""
    key = key_of(store)
    hashes = row_hashes(frame, store)  # only ever compared with the load's own hashes
    if not hashes[key].equals(frame[key]):  # DuckDB keeps scan order; make sure of it
        raise LoadError("row hashes came back out of order", store=store.name)
    keys = mysql_order(hashes.with_row_index(ROW), store)
    same = keys.filter(pl.col(ORDER) == pl.col(ORDER).shift(1))
    if same.height:
        raise LoadError(f"{same.height} staged rows share a primary key with another (as MySQL compares keys): "
                        f"{same[key].head(5).to_list()!r}", store=store.name, field=key)
    width = pad_width(keys[key]) if store.column(key).is_text else None
    return keys, width


def diff(keys: pl.DataFrame, server: pl.DataFrame | None, store: Store):
    """(inserts, updates, gone) of the staged keys against what the server holds (None: an empty
    table, so everything is an insert and nothing is gone)."""
    if server is None:
        return keys, keys.clear(), None
    key = key_of(store)
    both = keys.join(server.rename({HASH: "__server"}), on=key, how="left", maintain_order="left")
    inserts = both.filter(pl.col("__server").is_null()).drop("__server")
    updates = both.filter(pl.col("__server").is_not_null() & (pl.col("__server") != pl.col(HASH))).drop("__server")
    gone = server.join(keys.select(key), on=key, how="anti")
    return inserts, updates, (mysql_order(gone, store) if gone.height else None)


def chunks(run_id: str, store: Store, stage_id: str, work, batch_rows: int) -> list[tuple[Chunk, pl.DataFrame]]:
    """The plan: each (kind, keys) of `work` cut into chunks of `batch_rows`, numbered in order."""
    key = key_of(store)
    plan: list[tuple[Chunk, pl.DataFrame]] = []
    for kind, keys in work:
        if keys is None:
            continue
        for start in range(0, keys.height, batch_rows):
            part = keys.slice(start, batch_rows)
            plan.append((Chunk(run_id, store.table, len(plan) + 1, stage_id, kind,
                               str(part[key][0]), str(part[key][-1]), part.height, str(checksum(part))), part))
    return plan


def in_range(keys: pl.DataFrame, chunk: Chunk, store: Store, width: int | None) -> pl.DataFrame:
    """The staged keys within a chunk's key range (bounds as MySQL orders keys)."""
    bound = (lambda k: k.ljust(width)) if width else (str if store.column(key_of(store)).is_text else int)
    order = keys[ORDER]
    lo = order.search_sorted(bound(chunk.key_from), side="left")
    hi = order.search_sorted(bound(chunk.key_to), side="right")
    return keys.slice(lo, hi - lo)


def still_to_write(kind: str, staged: pl.DataFrame, server: pl.DataFrame, store: Store) -> pl.DataFrame:
    """What an unfinished chunk of `kind` still has to write, from the staged keys in its range and
    what the server holds there."""
    key = key_of(store)
    if kind == INSERT:
        return staged.join(server, on=key, how="anti", maintain_order="left")
    if kind == UPDATE:
        both = staged.join(server.rename({HASH: "__server"}), on=key, how="inner", maintain_order="left")
        return both.filter(pl.col("__server") != pl.col(HASH)).drop("__server")
    gone = server.join(staged.select(key), on=key, how="anti")
    return mysql_order(gone, store) if gone.height else gone


def settle(staged: pl.DataFrame, present: pl.DataFrame, refused: pl.DataFrame, key: str):
    """(missing, gone, unexplained): staged keys MySQL lacks, keys it holds that the stage does not,
    and the missing ones no refusal explains (which the load must never leave)."""
    missing = staged.join(present, on=key, how="anti")
    gone = present.join(staged, on=key, how="anti")
    return missing, gone, missing.join(refused, on=key, how="anti")


def unchanged(staged: pl.DataFrame, attempted: pl.DataFrame, missing: pl.DataFrame, key: str) -> int:
    """Staged rows in MySQL that this run did not write."""
    written_here = staged.join(attempted, on=key, how="semi").join(missing, on=key, how="anti").height
    return staged.height - missing.height - written_here
