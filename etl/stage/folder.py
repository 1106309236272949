"""The staged data between transform and load: one Parquet file per table, typed from the store descriptions.

This is the contract the later stages share: load, parity and expectations read
staged tables through `read_stage`, and the transform writes exactly `stage_schema`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import polars as pl
import pyarrow.parquet as pq

from ..core.errors import EtlError
from ..core.stores import STORES, Column, Store
from ..core.stores import store as store_by_name

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
    try:
        frame = pl.scan_parquet(path)
        got, want = frame.collect_schema(), stage_schema(store)
    except (pl.exceptions.PolarsError, OSError) as e:  # a truncated or foreign file
        raise EtlError(f"staged table {store.table} is not a readable Parquet file ({_first_line(e)}): "
                       "run `etl transform` again", file=str(path), store=store.name) from None
    if got != want:
        diff = sorted(set(got.items()) ^ set(want.items()), key=str)[:6]
        raise EtlError(f"staged table {store.table} does not match its description: {diff}", file=str(path), store=store.name)
    if lazy:
        return frame
    try:
        return frame.collect()
    except (pl.exceptions.PolarsError, OSError) as e:  # a damaged page inside an intact footer
        raise EtlError(f"staged table {store.table} cannot be read ({_first_line(e)}): run `etl transform` again",
                       file=str(path), store=store.name) from None


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def stage_summary(stage_dir: Path) -> dict:
    path = Path(stage_dir) / SUMMARY
    if not path.is_file():
        raise EtlError("the stage folder has no transform summary: it is missing or incomplete; run `etl transform`", file=str(path))
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        raise EtlError(f"the transform summary cannot be read: {_first_line(e)}", file=str(path)) from None
    if not isinstance(summary, dict) or not isinstance(summary.get("counts"), dict):
        raise EtlError("the transform summary has no per-store counts: not written by `etl transform`", file=str(path))
    return summary


@dataclass(frozen=True)
class StageFolder:
    """A stage folder, opened once: its transform summary parsed, passed to load, parity and validate."""

    dir: Path
    summary: Mapping = field(repr=False, compare=False)  # the parsed transform-summary.json (read-only view)

    @classmethod
    def open(cls, stage_dir: Path | StageFolder) -> StageFolder:
        """The stage at `stage_dir` (EtlError when the transform did not finish it); a StageFolder is returned as is."""
        if isinstance(stage_dir, StageFolder):
            return stage_dir
        return cls(Path(stage_dir), MappingProxyType(stage_summary(stage_dir)))

    def check(self) -> tuple[Store, ...]:
        """The staged stores, once the stage agrees with its summary (see `check_stage`)."""
        return _check(self.dir, self.summary)

    def path(self, store: Store) -> Path:
        return stage_path(self.dir, store)

    def has(self, store: Store) -> bool:
        return stage_path(self.dir, store).is_file()

    def read(self, store: Store, *, lazy: bool = False) -> pl.DataFrame | pl.LazyFrame:
        return read_stage(self.dir, store, lazy=lazy)

    @property
    def stores(self) -> tuple[Store, ...]:
        """The stores the stage holds a table for, in description order."""
        return staged_stores(self.dir)


def stage_identity(stage_dir: Path) -> str | None:
    """Names, sizes and modification times of the transform's own files (the Parquet, the rejects,
    the summary), hashed: a new transform changes it; what later steps keep in the folder (the
    load's work files, the digests) does not. None when no transform finished there."""
    stage = Path(stage_dir)
    if not (stage / SUMMARY).is_file():
        return None
    files = sorted([*stage.glob("*.parquet"), stage / SUMMARY, *(stage / "rejects").rglob("*")])
    text = "\n".join(f"{p.relative_to(stage)} {p.stat().st_size} {p.stat().st_mtime_ns}" for p in files if p.is_file())
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def check_stage(stage_dir: Path) -> tuple[Store, ...]:
    """The staged stores, once the stage agrees with its own summary: every table the summary
    lists is there, a readable Parquet file with the schema of its description and the row
    count the summary gives; no table is there that the summary does not list. Reads only
    the files' footers. Load and parity call this before they use a stage."""
    return StageFolder.open(stage_dir).check()


def _check(stage_dir: Path, summary: Mapping) -> tuple[Store, ...]:
    listed = {}
    for name, counts in summary["counts"].items():
        try:
            listed[store_by_name(name).table] = int(counts["staged"])
        except (KeyError, TypeError, ValueError):
            raise EtlError("the transform summary lists a store it does not describe or without a staged count",
                           file=str(stage_dir / SUMMARY), store=name) from None
    for store in STORES:
        path = stage_path(stage_dir, store)
        if store.table not in listed:
            if path.exists():
                raise EtlError(f"staged table {store.table} is not in the transform summary: it was not written "
                               "by this stage's transform; run `etl transform` again", file=str(path), store=store.name)
            continue
        if not path.is_file():
            raise EtlError(f"staged table {store.table} is missing although the transform summary lists "
                           f"{listed[store.table]:,} rows: run `etl transform` again", file=str(path), store=store.name)
        try:
            rows = pq.read_metadata(path).num_rows
        except Exception as e:  # noqa: BLE001 - pyarrow raises several kinds for a damaged footer
            raise EtlError(f"staged table {store.table} is not a readable Parquet file ({_first_line(e)}): "
                           "run `etl transform` again", file=str(path), store=store.name) from None
        if rows != listed[store.table]:
            raise EtlError(f"staged table {store.table} holds {rows:,} rows where the transform summary lists "
                           f"{listed[store.table]:,}: run `etl transform` again", file=str(path), store=store.name)
        read_stage(stage_dir, store, lazy=True)  # the schema
    return tuple(s for s in STORES if s.table in listed)


def staged_stores(stage_dir: Path) -> tuple[Store, ...]:
    """The stores the stage holds a table for, in description order."""
    return tuple(s for s in STORES if stage_path(stage_dir, s).is_file())
