"""The upload-session rules, in one place (pure frame -> frame functions).

A record of an upload (`Store.carries_session` in etl/core/stores.py: tickets, incidents,
customers) names its upload session. Legacy records that name none get one here
(`session_ids`, `incident_sessions`); sessions records name but the export lacks are rebuilt
(`rebuilt_sessions`); and every session loaded rows carry is finalized from those rows
(`finalize_sessions`): the load writes it so, and parity and validate expect it so.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

import polars as pl

from ..core.stores import INCIDENTS, SESSION_COLUMN, SESSION_STORES, UPLOAD_SESSIONS, Store, provenance
from .folder import StageFolder, polars_dtype, stage_schema

# Incidents carry no session: one upload is one tight cluster of importedAt values. A gap
# longer than this starts the next upload (uploads seen in real data are minutes apart, the
# records of one upload milliseconds apart).
INCIDENT_UPLOAD_GAP_MS = 60_000
# What rebuilding a session reads of its records: the session id and the session's columns the
# records carry too (file name and hash, upload time).
_CARRIED = tuple(c for c in UPLOAD_SESSIONS.column_names if c in {p.name for p in provenance()})
SESSION_META = (SESSION_COLUMN, *_CARRIED)
COUNTS_SCHEMA = {SESSION_COLUMN: pl.String, "rows": pl.Int64}


def session_ids(store: Store):
    """Tickets and customers: the session a record belongs to, without looking at other records.

    A record keeps its uploadSessionId, else takes its batchId (the app's session id); a legacy
    record with neither gets `legacy-<store>-<hash>` of its file name, or of its upload day
    (UTC) when even the file name is missing. Incidents need all records at once (clusters of
    importedAt) and are done by `incident_sessions` after the first pass.
    """

    def step(frame: pl.DataFrame) -> pl.DataFrame:
        if not store.carries_session or store is INCIDENTS:
            return frame
        day = pl.from_epoch(pl.col("upload_timestamp"), time_unit="ms").dt.strftime("%Y-%m-%d").fill_null("unknown")
        label = pl.when(pl.col("file_name").is_not_null()).then("file:" + pl.col("file_name")).otherwise("day:" + day)
        labels = frame.select(label.alias("__label")).to_series()
        wanted = frame.select(pl.col(SESSION_COLUMN).is_null() & pl.col("batch_id").is_null()).to_series()
        uniq = labels.filter(wanted).unique()
        ids = pl.DataFrame({"__label": uniq, "__legacy": [
            f"legacy-{store.name}-{hashlib.sha1(v.encode()).hexdigest()[:16]}" for v in uniq.to_list()]},
            schema={"__label": pl.String, "__legacy": pl.String})
        legacy = pl.DataFrame({"__label": labels}).join(ids, on="__label", how="left", maintain_order="left")["__legacy"]
        return frame.with_columns(pl.coalesce(pl.col(SESSION_COLUMN), pl.col("batch_id"), pl.lit(legacy))
                                  .alias(SESSION_COLUMN))

    return step


def incident_sessions(meta: pl.DataFrame) -> pl.DataFrame:
    """(__pos, upload_session_id) for incidents without a session: one upload is one tight cluster
    of importedAt values; a gap over INCIDENT_UPLOAD_GAP_MS starts the next upload."""
    todo = meta.filter(pl.col(SESSION_COLUMN).is_null())
    t = pl.col("imported_at").dt.epoch("ms").fill_null(pl.col("upload_timestamp"))
    todo = todo.with_columns(t.alias("__t")).sort("__t", "__pos", nulls_last=True)
    cluster = (pl.col("__t").diff().fill_null(0) > INCIDENT_UPLOAD_GAP_MS).cum_sum()
    first = pl.col("__t").first().over(cluster)
    return todo.select(pl.col("__pos"), pl.concat_str([
        pl.lit("incidents-upload-"), pl.when(first.is_not_null()).then(first.cast(pl.String)).otherwise(pl.lit("unknown"))
    ]).alias(SESSION_COLUMN))


def rebuilt_sessions(metas: dict[str, pl.DataFrame], known: set[str]) -> pl.DataFrame:
    """Upload sessions that records point to but the export does not hold, with their counts."""
    parts = [
        meta.group_by(SESSION_COLUMN).agg(
            pl.col("file_name").drop_nulls().first(), pl.col("file_hash").drop_nulls().first(),
            pl.col("upload_timestamp").min(), pl.len().cast(pl.Int32).alias("record_count"),
        ).with_columns(pl.lit(name).alias("data_type"))
        for name, meta in metas.items() if meta.height
    ]
    if not parts:
        return pl.DataFrame(schema=stage_schema(UPLOAD_SESSIONS))
    rows = pl.concat(parts).filter(~pl.col(SESSION_COLUMN).is_in(sorted(known))).sort(SESSION_COLUMN)
    return rows.rename({SESSION_COLUMN: "id"}).with_columns(
        pl.col("record_count").alias("success_count"), pl.lit(0, pl.Int32).alias("error_count"),
        pl.lit("completed").alias("status"), pl.lit(True).alias("reconstructed"),
        pl.lit(None, pl.Int64).alias("file_size"), pl.lit(None, pl.String).alias("error_log"),
    ).select([pl.col(c.name).cast(polars_dtype(c)) for c in UPLOAD_SESSIONS.columns])


def carried_counts(frames: Iterable[pl.DataFrame | pl.LazyFrame]) -> pl.DataFrame:
    """(upload_session_id, rows): how many rows carry each session id, over the given records."""
    counts = [f.lazy().filter(pl.col(SESSION_COLUMN).is_not_null()).group_by(SESSION_COLUMN)
              .agg(pl.len().cast(pl.Int64).alias("rows")) for f in frames]
    if not counts:
        return pl.DataFrame(schema=COUNTS_SCHEMA)
    return pl.concat(counts).group_by(SESSION_COLUMN).agg(pl.col("rows").sum()).collect()


FINALIZED = ("record_count", "success_count", "status")  # what finalizing a session sets


def finalize_sessions(sessions: pl.DataFrame, counts: pl.DataFrame) -> pl.DataFrame:
    """Sessions whose id loaded rows carry: status completed, record and success counts = those rows.

    `counts` has columns ``upload_session_id`` and ``rows``; sessions no row carries
    (failed or deleted uploads) keep what the stage says.
    """
    n = pl.col("__rows")
    carried = n.fill_null(0) > 0
    out = sessions.join(counts.rename({SESSION_COLUMN: "id", "rows": "__rows"}), on="id", how="left",
                        maintain_order="left")
    return out.with_columns(
        pl.when(carried).then(n).otherwise(pl.col("record_count")).cast(pl.Int32).alias("record_count"),
        pl.when(carried).then(n).otherwise(pl.col("success_count")).cast(pl.Int32).alias("success_count"),
        pl.when(carried).then(pl.lit("completed")).otherwise(pl.col("status")).alias("status"),
    ).select(sessions.columns)


def expected_sessions(stage: StageFolder) -> pl.DataFrame:
    """Upload sessions as the load leaves them: finalized from the staged rows that carry each id."""
    counts = carried_counts(stage.read(s, lazy=True) for s in SESSION_STORES if stage.has(s))
    sessions = stage.read(UPLOAD_SESSIONS)
    return finalize_sessions(sessions, counts).cast(dict(sessions.schema))


def carried_counts_sql() -> str:
    """The same counts in SQL (MySQL and DuckDB alike), per table: (upload_session_id, n) rows to sum."""
    return " UNION ALL ".join(
        f"SELECT {SESSION_COLUMN}, COUNT(*) AS n FROM {s.table} WHERE {SESSION_COLUMN} IS NOT NULL GROUP BY {SESSION_COLUMN}"
        for s in SESSION_STORES)
