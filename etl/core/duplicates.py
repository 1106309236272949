"""The one rule for records that are the same record: which one is kept.

Used by the transform (duplicate primary keys inside one export) and by the merge (the same
record in several browsers' exports); neither has a rule of its own.

  Same record: the same primary key (compared as MySQL's PAD SPACE collations do: trailing
  spaces ignored), or, across exports, the same natural identity (Store.natural_key) with the
  same content apart from upload metadata (Store.upload_metadata).
  Kept: the one with the latest uploadTimestamp; on a tie (or none), the later one: later in
  the export, and in a merge, from the export named later.
"""

from __future__ import annotations

import polars as pl

RULE = "latest uploadTimestamp, then later in the export"  # in a merge: the exports in the order given


def pad_space(column: str) -> pl.Expr:
    """A key as MySQL compares it: trailing spaces do not count."""
    return pl.col(column).cast(pl.String).str.strip_chars_end(" ")


def winners(frame: pl.DataFrame, keys: list[str], *, order: str = "__pos", time: str = "upload_timestamp") -> pl.DataFrame:
    """The rows of `frame` that share `keys` with another row, each with `__win`: the `order` value
    of its group's kept row. `order` says which row is later; `time` may be absent (order alone)."""
    dupes = frame.filter(pl.struct(keys).is_duplicated())
    by = [time, order] if time in dupes.columns else [order]
    return dupes.sort(by, nulls_last=False).with_columns(pl.col(order).last().over(keys).alias("__win"))
