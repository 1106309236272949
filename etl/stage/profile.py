"""What an analyst looks at in a stage: tickets over time, how full each field is, why records were rejected.

Small frames for the notebooks (charts and tables), computed from the staged Parquet, which
carries the export's values as stored (absent and null are NULL, "" stays ""), so these
shares are the export's own, less the rejected records (counted by `rejects_by_reason`).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from .folder import read_stage, rejects_path, staged_stores
from ..core.stores import TICKETS, store as lookup


def tickets_per_day(stage_dir: Path, by: str = "cabang") -> pl.DataFrame:
    """Tickets per day (of their time column, UTC) and per value of `by`: day, <by>, tickets."""
    time = TICKETS.time_column
    return (read_stage(stage_dir, TICKETS, lazy=True)
            .group_by(pl.col(time).dt.date().alias("day"), pl.col(by))
            .agg(pl.len().alias("tickets"))
            .sort("day", by, nulls_last=True)
            .collect())


def field_shares(stage_dir: Path, table: str = "tickets") -> pl.DataFrame:
    """Per field of the export (derived columns left out): rows, null share and empty-string share (0..1)."""
    st = lookup(table)
    cols = [c for c in st.columns if c.source is not None]
    frame = read_stage(stage_dir, st, lazy=True)
    counts = frame.select(
        pl.len().alias("__rows"),
        *(pl.col(c.name).is_null().sum().alias(f"null:{c.name}") for c in cols),
        *(pl.col(c.name).eq("").sum().alias(f"empty:{c.name}") for c in cols if c.is_text),
    ).collect().row(0, named=True)
    rows = counts["__rows"]
    share = (lambda n: n / rows if rows else 0.0)
    return pl.DataFrame(
        {"field": [c.source for c in cols],
         "column": [c.name for c in cols],
         "rows": [rows] * len(cols),
         "null_share": [share(counts[f"null:{c.name}"]) for c in cols],
         "empty_share": [share(counts.get(f"empty:{c.name}", 0)) for c in cols]},
        schema={"field": pl.String, "column": pl.String, "rows": pl.Int64,
                "null_share": pl.Float64, "empty_share": pl.Float64})


def rejects_by_reason(stage_dir: Path) -> pl.DataFrame:
    """Rejected records per table, field and reason, most first: table, field, reason, records, example."""
    frames = []
    for st in staged_stores(stage_dir):
        path = rejects_path(stage_dir, st)
        if path.is_file():
            frames.append(pl.read_parquet(path).with_columns(pl.lit(st.table).alias("table")))
    schema = {"table": pl.String, "field": pl.String, "reason": pl.String, "records": pl.UInt32, "example": pl.String}
    if not frames:
        return pl.DataFrame(schema=schema)
    return (pl.concat(frames, how="vertical_relaxed")
            .group_by("table", "field", "reason")
            .agg(pl.len().alias("records"), pl.col("value").first().alias("example"))
            .sort(["records", "table", "field"], descending=[True, False, False])
            .cast(schema))
