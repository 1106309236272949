"""The row hash: equal rows hash equal whether they come from the stage or from MySQL; any change shows."""

from __future__ import annotations


import polars as pl
import pytest

from etl import EtlError, LoadError, store
from etl.mysql import bulk
from etl.core.rowhash import HASH, Checksum, checksum, row_hashes
from etl.mysql.read import mysql_row_hashes, read_keys, read_mysql

from load_helpers import TICKETS, frame, ticket, tricky_tickets


@pytest.mark.parametrize("st", ["tickets", "incidents", "customers", "vendors", "upload_sessions"])
def test_empty_tables_hash_to_nothing(schema_target, st):
    hashes = mysql_row_hashes(schema_target, store(st))
    assert hashes.height == 0 and checksum(hashes) == Checksum(0, 0)


def test_a_failed_read_is_the_callers_error_naming_what_was_read(mysql_target):
    """One wrapper for every connectorx read (load, parity, etl sql): the caller's error class and words."""
    with pytest.raises(LoadError, match=r"^\[load\] reading back tickets failed: .*tickets.* exist") as e:
        read_mysql(mysql_target, store("tickets"), error=LoadError, what="reading back tickets")  # no schema: no table
    assert e.value.store == "tickets"
    with pytest.raises(EtlError, match=r"^\[etl\] reading MySQL failed: .*vendors.* exist") as e:
        read_keys(mysql_target, store("vendors"))
    assert e.value.store == "vendors" and type(e.value) is EtlError


def test_stage_and_mysql_hash_the_same_rows_equal(schema_target, tmp_path):
    staged = tricky_tickets()
    with schema_target.connect(autocommit=False) as conn:
        writer = bulk.Writer(conn, TICKETS, bulk.LOAD_DATA, tmp_path)
        written, refused = writer.write("tickets", staged)
        conn.commit()
    assert (written, refused) == (staged.height, [])
    back = read_mysql(schema_target, TICKETS)
    ours = row_hashes(staged, TICKETS).sort("id")
    theirs = row_hashes(back, TICKETS).sort("id")
    assert ours.equals(theirs)
    assert checksum(ours) == checksum(theirs) and checksum(ours).rows == staged.height


def test_every_difference_changes_the_hash():
    base = ticket(1, name="x", description="", duration_raw_hours=1.5, sla_4h=True)
    variants = {
        "null vs empty": {"description": None},
        "empty vs space": {"description": " "},
        "double last bit": {"duration_raw_hours": 1.5000000000000002},
        "bool": {"sla_4h": False},
        "bool null": {"sla_4h": None},
        "same text, other column": {"name": None, "category": "x"},
        "trailing space": {"name": "x "},
    }
    rows = [base] + [{**base, **change} for change in variants.values()]
    hashes = row_hashes(frame(TICKETS, rows), TICKETS)[HASH].to_list()
    assert len(set(hashes)) == len(rows), dict(zip(["base", *variants], hashes))


def test_checksum_is_order_independent_and_counts_rows():
    hashes = row_hashes(tricky_tickets(), TICKETS)
    assert checksum(hashes) == checksum(hashes.reverse())
    assert checksum(hashes.head(3)) != checksum(hashes.head(4))
    assert checksum(hashes).rows == hashes.height
    # Sums wrap modulo 2**64 rather than overflow.
    big = pl.DataFrame({HASH: [2**64 - 1, 2]}, schema={HASH: pl.UInt64})
    assert checksum(big) == Checksum(2, 1)
