"""Chunk planning (etl/mysql/plan.py) on plain frames: no server. What the load decides to insert,
update and delete, how it cuts chunks, what a continued chunk still writes, how a table settles."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from etl import LoadError
from etl.core.rowhash import HASH, checksum
from etl.core.stores import TICKETS
from etl.mysql import plan
from etl.mysql.ledger import DELETE, INSERT, UPDATE
from load_helpers import frame, ticket


def tickets(ids, **values):
    return frame(TICKETS, [ticket(i, **values) for i in ids])


def server_of(staged: pl.DataFrame) -> pl.DataFrame:
    """What MySQL would hold after loading `staged`: key and row hash (the same hash both sides use)."""
    keys, _ = plan.index(staged, TICKETS)
    return keys.select("id", HASH)


def test_index_orders_keys_as_mysql_does_and_refuses_keys_that_collide():
    staged = frame(TICKETS, [ticket(0, id="b"), ticket(1, id="a\t"), ticket(2, id="a")])
    keys, width = plan.index(staged, TICKETS)
    # utf8mb4_bin compares "a" as "a " (padded), which sorts after "a\t": not the byte order.
    assert keys["id"].to_list() == ["a\t", "a", "b"] and width == 2
    assert keys[plan.ROW].to_list() == [1, 2, 0]  # positions in the staged frame
    with pytest.raises(LoadError, match="share a primary key"):
        # (padded, i.e. compared as MySQL does, only where some key holds a control character: see pad_width)
        plan.index(frame(TICKETS, [ticket(0, id="x"), ticket(1, id="x  "), ticket(2, id="y\t")]), TICKETS)
    with pytest.raises(LoadError, match="single-column"):
        plan.key_of(dataclasses.replace(TICKETS, primary_key=("id", "open_time")))


def test_diff_and_chunks():
    keys, _ = plan.index(tickets(range(10)), TICKETS)
    inserts, updates, gone = plan.diff(keys, None, TICKETS)  # an empty table
    assert inserts.height == 10 and updates.height == 0 and gone is None

    before = server_of(tickets(range(3, 13)))  # holds 3..12
    changed = server_of(tickets([4, 5], name="edited"))
    server = pl.concat([before.filter(~pl.col("id").is_in(changed["id"].implode())), changed])
    inserts, updates, gone = plan.diff(keys, server, TICKETS)
    assert inserts["id"].to_list() == [f"t-{i:05d}" for i in (0, 1, 2)]
    assert updates["id"].to_list() == ["t-00004", "t-00005"]
    assert gone["id"].to_list() == [f"t-{i:05d}" for i in (10, 11, 12)]

    planned = plan.chunks("run", TICKETS, "stage", ((INSERT, inserts), (UPDATE, updates), (DELETE, None)), 2)
    assert [(c.chunk_no, c.kind, c.key_from, c.key_to, c.row_count) for c, _ in planned] == [
        (1, INSERT, "t-00000", "t-00001", 2), (2, INSERT, "t-00002", "t-00002", 1), (3, UPDATE, "t-00004", "t-00005", 2)]
    assert all(c.checksum == str(checksum(part)) and c.table == "tickets" for c, part in planned)


def test_a_continued_chunk_writes_only_what_is_still_missing():
    keys, width = plan.index(tickets(range(6)), TICKETS)
    chunk = plan.chunks("run", TICKETS, "stage", [(INSERT, keys.slice(1, 4))], 10)[0][0]  # keys 1..4
    staged = plan.in_range(keys, chunk, TICKETS, width)
    assert staged["id"].to_list() == [f"t-{i:05d}" for i in (1, 2, 3, 4)]
    written = server_of(tickets([1, 2]))  # the interrupted run wrote two of them
    assert plan.still_to_write(INSERT, staged, written, TICKETS)["id"].to_list() == ["t-00003", "t-00004"]
    stale = server_of(tickets([3], name="old")).vstack(written)
    assert plan.still_to_write(UPDATE, staged, stale, TICKETS)["id"].to_list() == ["t-00003"]
    extra = server_of(tickets([1, 9]))
    assert plan.still_to_write(DELETE, staged.slice(0, 1), extra, TICKETS)["id"].to_list() == ["t-00009"]


def test_settle_and_unchanged():
    staged = pl.DataFrame({"id": ["a", "b", "c", "d"]})
    present = pl.DataFrame({"id": ["a", "b", "z"]})
    refused = pl.DataFrame({"id": ["c"]})
    missing, gone, unexplained = plan.settle(staged, present, refused, "id")
    assert missing["id"].to_list() == ["c", "d"] and gone["id"].to_list() == ["z"] and unexplained["id"].to_list() == ["d"]
    attempted = pl.DataFrame({"id": ["b", "c"]})  # b written, c refused: a untouched
    assert plan.unchanged(staged, attempted, missing, "id") == 1
