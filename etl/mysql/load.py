"""Load: write every staged table into MySQL - fast, chunked, idempotent, resumable, verified.

For each staged table, in description order (upload sessions last):

1. **Continue** an unfinished plan for this staged table, if the ledger holds one
   (etl/mysql/ledger.py): chunks already done are skipped; every other chunk is re-derived
   from the stage and from what the server holds in its key range, then written.
2. **Plan** afresh, comparing the stage with the table:
   * *bulk* - the table is empty: its secondary indexes are recorded and dropped
     (etl/mysql/bulk.py), every row is inserted in key order, then the indexes are rebuilt;
   * *diff* - the table has rows: their keys and row hashes are read back (connectorx ->
     DuckDB, etl/core/rowhash.py) and only the differences are written: new keys inserted,
     changed rows updated through a temporary table, rows the stage no longer has
     reported (and deleted only with ``delete_missing``). Unchanged rows are not touched,
     so loading the same stage again writes nothing. After a continued plan this diff
     finds nothing left to do, unless the stage or the table changed in between.
3. **Check** the whole table by key: every staged row is in MySQL unless the server
   refused it (it is then in the rejects file with the server's message).

Every chunk is written in one transaction together with its ledger row, in primary-key
order (MySQL's order: `utf8mb4_bin` compares with PAD SPACE, so keys are sorted as if
padded with spaces), and is checked after commit: the rows the server then holds for
the chunk are read back and their count and checksum compared with what was sent,
before the ledger marks the chunk done. Where the table has `row_digest` (etl/core/digest.py)
the server's own digests of the stored rows are read back, a few bytes a row, and
compared with the staged rows' digests, which a low-priority thread computes while the
server loads (and keeps for parity); otherwise every column is read back and both
sides hashed by etl/core/rowhash.py.

Where the time goes, and so the threads: the server's LOAD DATA and its index rebuild
(ALTER TABLE) are each single-threaded, and are the critical path; two LOAD DATA into
one table do not go faster than one (measured: 22.5 s alone, 23.4 s as two), but a
LOAD DATA and an ALTER TABLE on different tables use both cores. So:
* while the server loads chunk k, a thread writes the file of chunk k+1;
* once a table's rows are in, its read-back checks, index rebuild and final check run in
  a finishing thread while the next table loads (upload sessions wait for all of them);
* the checks run beside the rebuild, not beside the writes; helper threads that burn
  client CPU (file writing, checks) run at low priority, so the server goes first.

Batches: CHUNK_SIZE (the seed's 200) is the unit of work; the direct path writes
``batch_rows`` rows per chunk, by default the multiple of CHUNK_SIZE nearest 50,000
(a LOAD DATA of 50,000 rows costs little more per row than one of 1,000,000, and a
failed chunk costs little to redo). Deletes go in statements of CHUNK_SIZE keys.

Upload sessions are finalized on the way in: every session that loaded rows carry gets
status ``completed`` and record and success counts equal to the rows carrying its id,
counted in MySQL after the other tables are loaded (`finalize_sessions`). Because the
finalized values are what is loaded, loading again finds nothing to change.

Outputs beside the stage, in ``STAGE_DIR/load/``: ``<table>.rejects.parquet`` (the
refused rows, their chunk and the server's error) and ``<table>.gone.parquet`` (keys
MySQL holds that the stage no longer has). And ``STAGE_DIR/digests/``: the staged tables' row
digests (etl/core/digest.py) for parity, computed at the lowest priority while the server works.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl
import pymysql

from . import bulk, ledger
from ..core.result import Result
from ..core import duck
from ..core.config import DEFAULT_CHUNK_SIZE
from .db import MySQLTarget
from ..core.errors import LoadError, ServerError
from .ledger import DELETE, INSERT, UPDATE, Chunk
from ..core.digest import DIGEST, has_digest, stage_digests
from ..core.rowhash import HASH, Checksum, checksum, row_hashes
from .read import read_digests, read_keys, read_mysql
from ..core.process import alive
from .lock import LockError, database_lock, require_held
from . import plan
from .plan import ORDER, ROW, key_of, mysql_order
from ..stage.folder import StageFolder, read_stage, stage_path
from ..stage.sessions import COUNTS_SCHEMA, carried_counts_sql, finalize_sessions
from ..core.stores import SESSION_COLUMN, UPLOAD_SESSIONS, Store

BATCH_TARGET_ROWS = 50_000
LOAD_DIR = "load"
WORK_PREFIX = "work-"  # STAGE/load/work-<pid>: the files LOAD DATA reads, while a load runs

Progress = Callable[[str, int, int], None]  # (table, rows done, rows planned)


def batch_size(chunk_size: int, batch_rows: int | None = None) -> int:
    """Rows per direct-path chunk: as given, else the multiple of CHUNK_SIZE nearest BATCH_TARGET_ROWS."""
    if batch_rows:
        return batch_rows
    return chunk_size * max(1, round(BATCH_TARGET_ROWS / chunk_size))


# ---------------------------------------------------------------- results


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


@dataclass(frozen=True)
class LoadResult(Result):
    target: str
    stage_dir: str
    method: str
    chunk_size: int
    batch_rows: int
    tables: tuple[TableLoad, ...]
    sessions_finalized: int
    seconds: float
    notes: tuple[str, ...] = ()  # e.g. why `auto` fell back to INSERT

    @property
    def written(self) -> int:
        return sum(t.written for t in self.tables)

    def table(self, name: str) -> TableLoad:
        return next(t for t in self.tables if t.table == name)

    def frame(self) -> pl.DataFrame:
        """One row per table: the counts, its seconds and rows written per second."""
        return pl.DataFrame([{**asdict(t), "written": t.written, "rows_per_s": t.rows_per_s} for t in self.tables])

    def _repr_html_(self) -> str:
        from ..core.htmlrepr import heading, html_table

        cols = ("table", "staged", "inserted", "updated", "deleted", "unchanged", "gone", "rejected", "chunks",
                "path", "seconds", "rows_per_s")
        rows = [tuple(getattr(t, c) for c in cols) for t in self.tables]
        notes = [line.strip() for line in str(self).splitlines()[2 + len(self.tables):]]
        return html_table(heading(self), cols, rows, notes)

    def __str__(self) -> str:
        lines = [
            f"loaded {self.stage_dir} into {self.target} in {self.seconds:.1f} s: {self.written:,} rows written "
            f"({self.method}; CHUNK_SIZE {self.chunk_size}, direct-path batches of {self.batch_rows:,} rows)",
            f"  {'table':<16}{'staged':>10}{'inserted':>10}{'updated':>9}{'deleted':>9}{'unchanged':>11}"
            f"{'gone':>7}{'rejected':>10}{'chunks':>8}  {'path':<5}{'rows/s':>10}",
        ]
        for t in self.tables:
            lines.append(
                f"  {t.table:<16}{t.staged:>10,}{t.inserted:>10,}{t.updated:>9,}{t.deleted:>9,}{t.unchanged:>11,}"
                f"{t.gone:>7,}{t.rejected:>10,}{t.chunks:>8,}  {t.path:<5}{t.rows_per_s:>10,.0f}"
            )
        lines.append(f"  upload sessions finalized: {self.sessions_finalized:,}")
        lines += [f"  note: {n}" for n in self.notes]
        for t in self.tables:
            if t.continued:
                lines.append(f"  {t.table}: continued {t.continued} chunk(s) of an interrupted load")
            if t.rejects_file:
                lines.append(f"  {t.table}: {t.rejected:,} row(s) refused by the server -> {t.rejects_file}")
            if t.gone_file:
                lines.append(f"  {t.table}: {t.gone:,} row(s) in MySQL are no longer in the stage (kept; "
                             f"--delete-missing deletes them) -> {t.gone_file}")
        return "\n".join(lines)


# ---------------------------------------------------------------- pure steps


def _fingerprint(store: Store, sums: Checksum) -> str:
    text = f"{store.table}|{','.join(store.column_names)}|{sums}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _literal(value) -> str:
    return str(int(value)) if isinstance(value, int) else "'" + pymysql.converters.escape_string(str(value)) + "'"


# ---------------------------------------------------------------- the load



@contextlib.contextmanager
def _work_dir(out_dir: Path):
    """STAGE/load/work-<pid> for the batch files LOAD DATA reads (up to a batch of the widest
    table each), removed at the end. A killed load cannot remove its own: the next load removes
    those whose process is gone. Beside the stage rather than in /tmp, which may be small."""
    for old in out_dir.glob(f"{WORK_PREFIX}*"):
        pid = old.name[len(WORK_PREFIX):]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    work = out_dir / f"{WORK_PREFIX}{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)

def load(stage_dir: Path | StageFolder, target: MySQLTarget, *, chunk_size: int = DEFAULT_CHUNK_SIZE, batch_rows: int | None = None,
         method: str = "auto", delete_missing: bool = False, progress: Progress | None = None,
         wait: float = 0, writer: Callable | None = None) -> LoadResult:
    """Write every staged table into `target` (see the module docstring).

    Holds the database's etl lock (etl/mysql/lock.py) for the whole run: a second load into the same
    database is refused (or waits up to `wait` seconds) with a message naming the holder.

    `writer(conn, store, method, workdir)` replaces bulk.Writer as what sends the rows (etl.api.via_api
    sends them through the API). A writer whose `upserts` is true writes updates as it writes inserts
    (INSERT ... ON DUPLICATE KEY UPDATE) and leaves the secondary indexes in place."""
    t0 = time.perf_counter()
    stage = StageFolder.open(stage_dir)
    stage_dir = stage.dir
    stores = stage.check()  # refuse a stage that does not agree with its own summary
    if not stores:
        raise LoadError("the stage folder holds no staged tables", file=str(stage_dir))
    if chunk_size < 1 or (batch_rows is not None and batch_rows < 1):
        raise LoadError(f"chunk size and batch rows must be positive, got {chunk_size} and {batch_rows}")
    rows_per_batch = batch_size(chunk_size, batch_rows)
    out_dir = stage_dir / LOAD_DIR
    out_dir.mkdir(exist_ok=True)
    finalized, methods, finishing, notes = 0, set(), [], {}
    # A table's read-back checks and index rebuild (etl-finish threads) run while the next
    # table loads: the server's LOAD DATA and ALTER TABLE are single-threaded each, and on
    # different tables they use two cores. Two finishers: the small tables' rebuilds need not
    # wait behind the tickets' (23 s of 56 in a 1M load with one).
    with _noticing_interrupts(), database_lock(target, "load", wait=wait) as lock, _work_dir(out_dir) as work, _connect(target) as conn, \
            ThreadPoolExecutor(2, thread_name_prefix="etl-finish") as finisher, \
            ThreadPoolExecutor(1, thread_name_prefix="etl-digest", initializer=_background, initargs=(19,)) as digester:
        with _failing_as_load_error(None):
            _check_schema(conn, stores)
            _check_privileges(conn, target, stores)
        digests = {s.table: digester.submit(_keep_stage_digests, stage_dir, s) for s in stores if s is not UPLOAD_SESSIONS}
        for store in stores:
            with _failing_as_load_error(store):
                frame = read_stage(stage_dir, store)
                if store is UPLOAD_SESSIONS:
                    for table, done in finishing:  # count only once every data table is complete
                        with _failing_as_load_error(table):
                            done.result()
                    counts = session_counts(conn)
                    frame = finalize_sessions(frame, counts)
                    finalized = frame.join(counts.rename({SESSION_COLUMN: "id"}), on="id", how="semi").height
                loader = _TableLoader(target, store, frame, chunk_size=chunk_size, batch_rows=rows_per_batch,
                                      method=method, delete_missing=delete_missing, workdir=work,
                                      out_dir=out_dir, progress=progress, digests=digests.get(store.table),
                                      writer=writer, lock=lock)
                try:
                    loader.write()
                except BaseException:
                    loader.close()
                    raise
                methods.add(loader.writer.method)
                if loader.writer.fallback:
                    notes.setdefault(loader.writer.fallback, None)
                finishing.append((store, finisher.submit(loader.finish)))
            for table, done in finishing:
                if done.done():
                    with _failing_as_load_error(table):
                        done.result()  # a failed check or rebuild stops the load at once
        results = []
        for table, done in finishing:
            with _failing_as_load_error(table):
                results.append(done.result())
    return LoadResult(str(target), str(stage_dir), "+".join(sorted(methods)), chunk_size, rows_per_batch,
                      tuple(results), finalized, time.perf_counter() - t0, tuple(notes))


def _keep_stage_digests(stage_dir: Path, store: Store) -> Path | None:
    """Compute (or find) a staged table's row digests (etl.digest) at the lowest priority: the load is
    bound by the server, and this uses client CPU it leaves idle. The chunk checks compare them with
    the digests MySQL computed of what it stores, and parity reads them after the load. None when
    they cannot be had: the checks then read back and hash every column instead. (Upload sessions
    have none: the load finalizes them, so what it writes is not the staged file.)"""
    con = duck.connect(threads=1)
    try:
        return stage_digests(con, stage_path(stage_dir, store), store)
    except Exception:  # noqa: BLE001 - see the docstring
        return None
    finally:
        con.close()


_INTERRUPTED = threading.Event()


@contextlib.contextmanager
def _noticing_interrupts():
    """Remember a Ctrl-C (SIGINT) or SIGTERM for the length of a load. Interrupted while it sends a
    LOAD DATA LOCAL file, PyMySQL still ends the exchange in a `finally` and raises the server's
    answer to the half-sent file ("Lost connection ...") in place of the interruption; the load then
    reports the interruption it was, not a server error (`_failing_as_load_error`, `_write`), and
    the half-sent file is cut off at once (etl.mysql.bulk.abort_file_sends), not after the server's
    read timeouts."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        _INTERRUPTED.set()
        bulk.abort_file_sends()
        before = previous[signum]
        if callable(before):
            before(signum, frame)  # Python's default SIGINT raises KeyboardInterrupt; the CLI's SIGTERM, Interrupted
        else:
            signal.signal(signum, before)  # SIG_DFL: die as before, now that the file send is cut off
            os.kill(os.getpid(), signum)

    _INTERRUPTED.clear()
    for s, before in previous.items():
        if before != signal.SIG_IGN:  # an ignored signal stays ignored
            signal.signal(s, handler)
    try:
        yield
    finally:
        for s, before in previous.items():
            signal.signal(s, before)


def _raise_if_interrupted() -> None:
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt


# The server's "you may not": running again cannot help, granting can.
PRIVILEGE_ERRORS = {1044, 1045, 1142, 1143, 1227, 1370}


@contextlib.contextmanager
def _failing_as_load_error(store: Store | None):
    try:
        yield
    except pymysql.err.MySQLError as e:  # a dropped connection, a killed query, a server gone, a refusal
        _raise_if_interrupted()
        code = e.args[0] if e.args and isinstance(e.args[0], int) else None
        what = f"loading {store.table}" if store else "preparing the load"
        advice = ("grant the missing privilege to the load's user, then run the load again"
                  if code in PRIVILEGE_ERRORS else "run the load again to continue")
        raise LoadError(f"{what} failed: {e.args[-1]}; {advice}", store=store.name if store else None) from None


def _check_privileges(conn, target: MySQLTarget, stores) -> None:
    """Try, before anything is written, each kind of statement the load will run, in forms that
    change nothing: INSERT ... SELECT ... WHERE 1 = 0, UPDATE/DELETE ... WHERE 1 = 0, a temporary
    table made and dropped, and (empty tables only: the bulk path drops and rebuilds their
    indexes) an ALTER TABLE with nothing to do. Parsing SHOW GRANTS is not reliable (roles,
    wildcards, partial revokes); the server's own answer is."""
    probes = []
    for store in stores:
        t, cols = store.table, ", ".join(f"`{c}`" for c in store.column_names)
        probes += [
            ("INSERT", t, f"INSERT INTO `{t}` ({cols}) SELECT {cols} FROM `{t}` WHERE 1 = 0"),
            ("UPDATE", t, f"UPDATE `{t}` SET `{store.primary_key[0]}` = `{store.primary_key[0]}` WHERE 1 = 0"),
            ("DELETE", t, f"DELETE FROM `{t}` WHERE 1 = 0"),
            ("CREATE TEMPORARY TABLES", t, f"CREATE TEMPORARY TABLE `etl_probe_{t}` LIKE `{t}`"),
            ("CREATE TEMPORARY TABLES", t, f"DROP TEMPORARY TABLE IF EXISTS `etl_probe_{t}`"),
            ("ALTER", t, f"ALTER TABLE `{t}`"),  # run only on an empty table, see below
        ]
    for t in ("etl_load_ledger", "etl_load_indexes"):
        probes += [(p, t, f"{sql} `{t}`{tail}") for p, sql, tail in (
            ("INSERT", "INSERT INTO", f" SELECT * FROM `{t}` WHERE 1 = 0"), ("UPDATE", "UPDATE", " SET table_name = table_name WHERE 1 = 0"),
            ("DELETE", "DELETE FROM", " WHERE 1 = 0"))]
    with conn.cursor() as cur:
        for privilege, table, sql in probes:
            if privilege == "ALTER":
                cur.execute(f"SELECT EXISTS (SELECT 1 FROM `{table}`)")
                if cur.fetchone()[0]:
                    continue  # not empty: the diff path, no ALTER
            try:
                cur.execute(sql)
            except pymysql.err.MySQLError as e:
                code = e.args[0] if e.args and isinstance(e.args[0], int) else None
                if code not in PRIVILEGE_ERRORS:
                    raise
                raise LoadError(f"the load needs the {privilege} privilege on {target.database}.{table}, which "
                                f"{target.user} lacks (server: {e.args[-1]}); nothing was written. Grant it, e.g. "
                                f"GRANT {privilege} ON `{target.database}`.* TO <user>, then run the load again",
                                field=privilege) from None


def session_counts(conn) -> pl.DataFrame:
    """Rows carrying each upload session id, over the stores that carry one, as MySQL holds them."""
    with conn.cursor() as cur:
        cur.execute(carried_counts_sql())
        rows = cur.fetchall()
    frame = pl.DataFrame(rows, schema=COUNTS_SCHEMA, orient="row")
    return frame.group_by(SESSION_COLUMN).agg(pl.col("rows").sum())


def _background(niceness: int = 10) -> None:
    """Lower this worker thread's CPU priority (Linux: per thread) so the server's writes go first."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError):
        pass


@contextlib.contextmanager
def _connect(target: MySQLTarget):
    """A loader session: strict, unaudited; closed quietly (after a lost connection there is nothing to close)."""
    try:
        conn = target.connect()
    except ServerError as e:  # mid-load (the lock's connection came first): a crashed or restarted server
        raise LoadError(f"{e.args[0]}; run the load again to continue once the server is back") from None
    try:
        with conn.cursor() as cur:
            # Strict mode: a value the column cannot hold is refused, never silently cut.
            cur.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'")
            cur.execute("SET @etl_skip_audit = 1")  # the ledger records the loader's writes, not audit_log
        yield conn
    finally:
        try:
            conn.close()
        except pymysql.err.Error:
            pass


def _check_schema(conn, stores) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
        have = {r[0].lower() for r in cur.fetchall()}
    missing = [s.table for s in stores if s.table not in have] + [t for t in ("etl_load_ledger", "etl_load_indexes") if t not in have]
    if missing:
        raise LoadError(f"tables missing in the target: {', '.join(missing)}; run `etl schema apply` first")
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() "
                    "AND table_name = 'etl_load_ledger' AND column_name IN ('run_id', 'kind', 'rows_sent')")
        if cur.fetchone()[0] != 3:  # CREATE TABLE IF NOT EXISTS keeps a ledger made by an older schema
            raise LoadError("etl_load_ledger has an older layout: drop it (it only records past loads) "
                            "and run `etl schema apply`", field="etl_load_ledger")


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



class _TableLoader:
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
        self.conn = self._connections.enter_context(_connect(target))  # this table's own session
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
            with ThreadPoolExecutor(1, thread_name_prefix="etl-check", initializer=_background) as checker, \
                    _connect(self.target) as check_conn:
                checks = [checker.submit(self._check, sent, check_conn) for sent in self.sent]
                rebuilt = bulk.rebuild_indexes(self.conn, self.store.table)
                for f in checks:
                    f.result()
            return self._finish(rebuilt, self.writing + time.perf_counter() - t0)  # not the wait for the thread
        finally:
            self.close()

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
        try:
            rows = (read_digests if digests else read_mysql)(self.target, self.store, where)
        except Exception as e:  # connectorx raises plain RuntimeErrors
            raise LoadError(f"reading back {self.store.table} failed: {e}", store=self.store.name) from None
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

        with ThreadPoolExecutor(1, thread_name_prefix="etl-prepare", initializer=_background) as prep:
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
            _raise_if_interrupted()
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
            try:
                present = pl.from_arrow(read_keys(self.target, self.store))
            except Exception as e:  # connectorx raises plain RuntimeErrors
                raise LoadError(f"reading back the keys of {table} failed: {e}", store=self.store.name) from None
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
