"""The staged data between transform and load: one Parquet file per table, typed from the store descriptions.

This is the contract the later stages share: load, parity and expectations read
staged tables through `read_stage`, and the transform writes exactly `stage_schema`.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from .errors import EtlError
from .stores import STORES, Column, Store

SUMMARY = "transform-summary.json"


def polars_dtype(col: Column) -> pl.DataType:
    """How a column is held in a frame and in Parquet. Times are naive UTC, millisecond precision."""
    return {
        "varchar": pl.String(),
        "text": pl.String(),
        "mediumtext": pl.String(),
        "json": pl.String(),
        "int": pl.Int32(),
        "bigint": pl.Int64(),
        "epoch_ms": pl.Int64(),
        "bool": pl.Boolean(),
        "double": pl.Float64(),
        "datetime": pl.Datetime("ms"),
    }[col.kind]


def stage_schema(store: Store) -> pl.Schema:
    return pl.Schema({c.name: polars_dtype(c) for c in store.columns})


def stage_path(stage_dir: Path, store: Store) -> Path:
    return Path(stage_dir) / f"{store.table}.parquet"


def rejects_path(stage_dir: Path, store: Store) -> Path:
    return Path(stage_dir) / "rejects" / f"{store.table}.parquet"


def read_stage(stage_dir: Path, store: Store, *, lazy: bool = False) -> pl.DataFrame | pl.LazyFrame:
    """A staged table, checked against its description (so no stage reads stale or foreign files)."""
    path = stage_path(stage_dir, store)
    if not path.is_file():
        raise EtlError(f"no staged table {store.table}: run `etl transform` first", file=str(path), store=store.name)
    frame = pl.scan_parquet(path)
    got, want = frame.collect_schema(), stage_schema(store)
    if got != want:
        diff = sorted(set(got.items()) ^ set(want.items()), key=str)[:6]
        raise EtlError(f"staged table {store.table} does not match its description: {diff}", file=str(path), store=store.name)
    return frame if lazy else frame.collect()


def stage_summary(stage_dir: Path) -> dict:
    path = Path(stage_dir) / SUMMARY
    if not path.is_file():
        raise EtlError("the stage folder has no transform summary: it is missing or incomplete; run `etl transform`", file=str(path))
    return json.loads(path.read_text())


def staged_stores(stage_dir: Path) -> tuple[Store, ...]:
    """The stores the stage holds a table for, in description order."""
    return tuple(s for s in STORES if stage_path(stage_dir, s).is_file())
