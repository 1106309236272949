"""Comparing two stages table by table: what 'the same stage' means in the tests."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from etl import STORES, read_stage
from etl.stage.folder import rejects_path


def stage_tables(stage_dir: Path) -> dict[str, pl.DataFrame]:
    """Every staged table, rows in primary-key order (a stage's row order follows its export's files)."""
    return {s.table: read_stage(stage_dir, s).sort(list(s.primary_key)) for s in STORES}


def rejected_keys(stage_dir: Path) -> dict[str, list]:
    """Per table, the rejected records' keys and reasons (the files they name differ between forms)."""
    out = {}
    for s in STORES:
        path = rejects_path(stage_dir, s)
        frame = pl.read_parquet(path) if path.is_file() else pl.DataFrame()
        cols = [c for c in ("key", "field", "reason") if c in frame.columns]
        out[s.table] = sorted(map(str, frame.select(cols).rows())) if cols else []
    return out


def assert_same_stage(a: Path, b: Path) -> None:
    ta, tb = stage_tables(a), stage_tables(b)
    for table in ta:
        assert ta[table].height == tb[table].height, (table, ta[table].height, tb[table].height)
        assert ta[table].equals(tb[table]), (table, _first_difference(ta[table], tb[table]))
    assert rejected_keys(a) == rejected_keys(b)


def _first_difference(x: pl.DataFrame, y: pl.DataFrame) -> str:
    for col in x.columns:
        if not x[col].equals(y[col]):
            i = next(i for i, (p, q) in enumerate(zip(x[col], y[col])) if p != q)
            return f"column {col}, row {i}: {x[col][i]!r} != {y[col][i]!r}"
    return "?"
