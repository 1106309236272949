"""The per-store steps: `STEPS`, the named sequence of pure ``frame -> frame`` functions applied to
every batch of typed records, and the rejects split from them: one row per problem a record's
`__why` names (etl.stage.records), and the losers of a duplicate primary key.
"""

from __future__ import annotations

import polars as pl

from ..core.duplicates import RULE, pad_space, winners
from ..core.stores import Store
from .folder import polars_dtype
from .records import EXCERPT, RS, US
from .sessions import session_ids

REJECT_SCHEMA = pl.Schema(
    {"store": pl.String, "file": pl.String, "record": pl.Int64, "key": pl.String,
     "field": pl.String, "value": pl.String, "reason": pl.String}
)


def add_derived(store: Store):
    """Columns the export does not hold: NULL here, filled by the steps that know them."""

    def step(frame: pl.DataFrame) -> pl.DataFrame:
        missing = [c for c in store.columns if c.source is None and c.name not in frame.columns]
        return frame.with_columns(pl.lit(None, polars_dtype(c)).alias(c.name) for c in missing)

    return step


def sla_bands(store: Store):
    """The SLA bands of a store that has them (tickets: etl/core/stores.py TICKET_SLA)."""

    def step(frame: pl.DataFrame) -> pl.DataFrame:
        sla = store.sla
        if sla is None:
            return frame
        hours = pl.col(sla.duration)
        closed = pl.col(sla.closed).is_not_null() & hours.is_not_null()
        return frame.with_columns(pl.when(closed).then(hours <= h).alias(sla.column(h)) for h in sla.hours)

    return step


STEPS = (add_derived, sla_bands, session_ids)


def split_rejects(store: Store, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(good rows, one reject row per problem) from the `__why` column."""
    bad = pl.col("__why") != ""
    if not frame.select(bad.any()).item():
        return frame.drop("__why"), pl.DataFrame(schema=REJECT_SCHEMA)  # the usual case: no copy
    good = frame.filter(~bad).drop("__why")
    rejects = (
        frame.filter(bad)
        .select(pl.lit(store.name).alias("store"), pl.col("__file").alias("file"), pl.col("__record").alias("record"),
                _key_text(store).alias("key"), pl.col("__why").str.split(RS).alias("p"))
        .explode("p")
        .with_columns(pl.col("p").str.split(US).list.to_struct(fields=["field", "reason", "value"]))
        .unnest("p")
    )
    return good, rejects.select(REJECT_SCHEMA.names()).cast(REJECT_SCHEMA)


def _key_text(store: Store) -> pl.Expr:
    return pl.concat_str([pl.col(k).cast(pl.String) for k in store.primary_key], separator="|", ignore_nulls=False)


def duplicate_losers(store: Store, meta: pl.DataFrame) -> pl.DataFrame:
    """Rejects (with __pos) for the records that lose a duplicate primary key, by the one rule
    (etl.duplicates): keys compared as MySQL compares them (trailing spaces ignored); the latest
    uploadTimestamp wins, then the later record in the export."""
    keys = [f"__norm_{k}" for k in store.primary_key]
    meta = meta.with_columns(pad_space(k).alias(f"__norm_{k}") for k in store.primary_key)
    if meta.height == 0 or not meta.select(pl.struct(keys).is_duplicated().any()).item():
        return pl.DataFrame(schema={"__pos": pl.Int64, **REJECT_SCHEMA})  # the usual case
    dupes = winners(meta, keys)
    kept = dupes.filter(pl.col("__pos") == pl.col("__win")).select(
        "__win", pl.format("{} record {}", pl.col("__file"), pl.col("__record")).alias("__kept"))
    losers = dupes.filter(pl.col("__pos") != pl.col("__win")).join(kept, on="__win")
    return losers.select(
        pl.col("__pos"), pl.lit(store.name).alias("store"), pl.col("__file").cast(pl.String).alias("file"), pl.col("__record").alias("record"),
        _key_text(store).alias("key"), pl.lit(store.column(store.primary_key[0]).source).alias("field"),
        _key_text(store).str.slice(0, EXCERPT).alias("value"),
        ("duplicate key: kept " + pl.col("__kept") + f" ({RULE})").alias("reason"),
    ).sort("__pos")
