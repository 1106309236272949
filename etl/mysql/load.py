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
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import polars as pl

from ..core import duck
from ..core.config import DEFAULT_CHUNK_SIZE
from ..core.digest import stage_digests
from ..core.errors import LoadError
from ..core.process import alive
from ..core.result import Result
from ..core.stores import SESSION_COLUMN, UPLOAD_SESSIONS, Store
from ..stage.folder import StageFolder, read_stage, stage_path
from ..stage.sessions import COUNTS_SCHEMA, carried_counts_sql, finalize_sessions
from .db import MySQLTarget
from .load_session import check_privileges, check_schema, failing_as_load_error, loader_connection, low_priority, noticing_interrupts
from .lock import database_lock
from .table_loader import TableLoad, TableLoader

BATCH_TARGET_ROWS = 50_000
LOAD_DIR = "load"
WORK_PREFIX = "work-"  # STAGE/load/work-<pid>: the files LOAD DATA reads, while a load runs

Progress = Callable[[str, int, int], None]  # (table, rows done, rows planned)


def batch_size(chunk_size: int, batch_rows: int | None = None) -> int:
    """Rows per direct-path chunk: as given, else the multiple of CHUNK_SIZE nearest BATCH_TARGET_ROWS."""
    if batch_rows:
        return batch_rows
    return chunk_size * max(1, round(BATCH_TARGET_ROWS / chunk_size))



# ---------------------------------------------------------------- the result


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
    with noticing_interrupts(), database_lock(target, "load", wait=wait) as lock, _work_dir(out_dir) as work, loader_connection(target) as conn, \
            ThreadPoolExecutor(2, thread_name_prefix="etl-finish") as finisher, \
            ThreadPoolExecutor(1, thread_name_prefix="etl-digest", initializer=low_priority, initargs=(19,)) as digester:
        with failing_as_load_error(None):
            check_schema(conn, stores)
            check_privileges(conn, target, stores)
        digests = {s.table: digester.submit(_keep_stage_digests, stage_dir, s) for s in stores if s is not UPLOAD_SESSIONS}
        for store in stores:
            with failing_as_load_error(store):
                frame = read_stage(stage_dir, store)
                if store is UPLOAD_SESSIONS:
                    for table, done in finishing:  # count only once every data table is complete
                        with failing_as_load_error(table):
                            done.result()
                    counts = session_counts(conn)
                    frame = finalize_sessions(frame, counts)
                    finalized = frame.join(counts.rename({SESSION_COLUMN: "id"}), on="id", how="semi").height
                loader = TableLoader(target, store, frame, chunk_size=chunk_size, batch_rows=rows_per_batch,
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
                    with failing_as_load_error(table):
                        done.result()  # a failed check or rebuild stops the load at once
        results = []
        for table, done in finishing:
            with failing_as_load_error(table):
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


def session_counts(conn) -> pl.DataFrame:
    """Rows carrying each upload session id, over the stores that carry one, as MySQL holds them."""
    with conn.cursor() as cur:
        cur.execute(carried_counts_sql())
        rows = cur.fetchall()
    frame = pl.DataFrame(rows, schema=COUNTS_SCHEMA, orient="row")
    return frame.group_by(SESSION_COLUMN).agg(pl.col("rows").sum())
