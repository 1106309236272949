"""Transform: the normalized export -> typed, staged Parquet (plus rejects with reasons).

In three modules, in the order a record meets them:
* reading (etl.stage.records): DuckDB flattens each store's JSON into one typed column per
  described field and says why a record cannot be staged; big JSON never passes through
  Python objects.
* the per-store steps (etl.stage.steps): Polars, vectorized, driven by etl/core/stores.py.
  `STEPS` is the named sequence of pure ``frame -> frame`` steps applied to every store; the
  rejects are split off there, and the losers of a duplicate key.
* writing the stage (here): each store streamed into Parquet batch by batch, the cross-store
  step that rebuilds upload sessions after them, and the stage folder swapped in whole.

Values are carried as they are (this is a migration, not a clean-up): a value that cannot be
represented in its column makes its record a reject with store, key, field, value excerpt and
reason, so for every store records in = staged + rejected.

Rules, in one place:
* text: kept byte for byte (tabs, trailing spaces, NUL, 4-byte UTF-8); `""` stays `""`,
  absent and `null` both become NULL (the one state MySQL cannot tell apart). Longer than
  the column (characters for VARCHAR, bytes for TEXT) -> reject.
  A non-string JSON value in a text column (number, boolean, object, array) is carried as
  its JSON text (`5`, `true`, `{"a":1}`) and counted per column in the summary
  (`non_string_text`, and a note): the text fields are read as JSON, whose type tells a
  number from a string of digits (on 200k tickets, about 0.5 s more to read them).
* records: a property repeated inside one record -> reject naming the property (which of
  the two holds the data cannot be known); the rest of its file goes through.
* times: zone-less ISO (the app's openTime) is UTC wall-clock; `...Z`, `+hh:mm` and a
  trailing zone name (`14:30:00 Asia/Jakarta`, `UTC`, `GMT`) are converted to UTC; a zone
  abbreviation (`WIB`, `PST`, `IST`: several zones share them) -> reject. A Date instant
  (`{"$date": ms}`) is taken as is. A bare number (JSON number or digits as text) is read
  by its size: >= 1e11 epoch milliseconds, 1e9..1e10 epoch seconds (2001..2286); anything
  else -> reject with why (0, negative, a spreadsheet serial date: 1900 or 1904 system,
  or between the two epochs). Kept at millisecond precision, naive UTC. `""` in an optional
  time -> NULL (a DATETIME cannot hold ''); anything else that does not parse -> reject; a
  required time that is missing -> reject. Staged times before 2000 or after the export's
  time are counted per column in the summary (`implausible_times`) and named in a note.
* numbers: JSON numbers or numeric strings; anything else -> reject. Fractional numbers are
  kept as the doubles they are (DOUBLE columns); integers rejected when they do not fit.
* durations are never recomputed: the stored rawHours/formatted are what users saw. The
  summary reports the offset between rawHours and close - open (the browser's UTC offset).
* duplicate primary keys (compared as MySQL's PAD SPACE collations do, i.e. ignoring
  trailing spaces): the record with the latest uploadTimestamp wins, ties go to the one
  later in the export (a later put() overwrites in IndexedDB); the others are rejected
  with reason `duplicate key`, naming the record kept.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ..core import duck
from ..core.digest import DIGESTS_DIR
from ..core.errors import TransformError
from ..core.process import alive
from ..core.result import Result
from ..core.stores import INCIDENTS, SESSION_COLUMN, STORES, UPLOAD_SESSIONS, Store
from ..core.stores import store as store_by_name
from ..source.folder import ExportFolder
from .folder import SUMMARY, polars_dtype, rejects_path, stage_path, stage_schema
from .records import NON_STRING, Origins, Retry, batches, format_runs
from .sessions import SESSION_META, incident_sessions, rebuilt_sessions
from .steps import REJECT_SCHEMA, STEPS, duplicate_losers, split_rejects


@dataclass(frozen=True)
class StoreCounts:
    records_in: int
    staged: int
    rejected: int
    duplicates: int
    non_string_text: dict[str, int] = field(default_factory=dict)  # column -> JSON non-strings carried as text

    @property
    def balanced(self) -> bool:
        return self.records_in == self.staged + self.rejected


@dataclass(frozen=True)
class TransformResult(Result):
    export_dir: str
    stage_dir: str
    counts: dict[str, StoreCounts]
    reconstructed_sessions: int
    findings: tuple[str, ...]
    seconds: float
    missing_stores: tuple[str, ...] = field(default=())
    # store -> column -> staged times before PLAUSIBLE_FROM or after the export's time
    implausible_times: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.balanced for c in self.counts.values())

    def __str__(self) -> str:
        lines = [f"staged {self.export_dir} -> {self.stage_dir} in {self.seconds:.1f} s"]
        lines.append(f"  {'store':<15}{'in':>10}{'staged':>10}{'rejected':>10}{'dupes':>8}")
        for name, c in self.counts.items():
            lines.append(f"  {name:<15}{c.records_in:>10,}{c.staged:>10,}{c.rejected:>10,}{c.duplicates:>8,}")
        if self.reconstructed_sessions:
            lines.append(f"  reconstructed upload sessions: {self.reconstructed_sessions}")
        lines += [f"  note: {f}" for f in self.findings]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from ..core.htmlrepr import heading, html_table

        rows = [(n, c.records_in, c.staged, c.rejected, c.duplicates, "yes" if c.balanced else "NO")
                for n, c in self.counts.items()]
        notes = ([f"reconstructed upload sessions: {self.reconstructed_sessions}"] if self.reconstructed_sessions
                 else []) + list(self.findings)
        return html_table(heading(self), ("store", "in", "staged", "rejected", "duplicates", "in = staged + rejected"),
                          rows, notes)


PLAUSIBLE_FROM = datetime(2000, 1, 1)  # the app is far younger: an earlier time is a sign of a wrong reading


def implausible_times(stage: Path, until: datetime | None) -> dict[str, dict[str, int]]:
    """Per store and time column, the staged times before PLAUSIBLE_FROM or after `until` (the
    export's time): staged as they are, but worth a look (one scan of the time columns)."""
    out: dict[str, dict[str, int]] = {}
    for store in STORES:
        cols = [c.name for c in store.columns if c.is_time]
        path = stage_path(stage, store)
        if not cols or not path.is_file():
            continue
        bad = [(pl.col(c) < PLAUSIBLE_FROM) | ((pl.col(c) > until) if until else pl.lit(False)) for c in cols]
        row = pl.scan_parquet(path).select(b.sum().alias(c) for b, c in zip(bad, cols)).collect().row(0, named=True)
        if any(row.values()):
            out[store.name] = {c: n for c, n in row.items() if n}
    return out


@dataclass
class _Pass:
    """What the first pass over a store leaves: the rows written, their rejects and a small
    `meta` frame (position in the written file, origin, key and session columns)."""

    records_in: int = 0
    written: int = 0
    rejects: list = field(default_factory=list)
    metas: list = field(default_factory=list)
    non_string: dict = field(default_factory=dict)

    def count_non_strings(self, column: pl.Series) -> None:
        odd = column.filter(column.is_not_null() & (column != ""))
        if odd.len():
            for name, n in odd.str.split(",").explode().value_counts().iter_rows():
                self.non_string[name] = self.non_string.get(name, 0) + n

    def add_meta(self, meta: pl.DataFrame) -> None:
        """Keep a batch's meta in memory of its own. Polars takes DuckDB's Arrow batches without
        copying, and one column kept from a batch keeps all of it alive: without this copy the
        meta would hold every batch of the store (1M tickets: about 700 MB)."""
        copy = io.BytesIO()
        meta.write_ipc(copy, compression="uncompressed")
        self.metas.append(pl.read_ipc(copy.getvalue()))


PARALLEL_STORES = 2  # stores staged side by side (see transform)
# Meta columns with a few values repeated over every record: kept as categoricals (1M tickets'
# meta: 185 -> about 85 MB, which lowers the transform's peak): the session's file, and the record's.
REPEATED = (*(c for c in SESSION_META if c != SESSION_COLUMN and UPLOAD_SESSIONS.column(c).is_text), "__file")


def meta_columns(store: Store) -> tuple[str, ...]:
    """What the meta frame keeps of a store's rows besides their key: what rebuilding sessions
    reads, and what an upload sets per record (incidents: importedAt, which clusters their sessions)."""
    return tuple(c for c in (*SESSION_META, *store.per_upload) if c in store.column_names)


def first_pass(con, export: ExportFolder, store: Store, out: Path, careful: frozenset[Path] = frozenset()) -> _Pass:
    """Stream a store through the steps batch by batch into `out`; memory stays bounded by BATCH_ROWS.

    Each batch is written to Parquet on a second thread while DuckDB reads the next (at most
    one batch waits to be written)."""
    result, writer, pending = _Pass(), None, None
    schema = stage_schema(store)
    keep = [*store.primary_key, *meta_columns(store)]
    origins = export.origins(store)
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            for fmt, paths in format_runs(export.files(store)):
                where = Origins(paths, origins)
                for batch in batches(con, store, paths, fmt, any(p in careful for p in paths)):
                    frame = pl.from_arrow(batch)
                    result.count_non_strings(frame[NON_STRING])
                    frame = frame.drop("__fi", NON_STRING).with_columns(
                        [pl.col(c.name).cast(polars_dtype(c)) for c in store.columns if c.source]
                        + where.columns(frame["__fi"].to_numpy().astype(np.int64)))
                    result.records_in += batch.num_rows
                    for make in STEPS:
                        frame = make(store)(frame)
                    good, rejects = split_rejects(store, frame)
                    result.rejects.append(rejects)
                    result.add_meta(good.select(*keep, "__file", "__record").with_columns(
                        pl.int_range(result.written, result.written + good.height, dtype=pl.Int64).alias("__pos"),
                        *(pl.col(c).cast(pl.Categorical) for c in REPEATED if c in keep or c == "__file")))
                    table = good.select(schema.names()).to_arrow()
                    if writer is None:
                        writer = pq.ParquetWriter(out, table.schema, compression="lz4", write_statistics=_stats(store))
                    if pending is not None:
                        pending.result()
                    pending = pool.submit(writer.write_table, table.cast(writer.schema))
                    result.written += good.height
            if pending is not None:
                pending.result()
        except Retry as retry:
            if pending is not None:
                pending.result()
            if writer:
                writer.close()
            return first_pass(con, export, store, out, careful | set(retry.paths))
    if writer is None:
        pl.DataFrame(schema=schema).write_parquet(out, compression="lz4")
    else:
        writer.close()
    return result


def _stats(store: Store) -> list[str]:
    """Columns given min/max statistics: keys and every non-text column. Free text prunes
    nothing, and its statistics cost about 0.3 CPU seconds per 1M tickets."""
    return [c.name for c in store.columns if c.name in store.primary_key or polars_dtype(c) != pl.String]


def fix_up(store: Store, path: Path, drop: pl.Series, sessions: pl.DataFrame | None) -> None:
    """Second pass, only when needed: drop duplicate losers and fill incident sessions (streaming)."""
    frame = pl.scan_parquet(path).with_row_index("__pos").with_columns(pl.col("__pos").cast(pl.Int64))
    if sessions is not None and sessions.height:
        frame = frame.join(sessions.lazy().rename({SESSION_COLUMN: "__sid"}), on="__pos", how="left",
                           maintain_order="left").with_columns(pl.coalesce(SESSION_COLUMN, "__sid").alias(SESSION_COLUMN))
    if drop.len():
        frame = frame.filter(~pl.col("__pos").is_in(drop.implode()))
    tmp = path.with_suffix(".fixing")
    frame.select(stage_schema(store).names()).sink_parquet(tmp, compression="lz4")
    tmp.replace(path)


def duration_offset(path: Path) -> str | None:
    """The median gap between stored rawHours and close - open: the uploading browser's UTC offset."""
    gap = pl.scan_parquet(path).filter(pl.col("duration_raw_hours") > 0,
                                       pl.col("close_time").is_not_null()).select(
        (pl.col("duration_raw_hours")
         - (pl.col("close_time") - pl.col("open_time")).dt.total_milliseconds() / 3_600_000).median()
    ).collect().item()
    if gap is None:
        return None
    return (f"stored ticket durations exceed close - open by a median {gap:+.2f} h (the uploading browser's UTC "
            "offset: openTime was read as local time); carried as stored, not recomputed")


def transform(export: Path | ExportFolder, stage_dir: Path, *, note: Callable[[str], None] | None = None) -> TransformResult:
    """Stage every store of an export (a folder path, or an ExportFolder already open: its summary
    is read once, here or by the caller). The stage folder appears complete or not at all."""
    t0 = time.perf_counter()
    stage_dir = Path(stage_dir)
    if not isinstance(export, ExportFolder):
        if not ExportFolder.present(export):
            raise TransformError("not an export folder (no export-summary.json): run `etl export` first", file=str(export))
        export = ExportFolder.open(export)
    export_dir = export.dir
    missing = [s.name for s in STORES if not export.files(s)]
    for name in missing:
        if store_by_name(name).required:
            raise TransformError("the export has no file for this store", file=str(export_dir), store=name)

    export.check_fingerprints()
    check_replaceable(stage_dir, export_dir)
    remove_stale_work(stage_dir)

    tmp = stage_dir.with_name(f".{stage_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    con = duck.connect(string_views=True)
    # Two stores at a time: a store's Python steps and Parquet writing leave DuckDB's threads
    # idle now and then, and the other store's reading fills the gaps.
    pool = ThreadPoolExecutor(max_workers=PARALLEL_STORES)
    metas: dict[str, pl.DataFrame] = {}
    counts: dict[str, StoreCounts] = {}
    try:
        (tmp / "rejects").mkdir(parents=True)  # inside the try: an interruption right after it removes it too
        # uploadSessions comes last: the sessions rebuilt from the other stores are added to it.
        first = [s for s in STORES if s.name not in missing and s is not UPLOAD_SESSIONS]
        futures = [pool.submit(_stage_store, con, export, tmp, s) for s in first]
        if note is not None:  # progress as each store ends (in its worker thread)
            for store, future in zip(first, futures):
                future.add_done_callback(lambda f, name=store.name: f.exception() or note(
                    f"transform: {name} staged ({f.result()[0].staged:,} records)"))
        for store, future in zip(first, futures):  # the first failure in store order is the one reported
            counts[store.name], metas[store.name] = future.result()
        sessions = UPLOAD_SESSIONS
        if sessions.name in missing:
            pl.DataFrame(schema=stage_schema(sessions)).write_parquet(stage_path(tmp, sessions))
            counts[sessions.name] = StoreCounts(0, 0, 0, 0)
        else:
            counts[sessions.name], _ = _stage_store(con, export, tmp, sessions)
        rebuilt = _append_rebuilt(sessions, stage_path(tmp, sessions), metas)
        c = counts[sessions.name]
        counts[sessions.name] = StoreCounts(c.records_in + rebuilt, c.staged + rebuilt, c.rejected, c.duplicates,
                                            c.non_string_text)
        for name, c in counts.items():
            if not c.balanced:
                raise TransformError(f"records in != staged + rejected: {c}", store=name)
        findings = [f for f in [duration_offset(stage_path(tmp, store_by_name("tickets")))] if f]
        carried = [f"{store_by_name(name).table}.{col} {n:,}" for name, c in counts.items()
                   for col, n in c.non_string_text.items()]
        if carried:
            findings.append("JSON numbers, booleans, objects or arrays in text columns were carried as their JSON "
                            f"text: {'; '.join(carried)}")
        if missing:
            findings.append(f"the export holds no {', '.join(missing)}: sessions were reconstructed from the records")
        odd = implausible_times(tmp, until := export.exported_at)
        if odd:
            listed = "; ".join(f"{s}.{c} {n:,}" for s, cols in odd.items() for c, n in cols.items())
            findings.append(f"times before {PLAUSIBLE_FROM:%Y-%m-%d} or after the export ({until or 'unknown'}) "
                            f"were staged as they are: {listed}")
        counts = {s.name: counts[s.name] for s in STORES if s.name in counts}
        result = TransformResult(str(export_dir), str(stage_dir), counts, rebuilt, tuple(findings),
                                 time.perf_counter() - t0, tuple(missing), odd)
        (tmp / SUMMARY).write_text(json.dumps(asdict(result), indent=2, ensure_ascii=False))
    except BaseException as e:
        pool.shutdown(cancel_futures=True)  # waits for the store being staged: then nothing writes into tmp
        shutil.rmtree(tmp, ignore_errors=True)  # never leave a half-written stage behind
        if isinstance(e, (OSError, pa.ArrowException, pl.exceptions.PolarsError, duckdb.IOException)):
            # a full disk, a folder we may not write: Arrow and Polars name neither the file nor the folder
            where = getattr(e, "filename", None) or stage_dir
            raise TransformError(f"cannot write the stage: {str(e).splitlines()[0]}", file=str(where)) from None
        raise
    finally:
        pool.shutdown()
        con.close()
    old = stage_dir.with_name(f".{stage_dir.name}.old-{os.getpid()}")
    if stage_dir.exists():
        stage_dir.rename(old)
    tmp.rename(stage_dir)
    shutil.rmtree(old, ignore_errors=True)
    return result


# What a stage folder may hold: the transform's tables, rejects and summary, and the load's work
# (STAGE/load) and row digests (STAGE/digests, etl.core.digest). A folder with anything else is not a stage, and is never replaced.
STAGE_OWN = frozenset({SUMMARY, "rejects", "load", DIGESTS_DIR, *(f"{s.table}.parquet" for s in STORES)})


def check_replaceable(stage_dir: Path, export_dir: Path) -> None:
    """TransformError unless `stage_dir` is absent, empty, or an earlier stage (its summary and only
    the files a stage holds), and holds neither the export nor a folder above it."""
    out, src = stage_dir.resolve(), export_dir.resolve()
    if out == src or out in src.parents:
        raise TransformError("the stage folder would replace the export it reads (it is the export folder or "
                             "holds it): choose another --out", file=str(stage_dir))
    if not os.path.lexists(stage_dir):
        return
    if not stage_dir.is_dir() or stage_dir.is_symlink():
        raise TransformError("the stage folder is not a folder: choose another --out", file=str(stage_dir))
    names = {p.name for p in stage_dir.iterdir()}
    if not names:
        return
    if SUMMARY not in names:
        raise TransformError(f"the folder is not a stage (no {SUMMARY}) and is replaced only when it is one: "
                             "choose another --out, or empty it yourself", file=str(stage_dir))
    foreign = sorted(names - STAGE_OWN)
    if foreign:
        raise TransformError(f"the stage folder holds files a stage does not ({', '.join(foreign[:3])}"
                             f"{', ...' if len(foreign) > 3 else ''}): move them away, then run again", file=str(stage_dir))


def remove_stale_work(stage_dir: Path) -> None:
    """Remove `.STAGE.tmp-PID` / `.STAGE.old-PID` folders left by a transform that was killed
    (its PID no longer runs): they are this tool's and no one else's."""
    for path in stage_dir.parent.glob(f".{stage_dir.name}.*-*"):
        kind, _, pid = path.name[len(stage_dir.name) + 2:].rpartition("-")
        if kind in ("tmp", "old") and pid.isdigit() and int(pid) != os.getpid() and not alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _stage_store(con, export: ExportFolder, tmp: Path, store: Store) -> tuple[StoreCounts, pl.DataFrame]:
    """Stage one store into `tmp`: its rows, duplicate losers dropped and incident sessions filled,
    and its rejects. Returns its counts and what rebuilding sessions reads of it."""
    out = stage_path(tmp, store)
    cursor = con.cursor()  # one DuckDB cursor per thread
    try:
        p = first_pass(cursor, export, store, out)
    finally:
        cursor.close()
    meta = pl.concat(p.metas) if p.metas else pl.DataFrame()
    p.metas.clear()  # held once, in `meta`
    losers = duplicate_losers(store, meta) if meta.height else pl.DataFrame(schema={"__pos": pl.Int64})
    filled = incident_sessions(meta) if store is INCIDENTS and meta.height else None
    if losers.height or (filled is not None and filled.height):
        fix_up(store, out, losers["__pos"], filled)
    if meta.height:
        meta = meta.filter(~pl.col("__pos").is_in(losers["__pos"].implode()))
        if filled is not None and filled.height:
            meta = meta.join(filled.rename({SESSION_COLUMN: "__sid"}), on="__pos", how="left").with_columns(
                pl.coalesce(SESSION_COLUMN, "__sid").alias(SESSION_COLUMN))
    rejects = pl.concat([*p.rejects, losers.drop("__pos")]) if p.rejects or losers.height else pl.DataFrame(schema=REJECT_SCHEMA)
    rejects.write_parquet(rejects_path(tmp, store))
    counts = StoreCounts(p.records_in, p.written - losers.height,
                         rejects.select(pl.struct("file", "record").n_unique()).item() if rejects.height else 0,
                         losers.height, dict(sorted(p.non_string.items())))
    return counts, meta.select(c for c in SESSION_META if c in meta.columns)


def _append_rebuilt(store: Store, path: Path, metas: dict[str, pl.DataFrame]) -> int:
    """Add the rebuilt sessions to the staged upload_sessions (small: rewritten in memory)."""
    staged = pl.read_parquet(path).with_columns(pl.lit(False).alias("reconstructed"))  # the export's own
    known = set(staged["id"].to_list())
    rebuilt = rebuilt_sessions({k: v for k, v in metas.items() if store_by_name(k).carries_session}, known)
    pl.concat([staged, rebuilt]).write_parquet(path, compression="lz4")
    return rebuilt.height
