"""One table's load (etl.mysql.load): continue an unfinished plan, plan the differences, write
them chunk by chunk with the next chunk's file prepared meanwhile, check each chunk after commit,
rebuild the dropped indexes and check the table as a whole. The planning itself is pure
(etl.mysql.plan); the session, its checks and its error reporting are etl.mysql.load_session."""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl
import pymysql

from ..core.digest import DIGEST, has_digest
from ..core.errors import LoadError
from ..core.rowhash import HASH, Checksum, checksum, row_hashes
from ..core.stores import Store
from . import bulk, ledger, plan
from .ledger import DELETE, INSERT, UPDATE, Chunk
from .load_session import PRIVILEGE_ERRORS, loader_connection, low_priority, raise_if_interrupted
from .lock import LockError, require_held
from .plan import ORDER, ROW, key_of, mysql_order
from .read import read_digests, read_keys, read_mysql


@dataclass(frozen=True)
class TableLoad:
    table: str
    staged: int
    inserted: int
    updated: int
    deleted: int
    unchanged: int
    gone: int  # rows MySQL holds that the stage no longer has, left in place
    rejected: int
    chunks: int  # chunks written by this run (continued ones included)
    continued: int  # chunks of an interrupted run this run completed
    path: str  # bulk | diff
    indexes_rebuilt: int
    seconds: float  # its own work: reading, writing, checking, rebuilding (not waiting for other tables)
    rejects_file: str | None = None
    gone_file: str | None = None

    @property
    def written(self) -> int:
        return self.inserted + self.updated + self.deleted

    @property
    def rows_per_s(self) -> float:
        return self.written / self.seconds if self.seconds else 0.0


def _fingerprint(store: Store, sums: Checksum) -> str:
    text = f"{store.table}|{','.join(store.column_names)}|{sums}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _literal(value) -> str:
    return str(int(value)) if isinstance(value, int) else "'" + pymysql.converters.escape_string(str(value)) + "'"


@dataclass
class _Sent:
    chunk: Chunk
    hashes: pl.DataFrame  # key + row hash (+ stage row position) of the rows the chunk sent (deletes: the keys deleted)


@dataclass
class _Counts:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    chunks: int = 0
    continued: int = 0
    rejects: list = field(default_factory=list)
    attempted: list = field(default_factory=list)


class TableLoader:
    """One table. The staged frame stays as read; `keys` (key, ORDER, row hash, row position), sorted
    as MySQL orders keys, is what plans, chunks and checks work on. A chunk's rows are gathered
    from the frame only when its file is written, in the preparing thread."""

    def __init__(self, target, store: Store, frame: pl.DataFrame, *, chunk_size, batch_rows, method,
                 delete_missing, workdir, out_dir, progress, digests: Future | None = None, writer=None, lock=None):
        self.t0 = time.perf_counter()
        self.lock = lock  # the etl lock's Holder: each chunk commits only while it is still held
        self.target, self.store = target, store
        self.key = key_of(store)
        self.chunk_size, self.batch_rows, self.delete_missing = chunk_size, batch_rows, delete_missing
        self.out_dir, self.progress = out_dir, progress
        self.frame = frame
        self.keys, self.width = plan.index(frame, store)
        self.stage_id = _fingerprint(store, checksum(self.keys))
        self.counts = _Counts()
        self.path = "diff"
        self.sent: list[_Sent] = []
        self._connections = contextlib.ExitStack()
        self.conn = self._connections.enter_context(loader_connection(target))  # this table's own session
        self._digest_file = digests if digests is not None and has_digest(self.conn, store.table) else None
        self._digests: np.ndarray | None = None
        try:
            self.writer = (writer or bulk.Writer)(self.conn, store, method, workdir)
        except BaseException:
            self.close()
            raise

    def _rows(self, part: pl.DataFrame) -> pl.DataFrame:
        """The staged rows behind a slice of `keys`, in its order."""
        return self.frame[part[ROW]]

    # ---- run

    def write(self) -> None:
        """Continue what an interrupted run left of this stage, then write the differences."""
        for run_id, chunks in ledger.unfinished_plans(self.conn, self.store.table).items():
            if chunks[0].stage_id == self.stage_id:
                todo = [c for c in chunks if c.status != ledger.DONE]
                self.counts.continued += len(todo)
                self._execute([(c, self._rederive_fn(c)) for c in todo])
            else:
                ledger.abandon(self.conn, run_id)  # planned from a stage that is no longer current
        self._execute(self._plan())
        self.writing = time.perf_counter() - self.t0

    def finish(self) -> TableLoad:
        """Check the chunks written, rebuild dropped indexes, check the table; then close its sessions."""
        t0 = time.perf_counter()
        try:
            # The checks run once the writes are in, so the server's LOAD DATA has the machine to
            # itself; they share it (at low priority) with the index rebuild instead.
            # A chunk is marked done only once checked.
            with ThreadPoolExecutor(1, thread_name_prefix="etl-check", initializer=low_priority) as checker, \
                    loader_connection(self.target) as check_conn:
                checks = [checker.submit(self._check, sent, check_conn) for sent in self.sent]
                self._note_finishing()
                rebuilt = bulk.rebuild_indexes(self.conn, self.store.table)
                for f in checks:
                    f.result()
            return self._finish(rebuilt, self.writing + time.perf_counter() - t0)  # not the wait for the thread
        finally:
            self.close()

    def _note_finishing(self) -> None:
        """Say on the terminal what the minutes after the last chunk go to (a progress with `note`)."""
        note = getattr(self.progress, "note", None)
        if note is None:
            return
        indexes = len(bulk.pending_indexes(self.conn, self.store.table))
        note(f"load: {self.store.table}: " + (f"rebuilding {indexes} secondary index(es), " if indexes else "")
             + f"checking {len(self.sent)} chunk(s) read back")

    def close(self) -> None:
        self._connections.close()
        self.frame = self.keys = None  # a large frame need not wait for the other tables

    def _has_rows(self) -> bool:
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT EXISTS (SELECT 1 FROM `{self.store.table}`)")
            return bool(cur.fetchone()[0])

    def _server_hashes(self, where: str | None = None, *, digests: bool = False) -> pl.DataFrame:
        """Key + `row_hash` of each stored row in `where`: every column read back and hashed by
        etl.rowhash, or (`digests`) the row_digest MySQL computed of it."""
        rows = (read_digests if digests else read_mysql)(self.target, self.store, where, error=LoadError,
                                                         what=f"reading back {self.store.table}")
        if digests:
            hashes = pl.from_arrow(rows).select(self.key, pl.col(DIGEST).cast(pl.UInt64).alias(HASH))
        else:
            hashes = row_hashes(rows, self.store)
        return hashes.with_columns(pl.col(self.key).cast(self.keys.schema[self.key]))

    def _range(self, chunk: Chunk) -> str:
        text = self.store.column(self.key).is_text
        lo, hi = (chunk.key_from, chunk.key_to) if text else (int(chunk.key_from), int(chunk.key_to))
        return f"`{self.key}` BETWEEN {_literal(lo)} AND {_literal(hi)}"

    def _plan(self) -> list[tuple[Chunk, Callable[[], pl.DataFrame]]]:
        if not self._has_rows():
            self.path = "bulk"
            if not getattr(self.writer, "upserts", False):
                bulk.drop_secondary_indexes(self.conn, self.store.table)
            server = None
        else:
            server = self._server_hashes()
        inserts, updates, gone = plan.diff(self.keys, server, self.store)
        work = ((INSERT, inserts), (UPDATE, updates), (DELETE, gone if self.delete_missing else None))
        planned = plan.chunks(uuid.uuid4().hex, self.store, self.stage_id, work, self.batch_rows)
        ledger.record_plan(self.conn, [c for c, _ in planned])
        return [(c, (lambda part=part: part)) for c, part in planned]

    def _rederive_fn(self, chunk: Chunk) -> Callable[[], pl.DataFrame]:
        """What an unfinished chunk still has to write, from the stage and the server's rows in its key range."""

        def keys() -> pl.DataFrame:
            staged = plan.in_range(self.keys, chunk, self.store, self.width)
            return plan.still_to_write(chunk.kind, staged, self._server_hashes(self._range(chunk)), self.store)

        return keys

    # ---- executing chunks: write chunk k while the file of chunk k+1 is written

    def _execute(self, work: list[tuple[Chunk, Callable[[], pl.DataFrame]]]) -> None:
        if not work:
            return
        total = sum(c.row_count for c, _ in work)
        done = 0
        if self.progress:
            self.progress(self.store.table, 0, total)

        def prepare(item):
            chunk, keys_fn = item
            part = keys_fn()
            if chunk.kind == DELETE:
                return chunk, part, part, None
            rows = self._rows(part)
            return chunk, part, rows, self.writer.prepare(rows)

        with ThreadPoolExecutor(1, thread_name_prefix="etl-prepare", initializer=low_priority) as prep:
            upcoming = prep.submit(prepare, work[0])
            for i in range(len(work)):
                chunk, part, rows, prepared = upcoming.result()
                if i + 1 < len(work):
                    upcoming = prep.submit(prepare, work[i + 1])
                self.sent.append(self._write(chunk, part, rows, prepared))
                done += chunk.row_count
                if self.progress:
                    self.progress(self.store.table, done, total)

    def _write(self, chunk: Chunk, part: pl.DataFrame, rows: pl.DataFrame, prepared: Path | None) -> _Sent:
        table = self.store.table
        started = ledger.utcnow()
        refused: list[bulk.Refusal] = []
        try:
            upserts = getattr(self.writer, "upserts", False)
            if chunk.kind == UPDATE and not upserts:
                with self.conn.cursor() as cur:
                    cur.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS `etl_update_{table}` LIKE `{table}`")
            self.conn.begin()
            with self.conn.cursor() as cur:
                if chunk.kind == INSERT or (chunk.kind == UPDATE and upserts):
                    written, refused = self.writer.write(table, rows, prepared)
                elif chunk.kind == UPDATE:
                    cur.execute(f"DELETE FROM `etl_update_{table}`")
                    _, refused = self.writer.write(f"etl_update_{table}", rows, prepared)
                    sets = ", ".join(f"t.`{c}` = u.`{c}`" for c in self.store.column_names if c != self.key)
                    cur.execute(f"UPDATE `{table}` t JOIN `etl_update_{table}` u ON t.`{self.key}` = u.`{self.key}` SET {sets}")
                    written = cur.rowcount
                else:
                    written = self._delete(cur, part[self.key].to_list())
                ledger.mark_written(cur, chunk, rows_sent=part.height - len(refused), rows_written=written,
                                    rejected=len(refused), method=self.writer.method if chunk.kind != DELETE else "delete",
                                    started_at=started)
            if self.lock is not None:
                require_held(self.conn, self.target.database, self.lock)
            self.conn.commit()
        except LockError as e:
            with contextlib.suppress(pymysql.err.MySQLError):
                self.conn.rollback()
            raise LoadError(f"writing {chunk} stopped: {e}", store=self.store.name, record=chunk.key_from) from None
        except pymysql.err.MySQLError as e:
            try:
                self.conn.rollback()
            except pymysql.err.MySQLError:
                pass  # the connection is gone; the server rolls the chunk back itself
            raise_if_interrupted()
            code = e.args[0] if e.args and isinstance(e.args[0], int) else None
            advice = ("grant the missing privilege to the load's user, then run the load again" if code in PRIVILEGE_ERRORS
                      else "the chunk was rolled back; run the load again to continue")
            raise LoadError(f"writing {chunk} failed: {e.args[-1]}; {advice}", store=self.store.name,
                            record=chunk.key_from) from None
        finally:
            if prepared is not None:
                prepared.unlink(missing_ok=True)
        self.counts.chunks += 1
        self.counts.attempted.append(part.select(self.key))
        sent = part.select(self.key, HASH, *([ROW] if ROW in part.columns else []))
        if refused:
            positions = [r.row for r in refused]
            self.counts.rejects.append(rows[positions].select(self.store.column_names).with_columns(
                pl.lit(chunk.chunk_no).alias("chunk_no"),
                pl.Series("error_code", [r.code for r in refused], dtype=pl.Int32),
                pl.Series("error", [r.message for r in refused], dtype=pl.String),
            ))
            sent = sent.with_row_index("__i").filter(~pl.col("__i").is_in(positions)).drop("__i")
        if chunk.kind == INSERT:
            self.counts.inserted += written
        elif chunk.kind == UPDATE:
            self.counts.updated += written
        else:
            self.counts.deleted += written
        return _Sent(chunk, sent)

    def _delete(self, cur, keys: list) -> int:
        deleted = 0
        for start in range(0, len(keys), self.chunk_size):
            part = keys[start:start + self.chunk_size]
            cur.execute(f"DELETE FROM `{self.store.table}` WHERE `{self.key}` IN ({', '.join(['%s'] * len(part))})", part)
            deleted += cur.rowcount
        return deleted

    def _stage_digests(self) -> np.ndarray | None:
        """The staged rows' digests by row position, once the digester has them (None: it could not)."""
        if self._digests is None and self._digest_file is not None:
            path = self._digest_file.result()
            if path is None:
                self._digest_file = None
            else:
                self._digests = pl.read_parquet(path)[DIGEST].cast(pl.UInt64).to_numpy()
                if len(self._digests) != self.frame.height:  # cannot be (the name is the file's): never trust it then
                    self._digest_file = self._digests = None
        return self._digests

    def _check(self, sent: _Sent, conn) -> None:
        """Read back what the server holds for the chunk's keys; compare count and checksum with what was sent.

        Where the table has row_digest, the server's own digests of the stored rows are read (a few
        bytes a row) and compared with the staged rows' digests; otherwise every column is read back
        and both sides hashed by etl.rowhash."""
        chunk = sent.chunk
        digests = self._stage_digests() if ROW in sent.hashes.columns or chunk.kind == DELETE else None
        if digests is not None:
            server = self._server_hashes(self._range(chunk), digests=True)
            sent_hashes = sent.hashes.select(self.key, pl.Series(HASH, digests[sent.hashes[ROW].to_numpy()])
                                             if chunk.kind != DELETE else pl.col(HASH))
        else:
            server, sent_hashes = self._server_hashes(self._range(chunk)), sent.hashes
        held = server.join(sent_hashes.select(self.key), on=self.key, how="semi")
        got = checksum(held)
        want = Checksum(0, 0) if chunk.kind == DELETE else checksum(sent_hashes)
        ledger.mark_checked(conn, chunk, str(got), got == want)  # `conn`: the checker thread's own
        if got != want:
            raise LoadError(f"{chunk}: the server holds {got} where {want} was sent (rows:checksum)",
                            store=self.store.name, record=chunk.key_from)

    # ---- the table as a whole

    def _finish(self, rebuilt: int, seconds: float) -> TableLoad:
        table, key = self.store.table, self.key
        staged = self.keys.select(key)
        rejects = None
        if self.counts.rejects:  # a row refused twice (continued chunk, then the diff) is listed once
            rejects = pl.concat(self.counts.rejects).unique(subset=key, keep="last", maintain_order=True)
        refused = rejects.select(key) if rejects is not None else staged.clear()
        if self.path == "bulk" and not self.counts.continued:
            # Into an empty table: the checks saw every sent row; the count shows nothing else is there.
            with self.conn.cursor() as cur:
                cur.execute(f"SELECT COUNT(*) FROM `{table}`")
                held = cur.fetchone()[0]
            missing, gone = refused, staged.clear()
            if held != staged.height - refused.height:
                raise LoadError(f"{table} holds {held} rows after a bulk load of {staged.height} rows "
                                f"of which {refused.height} were refused", store=self.store.name)
        else:
            present = pl.from_arrow(read_keys(self.target, self.store, error=LoadError, what=f"reading back the keys of {table}"))
            present = present.with_columns(pl.col(key).cast(self.keys.schema[key]))
            missing, gone, unexplained = plan.settle(staged, present, refused, key)
            if unexplained.height:
                raise LoadError(f"{unexplained.height} staged rows are not in MySQL and were not refused: "
                                f"{unexplained[key].head(5).to_list()!r}", store=self.store.name)
        rejects_file = self.out_dir / f"{table}.rejects.parquet"
        gone_file = self.out_dir / f"{table}.gone.parquet"
        rejects_file.unlink(missing_ok=True)
        gone_file.unlink(missing_ok=True)
        if rejects is not None:
            # Only rows this run left out of MySQL: a row refused once and written later (a continued
            # chunk, then the diff) is not a reject. So the file holds exactly `rejected` rows.
            rejects = rejects.join(missing.select(key), on=key, how="semi", maintain_order="left")
            rejects = rejects if rejects.height else None
        if rejects is not None:
            rejects.write_parquet(rejects_file)
        if gone.height:
            mysql_order(gone, self.store).drop(ORDER).write_parquet(gone_file)
        # Unchanged: staged rows in MySQL that this run did not write.
        attempted = pl.concat(self.counts.attempted) if self.counts.attempted else staged.clear()
        unchanged = plan.unchanged(staged, attempted, missing, key)
        c = self.counts
        return TableLoad(
            table=table, staged=staged.height, inserted=c.inserted, updated=c.updated, deleted=c.deleted,
            unchanged=unchanged, gone=gone.height, rejected=missing.height, chunks=c.chunks, continued=c.continued,
            path=self.path, indexes_rebuilt=rebuilt, seconds=seconds,
            rejects_file=str(rejects_file) if rejects is not None else None,
            gone_file=str(gone_file) if gone.height else None,
        )
