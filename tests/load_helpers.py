"""Helpers shared by the load tests: staged frames to the stage schema, the real chain, table state."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl

from etl import STORES, Store, store
from etl.core.rowhash import checksum
from etl.mysql.read import mysql_row_hashes
from etl.stage.folder import stage_schema

TICKETS = store("tickets")

# Text that must come back byte for byte: every character LOAD DATA treats specially,
# the escape sequences themselves, 4-byte UTF-8, stray spaces, and '' next to NULL.
TRICKY_TEXT = [
    "tab\there", "new\nline", "carriage\rreturn", "nul\x00byte", "back\\slash", "\\N", "\\t literal",
    "trailing space  ", "  leading", "emoji 🙂 and 𝄞", "quote ' and \" and `", "", None, "NULL", "a\tb\nc\\d\x00e",
]


def frame(st: Store, rows: list[dict]) -> pl.DataFrame:
    """A staged frame of `st` from partial rows (unset columns are NULL), typed exactly as the stage is."""
    schema = stage_schema(st)
    return pl.DataFrame([{c: r.get(c) for c in schema.names()} for r in rows], schema=schema, orient="row")


def ticket(i: int, **values) -> dict:
    row = {"id": f"t-{i:05d}", "open_time": datetime(2024, 7, 15, 17, 35, 0, 123000)}
    row.update(values)
    return row


def tricky_tickets() -> pl.DataFrame:
    """One ticket per tricky text, in text, varchar and key-adjacent columns, plus edge numbers and times."""
    rows = []
    for i, text in enumerate(TRICKY_TEXT):
        rows.append(ticket(
            i, name=text, description=text, handling1=text, cabang=text,
            duration_raw_hours=(-1e-7, 0.1 + 0.2, None, 1e21, 5e-324)[i % 5],  # doubles every engine prints its own way
            duration_formatted="53:08:00" if i % 2 else "",
            close_time=datetime(2024, 7, 17, 15, 43, 0, 999000) if i % 2 else None,
            upload_timestamp=1_721_064_900_123 + i, sla_4h=(None, True, False)[i % 3],
        ))
    return frame(TICKETS, rows)


def table_state(target) -> dict:
    """Per data table: row count and checksum of every described column (as connectorx reads it back)."""
    return {st.table: str(checksum(mysql_row_hashes(target, st))) for st in STORES}


def index_names(target) -> dict:
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name, index_name FROM information_schema.statistics "
                    "WHERE table_schema = DATABASE() GROUP BY table_name, index_name ORDER BY 1, 2")
        out: dict[str, list[str]] = {}
        for table, index in cur.fetchall():
            out.setdefault(table, []).append(index)
        return out


def staged_sample(folder: Path, tickets: int, *, seed: int = 7) -> Path:
    """The real chain: sample export -> etl export -> etl transform. Returns the stage folder."""
    from etl import export, transform, write_sample

    write_sample(folder / "sample", tickets=tickets, seed=seed)
    export(folder / "sample", folder / "export")
    transform(folder / "export", folder / "stage")
    return folder / "stage"
