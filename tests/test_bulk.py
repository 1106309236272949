"""Writing batches: values round-trip exactly, refused rows are isolated, dropped indexes come back."""

from __future__ import annotations

from datetime import datetime

import pytest

from etl import store
from etl.mysql import bulk

from load_helpers import TICKETS, TRICKY_TEXT, frame, ticket, tricky_tickets


def _read_back(target, columns: str, table: str = "tickets") -> list[tuple]:
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT {columns} FROM {table} ORDER BY id")
        return list(cur.fetchall())


@pytest.mark.parametrize("method", [bulk.LOAD_DATA, bulk.INSERT])
def test_values_round_trip_exactly(schema_target, tmp_path, method):
    staged = tricky_tickets()
    with schema_target.connect(autocommit=False) as conn:
        writer = bulk.Writer(conn, TICKETS, method, tmp_path)
        assert writer.method == method
        written, refused = writer.write("tickets", staged, writer.prepare(staged))
        conn.commit()
    assert (written, refused) == (len(TRICKY_TEXT), [])
    back = _read_back(schema_target, "id, name, description, handling1, cabang, duration_raw_hours, duration_formatted, "
                                     "close_time, open_time, upload_timestamp, sla_4h")
    want = staged.select("id", "name", "description", "handling1", "cabang", "duration_raw_hours", "duration_formatted",
                         "close_time", "open_time", "upload_timestamp", "sla_4h").rows()
    want = [(*r[:10], None if r[10] is None else int(r[10])) for r in want]
    assert back == want
    # NULL and '' stay apart; the text columns hold exactly the tricky strings, NUL bytes included.
    assert [r[1] for r in back] == TRICKY_TEXT
    assert list(tmp_path.iterdir()) == []  # no batch file left behind


@pytest.mark.parametrize("method", [bulk.LOAD_DATA, bulk.INSERT])
def test_refused_rows_are_isolated_and_the_rest_is_written(schema_target, tmp_path, method):
    rows = [ticket(i, name=f"name {i}") for i in range(40)]
    rows[3]["name"] = "x" * 256  # VARCHAR(255)
    rows[17]["status"] = "s" * 51  # VARCHAR(50)
    rows[18]["open_time"] = datetime(2024, 1, 1)  # fine: next to a bad row
    rows[39]["open_time"] = None  # NOT NULL
    staged = frame(TICKETS, rows)
    with schema_target.connect(autocommit=False) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES'")
        writer = bulk.Writer(conn, TICKETS, method, tmp_path)
        written, refused = writer.write("tickets", staged)
        conn.commit()
    assert written == 37
    assert [r.row for r in refused] == [3, 17, 39]
    assert "name" in refused[0].message and "status" in refused[1].message and "open_time" in refused[2].message
    assert all(isinstance(r.code, int) and r.code > 1000 for r in refused)  # the server's own error or warning code
    ids = [r[0] for r in _read_back(schema_target, "id")]
    assert ids == [f"t-{i:05d}" for i in range(40) if i not in (3, 17, 39)]
    assert _read_back(schema_target, "name")[3][0] == "name 4"  # nothing truncated, nothing shifted


def test_double_and_datetime_edges_are_kept(schema_target, tmp_path):
    staged = frame(TICKETS, [
        ticket(1, duration_raw_hours=0.0, close_time=datetime(1970, 1, 1)),
        ticket(2, duration_raw_hours=-1.7976931348623157e308, close_time=datetime(9999, 12, 31, 23, 59, 59, 999000)),
        ticket(3, duration_raw_hours=53.13333333333333, close_time=datetime(2024, 7, 17, 15, 43)),
    ])
    with schema_target.connect(autocommit=False) as conn:
        bulk.Writer(conn, TICKETS, bulk.LOAD_DATA, tmp_path).write("tickets", staged)
        conn.commit()
    assert _read_back(schema_target, "duration_raw_hours, close_time") == [
        (0.0, datetime(1970, 1, 1)),
        (-1.7976931348623157e308, datetime(9999, 12, 31, 23, 59, 59, 999000)),
        (53.13333333333333, datetime(2024, 7, 17, 15, 43)),  # every bit of the double
    ]


def _create_table(target) -> str:
    with target.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW CREATE TABLE tickets")
        return cur.fetchone()[1]


def test_dropped_indexes_are_recorded_and_rebuilt_by_a_later_connection(schema_target):
    before = _create_table(schema_target)
    with schema_target.connect() as conn:
        indexes = bulk.secondary_indexes(conn, "tickets")
        assert len(indexes) == 11 and all(d.startswith("KEY `") for d in indexes.values())
        assert bulk.drop_secondary_indexes(conn, "tickets") == 11
        assert bulk.secondary_indexes(conn, "tickets") == {}
    # The process that dropped them is gone: a new connection finds the record and rebuilds.
    with schema_target.connect() as conn:
        assert bulk.pending_indexes(conn, "tickets") == indexes
        assert bulk.rebuild_indexes(conn, "tickets") == 11
        assert bulk.pending_indexes(conn, "tickets") == {}
        assert bulk.rebuild_indexes(conn, "tickets") == 0
    assert _create_table(schema_target) == before


def test_a_record_without_the_drop_rebuilds_nothing_and_clears(schema_target):
    """A run that died between recording and dropping: the indexes are all still there."""
    before = _create_table(schema_target)
    with schema_target.connect() as conn, conn.cursor() as cur:
        for i, (name, definition) in enumerate(bulk.secondary_indexes(conn, "tickets").items()):
            cur.execute("INSERT INTO etl_load_indexes (table_name, index_name, position, definition) "
                        "VALUES ('tickets', %s, %s, %s)", (name, i, definition))
        assert bulk.rebuild_indexes(conn, "tickets") == 0
        assert bulk.pending_indexes(conn, "tickets") == {}
    assert _create_table(schema_target) == before


def test_a_second_drop_keeps_the_first_record(schema_target):
    """Dropping again (after a crash left the table bare) must not lose the recorded definitions."""
    with schema_target.connect() as conn:
        recorded = bulk.secondary_indexes(conn, "customers")
        bulk.drop_secondary_indexes(conn, "customers")
        assert bulk.drop_secondary_indexes(conn, "customers") == 0
        assert bulk.pending_indexes(conn, "customers") == recorded
        bulk.rebuild_indexes(conn, "customers")
        assert bulk.secondary_indexes(conn, "customers") == recorded


def test_unknown_method_is_refused(schema_target, tmp_path):
    with schema_target.connect() as conn, pytest.raises(Exception, match="unknown load method"):
        bulk.Writer(conn, store("vendors"), "copy", tmp_path)
