"""DuckDB connections as every stage uses them."""

from __future__ import annotations

import duckdb


def connect(database: str = ":memory:", *, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """UTC session time zone (zone-less times are UTC here), and no progress bar: a stage's
    output is its own result, not DuckDB's."""
    con = duckdb.connect(database, config={"threads": threads} if threads else {})
    try:
        con.execute("SET enable_progress_bar = false")
    except duckdb.InvalidInputException:
        pass  # under Jupyter DuckDB refuses to touch this setting unless ipywidgets is installed
    con.execute("SET TimeZone = 'UTC'")
    return con


def literal(text) -> str:
    """A string (or a path) as a DuckDB string literal."""
    return "'" + str(text).replace("'", "''") + "'"
