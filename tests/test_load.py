"""Load on the real chain (sample -> export -> transform -> load) into a real server.

What the issue asks to be shown: staged counts arrive and upload sessions are finalized;
loading again writes nothing; a newer export writes only its differences and reports (or,
when asked, deletes) what is gone; refused rows land in the rejects file while the rest
of their chunk loads; an interrupted load is continued from the ledger.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from etl import EtlError, LoadError, load, read_stage, store
from etl.mysql import bulk
from etl.cli import app
from etl.stage.sessions import finalize_sessions
from etl.core.rowhash import checksum, row_hashes
from etl.mysql.read import mysql_row_hashes
from etl.stage.folder import stage_path, staged_stores

from load_helpers import index_names, staged_sample, table_state

TICKETS = store("tickets")
BATCH = 40  # small chunks, so the sample makes many of them


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("load-sample")
    staged_sample(folder, 300)
    return folder


@pytest.fixture
def stage(sample_dir, tmp_path) -> Path:
    """A private copy of the staged sample (the load writes its rejects/gone files beside it)."""
    return Path(shutil.copytree(sample_dir / "stage", tmp_path / "stage"))


def _sql(target, query: str, args=None) -> list[tuple]:
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute(query, args)
        return list(cur.fetchall())


def _ledger(target) -> tuple[int, int]:
    (n, written), = _sql(target, "SELECT COUNT(*), COALESCE(SUM(rows_written), 0) FROM etl_load_ledger")
    return int(n), int(written)


def _session_check(target) -> list[tuple]:
    """(id, status, record_count, success_count, rows carrying the id) for every session."""
    return _sql(target, """
        SELECT s.id, s.status, s.record_count, s.success_count, COALESCE(c.n, 0)
        FROM upload_sessions s LEFT JOIN (
            SELECT upload_session_id AS id, COUNT(*) AS n FROM (
                SELECT upload_session_id FROM tickets UNION ALL SELECT upload_session_id FROM incidents
                UNION ALL SELECT upload_session_id FROM customers) x
            GROUP BY upload_session_id) c ON c.id = s.id COLLATE utf8mb4_bin
        ORDER BY s.id""")


def test_sample_loads_with_staged_counts_and_finalized_sessions(schema_target, stage):
    indexes_before = index_names(schema_target)
    result = load(stage, schema_target, batch_rows=BATCH)
    for st in staged_stores(stage):
        staged = read_stage(stage, st)
        (held,), = _sql(schema_target, f"SELECT COUNT(*) FROM {st.table}")
        t = result.table(st.table)
        assert held == staged.height == t.staged == t.inserted, st.table
        assert (t.rejected, t.updated, t.gone, t.path) == (0, 0, 0, "bulk"), st.table
        if st.table != "upload_sessions":  # sessions are finalized on the way in (below)
            assert checksum(mysql_row_hashes(schema_target, st)) == checksum(row_hashes(staged, st)), st.table
    assert result.table("tickets").chunks == -(-300 // BATCH)

    sessions = _session_check(schema_target)
    carried = [s for s in sessions if s[4] > 0]
    assert carried and result.sessions_finalized == len(carried)
    for sid, status, records, successes, rows in carried:
        assert (status, records, successes) == ("completed", rows, rows), sid
    staged_sessions = read_stage(stage, store("upload_sessions"))
    for sid, status, records, successes, rows in sessions:
        if rows == 0:  # failed or deleted uploads keep what the export says
            want = staged_sessions.filter(pl.col("id") == sid).select("status", "record_count", "success_count").row(0)
            assert (status, records, successes) == want
    (orphans,), = _sql(schema_target, "SELECT COUNT(*) FROM tickets t LEFT JOIN upload_sessions s "
                                      "ON s.id = t.upload_session_id WHERE s.id IS NULL")
    assert orphans == 0

    # Every chunk checked and done; indexes back as the schema made them; no audit rows for the load.
    assert _sql(schema_target, "SELECT DISTINCT status FROM etl_load_ledger") == [("done",)]
    assert _ledger(schema_target)[1] == sum(t.inserted for t in result.tables)
    assert index_names(schema_target) == indexes_before
    assert _sql(schema_target, "SELECT COUNT(*) FROM etl_load_indexes") == [(0,)]
    assert _sql(schema_target, "SELECT COUNT(*) FROM audit_log") == [(0,)]


def test_loading_again_writes_nothing(schema_target, stage):
    load(stage, schema_target, batch_rows=BATCH)
    state, ledger_before = table_state(schema_target), _ledger(schema_target)
    stamps = _sql(schema_target, "SELECT id, created_at, updated_at FROM tickets ORDER BY id")
    time.sleep(0.01)  # a rewrite would move updated_at

    again = load(stage, schema_target, batch_rows=BATCH)
    assert again.written == 0
    for t in again.tables:
        assert (t.inserted, t.updated, t.deleted, t.chunks, t.path) == (0, 0, 0, 0, "diff"), t.table
        assert t.unchanged == t.staged, t.table
    assert _ledger(schema_target) == ledger_before  # no chunk planned, no row written
    assert table_state(schema_target) == state
    assert _sql(schema_target, "SELECT id, created_at, updated_at FROM tickets ORDER BY id") == stamps


def _newer_export(sample_dir: Path, out: Path) -> dict:
    """The sample export with 5 tickets changed, 4 gone and 3 new ones (new ids, new open times)."""
    shutil.copytree(sample_dir / "sample", out)
    path = out / "tickets.json"
    records = json.loads(path.read_text())
    changed = [r["id"] for r in records[10:15]]
    for r in records[10:15]:
        r["handling1"] = (r.get("handling1") or "") + " (ditindaklanjuti)"
    gone = [r["id"] for r in records[40:44]]
    new = [str(uuid.UUID(int=i + 1)) for i in range(3)]
    added = [dict(r, id=n, openTime=f"2025-08-2{i}T08:00:00") for i, (r, n) in enumerate(zip(records[100:103], new))]
    records = records[:40] + records[44:] + added
    path.write_text(json.dumps(records))
    summary = json.loads((out / "export-summary.json").read_text())
    summary["counts"]["tickets"] = len(records)
    (out / "export-summary.json").write_text(json.dumps(summary))
    return {"changed": changed, "gone": gone, "new": new}


def test_a_newer_export_writes_only_its_differences(schema_target, stage, sample_dir, tmp_path):
    from etl import export, transform

    load(stage, schema_target, batch_rows=BATCH)
    before = dict((r[0], r[1:]) for r in _sql(schema_target, "SELECT id, created_at, updated_at FROM tickets"))
    diff = _newer_export(sample_dir, tmp_path / "newer")
    export(tmp_path / "newer", tmp_path / "newer-export")
    transform(tmp_path / "newer-export", tmp_path / "newer-stage")
    newer = tmp_path / "newer-stage"
    time.sleep(0.01)

    result = load(newer, schema_target, batch_rows=BATCH).table("tickets")
    staged = read_stage(newer, TICKETS)
    assert (result.inserted, result.updated, result.deleted, result.gone) == (3, 5, 0, 4)
    assert result.unchanged == staged.height - 3 - 5
    assert sorted(pl.read_parquet(result.gone_file)["id"].to_list()) == sorted(diff["gone"])
    after = dict((r[0], r[1:]) for r in _sql(schema_target, "SELECT id, created_at, updated_at FROM tickets"))
    touched = {k for k in before if k in after and after[k] != before[k]}
    assert touched == set(diff["changed"])  # nothing else was rewritten
    assert all(after[k][0] == before[k][0] for k in diff["changed"])  # updated in place, not re-created
    assert set(after) == set(before) | set(diff["new"])  # gone rows are only reported
    for sid, status, records, successes, rows in _session_check(schema_target):
        if rows:
            assert (status, records, successes) == ("completed", rows, rows), sid

    deleting = load(newer, schema_target, batch_rows=BATCH, delete_missing=True).table("tickets")
    assert (deleting.deleted, deleting.gone, deleting.inserted, deleting.updated) == (4, 0, 0, 0)
    assert deleting.gone_file is None
    assert checksum(mysql_row_hashes(schema_target, TICKETS)) == checksum(row_hashes(staged, TICKETS))
    assert load(newer, schema_target, batch_rows=BATCH, delete_missing=True).written == 0


@pytest.mark.parametrize("method", [bulk.LOAD_DATA, bulk.INSERT])
def test_refused_rows_go_to_rejects_and_the_rest_of_their_chunk_loads(schema_target, stage, method):
    path = stage_path(stage, TICKETS)
    tickets = pl.read_parquet(path)
    bad = {5: ("name", "n" * 300), 6: ("status", "s" * 51), 250: ("name", "é" * 256)}  # VARCHAR(255) / VARCHAR(50)
    for row, (col, value) in bad.items():
        tickets = tickets.with_columns(pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value)).otherwise(pl.col(col)).alias(col))
    tickets.write_parquet(path)
    bad_ids = {tickets["id"][row]: col for row, (col, _) in bad.items()}

    result = load(stage, schema_target, batch_rows=1000, method=method)
    t = result.table("tickets")
    assert result.method == method
    assert (t.inserted, t.rejected, t.chunks) == (tickets.height - 3, 3, 1)
    rejects = pl.read_parquet(t.rejects_file)
    assert dict(zip(rejects["id"], rejects["error"])).keys() == bad_ids.keys()
    for key, error in zip(rejects["id"], rejects["error"]):
        assert bad_ids[key] in error  # the server's message names the column
    assert set(rejects.columns) >= {*TICKETS.column_names, "chunk_no", "error_code", "error"}
    held = {r[0] for r in _sql(schema_target, "SELECT id FROM tickets")}
    assert held == set(tickets["id"]) - bad_ids.keys()
    assert _sql(schema_target, "SELECT rows_written, rows_rejected, status FROM etl_load_ledger "
                               "WHERE table_name = 'tickets'") == [(tickets.height - 3, 3, "done")]

    again = load(stage, schema_target, batch_rows=1000, method=method).table("tickets")
    assert (again.written, again.rejected, again.unchanged) == (0, 3, tickets.height - 3)


def test_insert_method_gives_the_same_tables(schema_target, stage, mysql_server):
    base, _ = mysql_server
    other = type(base)(base.host, base.port, base.user, base.password, f"t_{uuid.uuid4().hex[:12]}", base.unix_socket)
    from etl import apply_schema

    apply_schema(other)
    try:
        a = load(stage, schema_target, batch_rows=BATCH, method=bulk.LOAD_DATA)
        b = load(stage, other, batch_rows=BATCH, method=bulk.INSERT)
        assert (a.method, b.method) == (bulk.LOAD_DATA, bulk.INSERT)
        assert table_state(schema_target) == table_state(other)
    finally:
        with base.connect(database=False) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{other.database}`")


class _Stop(Exception):
    pass


def test_an_interrupted_load_is_continued_from_the_ledger(schema_target, stage):
    def stop_after_three_chunks(table, done, total):
        if table == "tickets" and done >= 3 * BATCH:
            raise _Stop()

    with pytest.raises(_Stop):
        load(stage, schema_target, batch_rows=BATCH, progress=stop_after_three_chunks)
    chunks = -(-300 // BATCH)
    assert _sql(schema_target, "SELECT status, COUNT(*) FROM etl_load_ledger GROUP BY status ORDER BY 1") == [
        ("planned", chunks - 3), ("written", 3)]
    assert _sql(schema_target, "SELECT COUNT(*) FROM etl_load_indexes WHERE table_name = 'tickets'") == [(11,)]

    t = load(stage, schema_target, batch_rows=BATCH).table("tickets")
    assert t.continued == chunks  # every chunk not done: 3 written (now checked), the rest planned
    assert (t.inserted, t.unchanged, t.chunks) == (300 - 3 * BATCH, 3 * BATCH, chunks)
    assert _sql(schema_target, "SELECT DISTINCT status FROM etl_load_ledger") == [("done",)]
    assert _sql(schema_target, "SELECT COUNT(*) FROM etl_load_indexes") == [(0,)]
    assert checksum(mysql_row_hashes(schema_target, TICKETS)) == checksum(row_hashes(read_stage(stage, TICKETS), TICKETS))
    assert load(stage, schema_target, batch_rows=BATCH).written == 0


def test_progress_is_reported_per_table(schema_target, stage):
    events = []
    load(stage, schema_target, batch_rows=BATCH, progress=lambda *e: events.append(e))
    last = {table: (done, total) for table, done, total in events}
    assert set(last) == {st.table for st in staged_stores(stage)}
    assert all(done == total for done, total in last.values())
    assert last["tickets"] == (300, 300)


def test_finalize_sessions_is_a_pure_step():
    sessions = pl.DataFrame({"id": ["a", "b", "c"], "record_count": [5, 9, 1], "success_count": [5, 0, 1],
                             "status": ["uploading", "failed", "completed"]},
                            schema={"id": pl.String, "record_count": pl.Int32, "success_count": pl.Int32, "status": pl.String})
    counts = pl.DataFrame({"upload_session_id": ["a", "c", "zz"], "rows": [3, 1, 7]})
    out = finalize_sessions(sessions, counts)
    assert out.schema == sessions.schema
    assert out.rows() == [("a", 3, 3, "completed"), ("b", 9, 0, "failed"), ("c", 1, 1, "completed")]


def test_cli_load(schema_target, stage):
    runner = CliRunner()
    done = runner.invoke(app, ["load", "--stage", str(stage), "--mysql", schema_target.uri, "--batch-rows", "100", "-q"])
    assert done.exit_code == 0, done.output
    assert "tickets" in done.output and "300" in done.output and "batches of 100 rows" in done.output
    missing = runner.invoke(app, ["load", "--stage", str(stage / "nope"), "--mysql", schema_target.uri, "-q"])
    assert missing.exit_code == 1 and "transform" in missing.output


def test_load_refuses_a_target_without_the_schema(mysql_target, stage):
    with pytest.raises(EtlError, match="schema apply"):
        load(stage, mysql_target)


def test_keys_are_ordered_as_mysql_orders_them(schema_target):
    """utf8mb4_bin pads with spaces: 'a\\t' sorts before 'a', which sorts before 'a!'; chunk key ranges rely on it."""
    from etl.mysql.plan import mysql_order

    keys = ["b", "a!", "a", "a\t", "a\x01x", "a\nb", "ab", "é", "Z", "a\tz", "🙂", "a-"]
    with schema_target.connect() as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO customers (id) VALUES (%s)", [(k,) for k in keys])
        cur.execute("SELECT id FROM customers ORDER BY id")
        mysql = [r[0] for r in cur.fetchall()]
    ours = mysql_order(pl.DataFrame({"id": keys}), store("customers"))["id"].to_list()
    assert ours == mysql
    assert mysql_order(pl.DataFrame({"id": ["b", "a!", "a"]}), store("customers"))["id"].to_list() == ["a", "a!", "b"]


def test_load_refuses_a_ledger_of_an_older_layout(schema_target, stage):
    with schema_target.connect() as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE etl_load_ledger")
        cur.execute("CREATE TABLE etl_load_ledger (table_name VARCHAR(64), stage_id VARCHAR(64), chunk_no INT)")
    with pytest.raises(EtlError, match="older layout"):
        load(stage, schema_target)


@pytest.mark.parametrize("digest", [True, False], ids=["row_digest", "every-column"])
def test_a_row_stored_otherwise_than_sent_fails_its_chunk_check(schema_target, stage, digest):
    """The check compares what the server holds with what was sent: MySQL's row_digest against the
    staged rows' digests where the table has the column, every column read back otherwise."""
    victim = read_stage(stage, TICKETS)["id"][7]
    with schema_target.connect() as conn, conn.cursor() as cur:
        if not digest:
            cur.execute("ALTER TABLE tickets DROP COLUMN row_digest")
        cur.execute("CREATE TRIGGER etl_test_mangle BEFORE INSERT ON tickets FOR EACH ROW "
                    f"SET NEW.name = IF(NEW.id = '{victim}', CONCAT(IFNULL(NEW.name, ''), '!'), NEW.name)")
    with pytest.raises(LoadError, match=r"tickets chunk 1 .*the server holds 300:[0-9a-f]+ where 300:[0-9a-f]+ was sent"):
        load(stage, schema_target)
    (held,), = _sql(schema_target, "SELECT server_checksum FROM etl_load_ledger WHERE table_name = 'tickets' AND status = 'mismatch'")
    if digest:  # the server's own digests were summed: the ledger holds their sum
        (total,), = _sql(schema_target, "SELECT CAST(SUM(row_digest) % 18446744073709551616 AS UNSIGNED) FROM tickets")
        assert held == f"300:{int(total):016x}"
