"""The upload-session rule in one home (etl/stage/sessions.py), derived from the store descriptions."""

from __future__ import annotations

import polars as pl

from etl import STORES, StageFolder, export, transform, write_sample
from etl.core import duck
from etl.core.stores import SESSION_COLUMN, SESSION_STORES, TICKETS, UPLOAD_SESSIONS
from etl.stage.sessions import SESSION_META, carried_counts, carried_counts_sql, expected_sessions
from etl.stage.transform import REPEATED, meta_columns


def test_which_stores_carry_a_session_is_read_from_the_descriptions():
    assert [s.name for s in SESSION_STORES] == ["tickets", "incidents", "customers"]
    assert all((SESSION_COLUMN in s.column_names) == s.carries_session for s in STORES)
    assert not UPLOAD_SESSIONS.carries_session
    assert SESSION_META == (SESSION_COLUMN, "file_name", "file_hash", "upload_timestamp")
    assert REPEATED == ("file_name", "file_hash", "__file")
    assert "imported_at" in meta_columns(next(s for s in STORES if s.name == "incidents"))
    assert TICKETS.sla.columns == ("sla_4h", "sla_8h", "sla_24h")
    assert all(c in TICKETS.column_names for c in TICKETS.sla.columns)


def test_counts_and_finalized_sessions_agree_in_sql_and_frames(tmp_path):
    write_sample(tmp_path / "raw", tickets=300, seed=3)
    export(tmp_path / "raw", tmp_path / "export")
    transform(tmp_path / "export", tmp_path / "stage")
    stage = StageFolder.open(tmp_path / "stage")
    frames = carried_counts(stage.read(s) for s in SESSION_STORES).sort(SESSION_COLUMN)
    con = duck.connect()
    for s in SESSION_STORES:
        con.sql(f"CREATE VIEW {s.table} AS SELECT * FROM read_parquet('{stage.path(s)}')")
    sql = pl.from_arrow(con.sql(f"SELECT {SESSION_COLUMN}, SUM(n)::BIGINT AS rows FROM ({carried_counts_sql()}) "
                                f"GROUP BY {SESSION_COLUMN} ORDER BY {SESSION_COLUMN}").arrow())
    assert frames.height > 3 and frames.equals(sql.sort(SESSION_COLUMN))
    # every session a staged row carries is finalized: completed, counted by those rows
    finalized = expected_sessions(stage).join(frames.rename({SESSION_COLUMN: "id"}), on="id")
    assert finalized.height == frames.height
    assert (finalized["record_count"] == finalized["rows"]).all() and (finalized["status"] == "completed").all()
