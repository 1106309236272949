"""Getting rows into a MySQL table fast and exactly, one batch inside the caller's transaction.

Two methods, as ../shared/limits.md measured them:

* ``load-data``: ``LOAD DATA LOCAL INFILE`` of a tab-separated file written here by
  Polars, in a format that needs no escaping, so every value round-trips as it is:
  text is always enclosed in double quotes (a quote inside is doubled; tabs, newlines,
  backslashes and NUL bytes stand as they are, since ``ESCAPED BY ''`` turns escape
  sequences off), NULL is the bare word ``NULL`` (an enclosed "NULL" is the text), ''
  is ``""``, times are ``YYYY-MM-DD HH:MM:SS.mmm``, booleans 0/1, decimals at their
  column scale. (Escaping text instead, for ``ESCAPED BY '\\'``, cost a third more
  client time: five passes over every text column that holds a tab or a newline.)
* ``insert``: multi-row ``INSERT`` through PyMySQL's executemany, with statements sized
  to the server's ``max_allowed_packet``. Used where the server (or client) refuses
  LOCAL INFILE, and when asked for. (MySQL 8 ships with ``local_infile`` OFF, MariaDB
  with it ON: ``auto`` asks the server, and falls back if a LOAD DATA is refused anyway.)

Bad rows are isolated, never allowed to sink a batch: each attempt runs under a
SAVEPOINT; when the server refuses it, it is rolled back and split in halves until the
refused rows stand alone, and those become rejects carrying the server's own message.
With LOCAL, MySQL and MariaDB both turn data errors into *warnings* (the server cannot
stop the client mid-file, so LOCAL implies IGNORE): a truncated value is stored
truncated and only a warning tells. Any warning therefore counts as a refusal here.

Secondary indexes: loading into an empty table is several times faster without them and
an index built afterwards is a sorted bulk build (limits.md). `drop_secondary_indexes`
first records each index's definition (from SHOW CREATE TABLE) in ``etl_load_indexes``
and then drops them; `rebuild_indexes` adds back whatever recorded index is missing and
clears the record. A process dying at any point in between leaves a record the next run
rebuilds from; UNIQUE indexes are never dropped (they guard data, not speed).
"""

from __future__ import annotations

import contextlib
import re
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pymysql

from ..core.errors import LoadError
from ..core.stores import Store

LOAD_DATA, INSERT = "load-data", "insert"
METHODS = ("auto", LOAD_DATA, INSERT)

# Server errors that mean "this row's values are refused", as opposed to a broken connection,
# a missing table or a killed query (those stop the load; a re-run resumes it).
ROW_ERRORS = {
    1048,  # column cannot be null
    1062,  # duplicate entry
    1101,  # BLOB/TEXT cannot have a default
    1264,  # out of range
    1265,  # data truncated
    1292,  # incorrect (datetime) value
    1300,  # invalid character string
    1366,  # incorrect value for column
    1367,  # illegal value
    1406,  # data too long
    1411,  # incorrect value for function
    1452,  # foreign key
    1690,  # value out of range
    3819,  # check constraint (MySQL)
    4025,  # check constraint (MariaDB)
}
# The server or client refuses LOCAL INFILE: fall back to INSERT for the rest of the load.
LOCAL_REFUSED = {1148, 2068, 3948, 4166}
NOT_NULL = 1048  # the server's code for "Column '...' cannot be null", given to rows refused before sending
TOO_BIG = 1153  # the server's code for "Got a packet bigger than 'max_allowed_packet' bytes"


def tsv_frame(rows: pl.DataFrame, store: Store) -> pl.DataFrame:
    """The rows as LOAD DATA must read them (see the module docstring)."""
    return rows.select(store.column_names).with_columns(
        pl.col(c.name).cast(pl.Int8) for c in store.columns if c.kind == "bool")


def write_tsv(rows: pl.DataFrame, store: Store, path: Path) -> Path:
    tsv_frame(rows, store).write_csv(
        path, separator="\t", quote_style="non_numeric", quote_char='"', null_value="NULL", include_header=False,
        line_terminator="\n", datetime_format="%Y-%m-%d %H:%M:%S%.3f",
    )
    return path


def load_data_sql(table: str, store: Store) -> str:
    cols = ", ".join(f"`{c}`" for c in store.column_names)
    return (f"LOAD DATA LOCAL INFILE %s INTO TABLE `{table}` CHARACTER SET utf8mb4 "
            f"FIELDS TERMINATED BY '\\t' ENCLOSED BY '\"' ESCAPED BY '' LINES TERMINATED BY '\\n' ({cols})")


def insert_sql(table: str, store: Store) -> str:
    cols = ", ".join(f"`{c}`" for c in store.column_names)
    return f"INSERT INTO `{table}` ({cols}) VALUES ({', '.join(['%s'] * len(store.columns))})"


def local_infile_allowed(conn) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT @@local_infile")
        return str(cur.fetchone()[0]).upper() in ("1", "ON")


def statement_limit(conn) -> int:
    """Bytes per multi-row INSERT: the session's max_allowed_packet less room for the protocol
    (an eighth of it, at most 64 KB), at most 16 MB. Never more than the packet: a statement
    longer than max_allowed_packet makes the server drop the connection."""
    with conn.cursor() as cur:
        cur.execute("SELECT @@max_allowed_packet")
        packet = int(cur.fetchone()[0])
    return min(packet - min(packet // 8, 64 * 1024), 16 * 1024 * 1024)


@dataclass(frozen=True)
class Refusal:
    row: int  # position in the batch given to `Writer.write`
    code: int
    message: str


# Connections in a LOAD DATA LOCAL exchange. Interrupted while it sends the file, PyMySQL ends the
# exchange in a `finally` with an empty packet in the middle of a half-sent one; the server then
# waits for the rest of that packet (net_read_timeout, twice: a minute) before it says "Lost
# connection". `abort_file_sends` (from a signal handler) closes those sockets first: the server
# rolls the statement back at once and the interruption is reported at once.
SENDING_FILE: set = set()


def abort_file_sends() -> None:
    for conn in list(SENDING_FILE):
        sock = getattr(conn, "_sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class Writer:
    """Writes batches of one store's rows on one connection (the caller owns the transaction)."""

    def __init__(self, conn, store: Store, method: str, workdir: Path):
        if method not in METHODS:
            raise LoadError(f"unknown load method {method!r}; choose from {', '.join(METHODS)}", store=store.name)
        self.conn, self.store, self.workdir = conn, store, Path(workdir)
        self.explicit = method == LOAD_DATA
        self.fallback: str | None = None  # why `auto` writes with INSERT, for the load's summary
        if method == "auto":
            method = LOAD_DATA if local_infile_allowed(conn) else INSERT
            if method == INSERT:
                self.fallback = ("wrote with INSERT, not LOAD DATA: the server's local_infile is OFF "
                                 "(SET GLOBAL local_infile = 1 allows it)")
        elif method == LOAD_DATA and not local_infile_allowed(conn):
            raise LoadError("--method load-data: the server refuses LOAD DATA LOCAL INFILE (its local_infile is OFF); "
                            "SET GLOBAL local_infile = 1 on the server, or use --method auto or insert", store=store.name)
        self.method = method
        self.max_stmt_length = statement_limit(conn)

    def prepare(self, rows: pl.DataFrame) -> Path | None:
        """Write the LOAD DATA file for a batch ahead of time (no database access: safe in another thread)."""
        if self.method != LOAD_DATA or rows.height == 0:
            return None
        return write_tsv(rows, self.store, self.workdir / f"{self.store.table}-{uuid.uuid4().hex}.tsv")

    def write(self, table: str, rows: pl.DataFrame, prepared: Path | None = None) -> tuple[int, list[Refusal]]:
        """Write `rows` into `table`; returns (affected rows, refused rows). Refused rows are not written."""
        refused: list[Refusal] = []
        try:
            rows, positions = self._refuse_nulls(rows, refused)
            if positions is not None and prepared is not None:
                prepared.unlink(missing_ok=True)  # it holds the refused rows too
                prepared = None
            sent: list[Refusal] = []
            written = self._write(table, rows, prepared, 0, 0, sent) if rows.height else 0
            refused += [Refusal(int(positions[r.row]), r.code, r.message) if positions is not None else r for r in sent]
        finally:
            if prepared is not None:
                prepared.unlink(missing_ok=True)
        return written, sorted(refused, key=lambda r: r.row)

    def _refuse_nulls(self, rows: pl.DataFrame, refused: list[Refusal]):
        """Refuse, before the server sees them, the rows holding NULL in a NOT NULL column (MySQL's
        LOAD DATA LOCAL stores the column's implicit default instead - a zero date, 0, '' - without
        even a warning, seen on MySQL 9.7) and, for INSERT, the rows whose statement alone would
        exceed max_allowed_packet (the server drops the connection for those). Returns the rows to
        send and their positions in `rows` (None when all are sent)."""
        required = [c.name for c in self.store.columns if not c.nullable]
        if rows.height == 0:
            return rows, None
        nulls = (rows.select(pl.any_horizontal(pl.col(c).is_null() for c in required)).to_series() if required
                 else pl.Series([False] * rows.height))
        big = self._oversized(rows)
        bad = nulls | big
        if not bad.any():
            return rows, None
        for i in bad.arg_true().to_list():
            if nulls[i]:
                column = next(c for c in required if rows[i, c] is None)
                refused.append(Refusal(i, NOT_NULL, f"Column '{column}' cannot be null (refused before sending)"))
            else:
                refused.append(Refusal(i, TOO_BIG, f"the row's INSERT would exceed the server's max_allowed_packet "
                                                   f"({self.max_stmt_length:,} bytes usable; refused before sending)"))
        return rows.filter(~bad), (~bad).arg_true().to_numpy()

    def _oversized(self, rows: pl.DataFrame) -> pl.Series:
        """Rows whose one-row INSERT is longer than max_stmt_length: text counted in UTF-8 bytes
        plus one for each character PyMySQL escapes, every other value at most 40 characters."""
        if self.method != INSERT:
            return pl.Series([False] * rows.height)
        text = [c.name for c in self.store.columns if rows.schema[c.name] == pl.String]
        size = pl.sum_horizontal(
            *(pl.col(c).str.len_bytes().fill_null(0) + pl.col(c).str.count_matches(r"['\"\\\x00\n\r\x1a]").fill_null(0)
              for c in text), pl.lit(0)) + 40 * len(self.store.columns)
        return rows.select(size + len(insert_sql(self.store.table, self.store)) > self.max_stmt_length).to_series()

    def _write(self, table, rows, prepared, depth, offset, refused) -> int:
        savepoint = f"etl_batch_{depth}"
        with self.conn.cursor() as cur:
            cur.execute(f"SAVEPOINT {savepoint}")
            written, problem = self._attempt(cur, table, rows, prepared)
            if problem is None:
                cur.execute(f"RELEASE SAVEPOINT {savepoint}")
                return written
            cur.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
        if rows.height == 1:
            refused.append(Refusal(offset, *problem))
            return 0
        half = rows.height // 2
        return (self._write(table, rows[:half], None, depth + 1, offset, refused)
                + self._write(table, rows[half:], None, depth + 1, offset + half, refused))

    def _attempt(self, cur, table, rows, prepared) -> tuple[int, tuple[int, str] | None]:
        try:
            if self.method == LOAD_DATA:
                path = prepared or write_tsv(rows, self.store, self.workdir / f"{table}-{uuid.uuid4().hex}.tsv")
                SENDING_FILE.add(self.conn)
                try:
                    cur.execute(load_data_sql(table, self.store), (str(path),))
                finally:
                    SENDING_FILE.discard(self.conn)
                    if path is not prepared:
                        path.unlink(missing_ok=True)
            else:
                cur.max_stmt_length = self.max_stmt_length
                cur.executemany(insert_sql(table, self.store), rows.select(self.store.column_names).rows())
        except pymysql.err.MySQLError as e:
            code = e.args[0] if e.args and isinstance(e.args[0], int) else None
            if code in ROW_ERRORS:
                return 0, (code, str(e.args[-1]))
            if self.method == LOAD_DATA and code in LOCAL_REFUSED:
                if self.explicit:
                    raise LoadError(f"--method load-data: LOAD DATA LOCAL INFILE was refused ({e.args[-1]}); "
                                    "use --method auto or insert", store=self.store.name) from None
                self.method = INSERT  # the server (or client) refuses LOCAL INFILE: INSERT from now on
                self.fallback = f"wrote with INSERT, not LOAD DATA: LOCAL INFILE was refused ({e.args[-1]})"
                return self._attempt(cur, table, rows, None)
            raise
        written = cur.rowcount
        if cur.warning_count:
            cur.execute("SHOW WARNINGS LIMIT 1")
            level, code, message = cur.fetchone()
            return written, (int(code), f"{level}: {message}")
        return written, None


# ---------------------------------------------------------------- secondary indexes

_INDEX_LINE = re.compile(r"^\s*((?:FULLTEXT |SPATIAL )?KEY `([^`]+)` .*?),?$")


def secondary_indexes(conn, table: str) -> dict[str, str]:
    """Non-unique secondary indexes of `table`: name -> definition as SHOW CREATE TABLE gives it."""
    with conn.cursor() as cur:
        cur.execute(f"SHOW CREATE TABLE `{table}`")
        ddl = cur.fetchone()[1]
    found = {}
    for line in ddl.splitlines():
        m = _INDEX_LINE.match(line)
        if m:
            found[m.group(2)] = m.group(1)
    return found


def pending_indexes(conn, table: str) -> dict[str, str]:
    """Indexes recorded as dropped for a bulk load and not yet rebuilt."""
    with conn.cursor() as cur:
        cur.execute("SELECT index_name, definition FROM etl_load_indexes WHERE table_name = %s ORDER BY position", (table,))
        return dict(cur.fetchall())


def drop_secondary_indexes(conn, table: str) -> int:
    """Record, then drop, the secondary indexes (the record is committed before the DDL runs)."""
    indexes = secondary_indexes(conn, table)
    if not indexes:
        return 0
    with conn.cursor() as cur:
        # INSERT IGNORE: a definition recorded by an earlier, interrupted run stays as it was.
        cur.executemany("INSERT IGNORE INTO etl_load_indexes (table_name, index_name, position, definition) "
                        "VALUES (%s, %s, %s, %s)", [(table, name, i, d) for i, (name, d) in enumerate(indexes.items())])
        conn.commit()
        cur.execute(f"ALTER TABLE `{table}` " + ", ".join(f"DROP INDEX `{name}`" for name in indexes))
    return len(indexes)


def rebuild_indexes(conn, table: str) -> int:
    """Add back every recorded index the table lacks (one ALTER, one pass over the rows), then clear the record."""
    recorded = pending_indexes(conn, table)
    if not recorded:
        return 0
    present = secondary_indexes(conn, table)
    missing = [d for name, d in recorded.items() if name not in present]
    with conn.cursor() as cur:
        if missing:
            cur.execute(f"ALTER TABLE `{table}` " + ", ".join(f"ADD {d}" for d in missing))
        cur.execute("DELETE FROM etl_load_indexes WHERE table_name = %s", (table,))
        conn.commit()
    return len(missing)
