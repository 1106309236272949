"""The source side of a validation (etl.check.validate), from the stage: the tables as MySQL should
hold them after the load (upload sessions finalized by the loader's own rule), the suites' expected
parameters (value sets, the views' rows), the staged records that already break each rule, and the
categorical values MySQL's collation merges."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ..core import duck
from ..core.stores import SESSION_COLUMN, SESSION_STORES, UPLOAD_SESSIONS
from ..stage.folder import read_stage, stage_path, stage_schema
from ..stage.sessions import carried_counts, finalize_sessions
from .aggregates import AGGREGATES, expected_rows, group_key
from .rules import DUCKDB, RULE_STORES, RULES

EXAMPLES = 3


def _needed_columns(store) -> list[str]:
    """The columns the parameters are computed from (a 1M-ticket stage is not read whole)."""
    from .aggregates import MONTH

    cols = set(store.categorical) | ({SESSION_COLUMN} & set(store.column_names))
    for agg in AGGREGATES:
        if agg.store is store:
            cols |= {store.time_column if k == MONTH else k for k in agg.keys}
            cols |= {m.column for m in agg.measures if m.column}
    return [c for c in store.column_names if c in cols]


def source_frames(stage_dir: Path) -> dict[str, pl.DataFrame]:
    """The tables as MySQL should hold them after the load: the stage, with upload sessions
    finalized the way the loader finalizes them (counts = rows carrying the id). Only the
    columns expectations read, except for upload sessions (small, and finalized whole)."""
    frames = {}
    for store in RULE_STORES:
        cols = store.column_names if store is UPLOAD_SESSIONS else _needed_columns(store)
        frames[store.name] = (read_stage(stage_dir, store, lazy=True).select(cols).collect()
                              if stage_path(stage_dir, store).is_file()
                              else pl.DataFrame(schema=stage_schema(store)).select(cols))
    counts = carried_counts(frames[s.name] for s in SESSION_STORES if s.name in frames)
    frames[UPLOAD_SESSIONS.name] = finalize_sessions(frames[UPLOAD_SESSIONS.name], counts)  # the loader's own rule
    return frames


def source_parameters(frames: dict[str, pl.DataFrame]) -> dict[str, list]:
    """Every suite parameter: the source's value sets and the views' expected rows."""
    return {**value_sets(frames), **view_parameters(frames)}


def value_sets(frames: dict[str, pl.DataFrame]) -> dict[str, list]:
    """The `in set` rules' parameters: each categorical column's values in the source."""
    params: dict[str, list] = {}
    for rule in RULES:
        if rule.parameter:
            col = rule.expectation[1]["column"]
            values = frames[rule.store.name].get_column(col).drop_nulls().unique().sort().to_list()
            params[rule.parameter] = values
    return params


def view_parameters(frames: dict[str, pl.DataFrame]) -> dict[str, list]:
    """The views' parameters: their rows and row counts as the source gives them."""
    params: dict[str, list] = {}
    for agg in AGGREGATES:
        params[agg.parameter] = expected_rows(agg, frames[agg.store.name])
        params[agg.count_parameter] = len(params[agg.parameter])
    return params


@dataclass(frozen=True)
class SourceBreach:
    """The source records that break one rule."""

    records: int
    keys: frozenset
    examples: tuple[str, ...]


def describe_row(row: dict) -> str:
    return ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in row.items())


def source_breaches(stage_dir: Path) -> dict[str, SourceBreach]:
    """Rule name -> the staged records breaking it (for the rules the source can break)."""
    con = duck.connect()
    for store in RULE_STORES:
        path = stage_path(stage_dir, store)
        if path.is_file():
            con.sql(f"CREATE VIEW {store.table} AS SELECT * FROM read_parquet({duck.literal(path)})")
        else:  # an export without this store: an empty table of the right shape
            con.register(store.table, pl.DataFrame(schema=stage_schema(store)).to_arrow())
    out = {}
    for rule in RULES:
        if not rule.source_checked:
            continue
        rel = con.sql(rule.sql(DUCKDB))
        cols = rel.columns
        rows = sorted(rel.fetchall(), key=lambda r: tuple(str(v) for v in r))  # the same examples every run
        out[rule.name] = SourceBreach(len(rows), frozenset(r[0] for r in rows),
                                      tuple(describe_row(dict(zip(cols, r))) for r in rows[:EXAMPLES]))
    con.close()
    return out


def collation_notes(frames: dict[str, pl.DataFrame]) -> list[str]:
    """Categorical values MySQL's collation merges (case, trailing spaces): one group in its views."""
    notes = []
    for store in RULE_STORES:
        frame = frames[store.name]
        for col in store.categorical:
            if not store.column(col).is_text:
                continue
            merged = (frame.select(pl.col(col).drop_nulls().unique()).with_columns(group_key(col).alias("__g"))
                      .group_by("__g").agg(pl.col(col).sort()).filter(pl.col(col).list.len() > 1))
            for spellings in merged.get_column(col).to_list():
                notes.append(f"{store.table}.{col}: the source holds {', '.join(repr(s) for s in spellings)}, "
                             "which MySQL's collation groups as one value (the app shows them apart)")
    return notes
