"""The load ledger: one row per chunk in MySQL (`etl_load_ledger`), the loader's memory across runs.

A *plan* (one `run_id`) is everything one load decided to write into one table from one
staged table (`stage_id`, a fingerprint of its content): its chunks, each a kind
(insert | update | delete), a key range, the planned row count and their checksum.
A chunk goes ``planned -> written -> done``:

* ``written`` is set in the same transaction as the chunk's rows, so a chunk is either
  fully in the table and marked written, or neither (a crash rolls both back);
* ``done`` is set only after the rows the server holds for the chunk were read back and
  matched what was sent (count and checksum); ``mismatch`` records a failed check.

A run that finds an unfinished plan for the same table and stage continues it: done
chunks are skipped, the others re-derived from the stage and the server and written.
A plan for a stage that is no longer current is marked ``abandoned``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

PLANNED, WRITTEN, DONE, MISMATCH, ABANDONED = "planned", "written", "done", "mismatch", "abandoned"
INSERT, UPDATE, DELETE = "insert", "update", "delete"


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class Chunk:
    run_id: str
    table: str
    chunk_no: int
    stage_id: str
    kind: str
    key_from: str
    key_to: str
    row_count: int
    checksum: str
    status: str = PLANNED

    def __str__(self) -> str:
        return f"{self.table} chunk {self.chunk_no} ({self.kind} {self.row_count} rows, keys {self.key_from!r}..{self.key_to!r})"


_COLUMNS = "run_id, table_name, chunk_no, stage_id, kind, key_from, key_to, row_count, checksum, status"


def record_plan(conn, chunks: list[Chunk]) -> None:
    if not chunks:
        return
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO etl_load_ledger ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(c.run_id, c.table, c.chunk_no, c.stage_id, c.kind, c.key_from, c.key_to, c.row_count, c.checksum, c.status)
             for c in chunks],
        )
    conn.commit()


def unfinished_plans(conn, table: str) -> dict[str, list[Chunk]]:
    """run_id -> every chunk of each plan for `table` that still has a chunk not done."""
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM etl_load_ledger WHERE run_id IN ("
            f"  SELECT DISTINCT run_id FROM etl_load_ledger WHERE table_name = %s AND status IN (%s, %s, %s)"
            f") ORDER BY run_id, chunk_no",
            (table, PLANNED, WRITTEN, MISMATCH),
        )
        plans: dict[str, list[Chunk]] = {}
        for row in cur.fetchall():
            plans.setdefault(row[0], []).append(Chunk(*row))
    conn.commit()  # end the read snapshot
    return plans


def abandon(conn, run_id: str) -> None:
    with conn.cursor() as cur:
        cur.execute("UPDATE etl_load_ledger SET status = %s, finished_at = %s WHERE run_id = %s AND status <> %s",
                    (ABANDONED, utcnow(), run_id, DONE))
    conn.commit()


def mark_written(cur, chunk: Chunk, *, rows_sent: int, rows_written: int, rejected: int, method: str,
                 started_at: datetime) -> None:
    """Inside the chunk's own transaction: commits (or rolls back) with its rows.

    Counts add up over attempts: a continued chunk that finds its rows already written adds nothing.
    """
    cur.execute(
        "UPDATE etl_load_ledger SET status = %s, rows_sent = COALESCE(rows_sent, 0) + %s, "
        "rows_written = COALESCE(rows_written, 0) + %s, rows_rejected = %s, method = %s, attempts = attempts + 1, "
        "started_at = COALESCE(started_at, %s), written_at = %s WHERE run_id = %s AND chunk_no = %s",
        (WRITTEN, rows_sent, rows_written, rejected, method, started_at, utcnow(), chunk.run_id, chunk.chunk_no),
    )


def mark_checked(conn, chunk: Chunk, server_checksum: str, ok: bool) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE etl_load_ledger SET status = %s, server_checksum = %s, finished_at = %s WHERE run_id = %s AND chunk_no = %s",
            (DONE if ok else MISMATCH, server_checksum, utcnow(), chunk.run_id, chunk.chunk_no),
        )
    conn.commit()


def run_totals(conn, run_id: str) -> dict:
    """What a plan wrote, from the ledger alone (for reports and tests)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*), COALESCE(SUM(rows_written), 0), COALESCE(SUM(rows_rejected), 0), "
            "COALESCE(SUM(status = %s), 0) FROM etl_load_ledger WHERE run_id = %s",
            (DONE, run_id),
        )
        chunks, written, rejected, done = cur.fetchone()
    conn.commit()
    return {"chunks": int(chunks), "rows_written": int(written), "rows_rejected": int(rejected), "done": int(done)}
