"""DuckDB connections as every stage uses them."""

from __future__ import annotations

import duckdb


def connect(database: str = ":memory:", *, threads: int | None = None,
            string_views: bool = False) -> duckdb.DuckDBPyConnection:
    """UTC time zone (zone-less times are UTC here), and no progress bar: a stage's output is its
    own result, not DuckDB's. The time zone is set GLOBAL, so the connection's cursors (one per
    thread) have it too: a cursor does not inherit its connection's SET, and would take the
    machine's time zone.

    `string_views`: text reaches Arrow as string views, DuckDB's own layout, which Polars takes
    without copying (plain Arrow strings are copied into views on the way in and back out)."""
    con = duckdb.connect(database, config={"threads": threads} if threads else {})
    try:
        con.execute("SET enable_progress_bar = false")
    except duckdb.InvalidInputException:
        pass  # under Jupyter DuckDB refuses to touch this setting unless ipywidgets is installed
    con.execute("SET GLOBAL TimeZone = 'UTC'")
    if string_views:
        con.execute("SET produce_arrow_string_view = true")
        con.execute("SET arrow_output_version = '1.5'")
    return con


def literal(text) -> str:
    """A string (or a path) as a DuckDB string literal."""
    return "'" + str(text).replace("'", "''") + "'"
