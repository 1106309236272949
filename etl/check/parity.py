"""Parity: prove MySQL holds exactly what the stage holds, bucket by bucket, and name every row that differs.

For each table DuckDB computes per bucket the row count and the sum of the row digests of both
sides (order-independent). MySQL keeps each row's digest in the generated column `row_digest`
(`etl.digest`), computed from what it stores on every write; DuckDB computes the same digest from
the stage, so only keys, bucket columns and digests are read from MySQL, through connectorx in
parallel primary-key ranges (see `MySQLSide`). The stage's digests are kept beside it
(`etl.digest.stage_digests`, named for the staged file's stat data): `etl load` computes them
while the server works, and parity computes them itself when none are kept for the file as it
is. A table without the column (a database made by an older schema) is read in full instead and
both sides are hashed by `etl.rowhash`, the load's normalizer. BENCHMARKS.md measures both. Buckets are the store's `default_buckets`
(tickets: day, cabang, status, category) unless others are asked for; the names asked for
are looked up in the description and only the description's column names reach SQL.

Normalization is the row hash's (decimals at their column scale, times at the column's
millisecond precision, booleans as the TINYINT MySQL stores, text compared byte for byte):
NULL and '' differ, a trailing space differs although MySQL's PAD SPACE collations call the
two equal, and so do text values a case-insensitive collation calls equal.

For every bucket that differs, the drill-down pairs the rows of both sides by primary key
(also rows that moved to another bucket): rows missing in MySQL, rows only in MySQL, and
changed rows with the changed columns and both values. `parity()` only compares: it returns
the summary (the result's str) with the buckets and rows behind it (`ParityResult.details`),
and `etl.parity_report` writes report.json and report.html from them.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from io import StringIO
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Callable, Sequence

import duckdb
import polars as pl
import pyarrow as pa

from ..core.result import Result
from ..core import duck
from ..core.config import mask_uri
from ..core.digest import DIGEST, duckdb_expression, has_digest, stage_digests
from ..core.errors import ParityError
from ..core.rowhash import hash_expression, normalized, select_sql
from ..core.show import plain_text
from ..stage.folder import SUMMARY, StageFolder, read_stage, stage_path
from ..core.stores import STORES, UPLOAD_SESSIONS, Store
from ..stage.sessions import expected_sessions

MAX_ROWS = 1000  # differing rows listed per kind and table in the reports (all are counted)
EXAMPLES = 3  # differing rows named per table in the terminal summary
MISSING, EXTRA, CHANGED = "missing_in_mysql", "only_in_mysql", "changed"
KINDS = (MISSING, EXTRA, CHANGED)
# connectorx reads this many primary-key ranges at once (measured in BENCHMARKS.md: 2 beats
# 1 and 4 on a 2-core machine for 1M tickets).
DEFAULT_PARTS = 2
PART_MIN_ROWS = 50_000  # below this one query is faster than several


# ---------------------------------------------------------------- buckets


def table_buckets(store: Store, asked: Sequence[str] | None) -> tuple[str, ...]:
    """The buckets a table is grouped by: its defaults, or those of `asked` the description knows."""
    if asked is None:
        return store.default_buckets
    return tuple(b for b in asked if b in store.bucket_names)


def check_buckets(stores: Sequence[Store], asked: Sequence[str] | None) -> tuple[str, ...] | None:
    """Bucket names from a user, checked against the descriptions (never pasted into SQL)."""
    if asked is None:
        return None
    names = tuple(dict.fromkeys(b.strip() for b in asked if b.strip()))
    if not names:
        raise ParityError("no bucket names given")
    for b in names:
        if not any(b in s.bucket_names for s in stores):
            known = sorted({n for s in stores for n in s.bucket_names})
            raise ParityError(f"unknown bucket {b!r}; the tables know {', '.join(known)}", field=b)
    return names


def bucket_expression(store: Store, bucket: str) -> str:
    """DuckDB expression of a bucket's label (text; NULL is a bucket of its own)."""
    name, trunc = store.bucket_column(bucket)
    col = store.column(name)  # the identifier comes from the description, not from the caller
    if trunc is None:
        return f"CAST({normalized(col)} AS VARCHAR)"
    fmt = "%Y-%m-%d" if trunc == "day" else "%Y-%m"
    ts = f"epoch_ms({normalized(col)})" if col.kind == "epoch_ms" else normalized(col)
    return f"strftime({ts}, '{fmt}')"


# ---------------------------------------------------------------- reading MySQL


def split_points(stage_keys: pl.Series, parts: int) -> list:
    """Primary-key values that cut the stage's (sorted) keys into `parts` ranges of equal size."""
    keys = stage_keys.drop_nulls().sort()
    if parts < 2 or keys.len() < parts:
        return []
    return sorted(set(keys[keys.len() * i // parts] for i in range(1, parts)))


def _sql_literal(value) -> str:
    if isinstance(value, str):
        # Hex, so no quoting or sql_mode (NO_BACKSLASH_ESCAPES) matters; same collation as the key.
        return f"CONVERT(X'{value.encode('utf-8').hex()}' USING utf8mb4) COLLATE utf8mb4_bin"
    return str(int(value))


def range_queries(store: Store, points: list, columns: Sequence[str] | None = None) -> list[str]:
    """One SELECT (of `columns`, default the described ones) per key range; the ranges cover every
    row exactly once, whatever the points."""
    def select(where: str | None = None) -> str:
        if columns is None:
            return select_sql(store, where)
        return f"SELECT {', '.join(f'`{c}`' for c in columns)} FROM `{store.table}`" + (f" WHERE {where}" if where else "")

    if not points:
        return [select()]
    (key,) = store.primary_key
    k = f"`{store.column(key).name}`"
    bounds = [None, *points, None]
    queries = []
    for lo, hi in zip(bounds, bounds[1:]):
        cond = [f"{k} >= {_sql_literal(lo)}" if lo is not None else None, f"{k} < {_sql_literal(hi)}" if hi is not None else None]
        queries.append(select(" AND ".join(c for c in cond if c)))
    return queries


class MySQLSide:
    """One table as MySQL holds it, through connectorx: its digests or its rows in parallel key ranges,
    or a few rows by key."""

    def __init__(self, target, store: Store, points: list | None = None, buckets: Sequence[str] = ()):
        self.target, self.store, self.points = target, store, points or []
        self.bucket_columns = tuple(dict.fromkeys(store.bucket_column(b)[0] for b in buckets))
        self.digest = self._has_digest()

    def _has_digest(self) -> bool:
        """Whether the table has the generated `row_digest` (a table made by an older schema has not)."""
        import pymysql

        try:
            with self.target.connect() as conn:
                return has_digest(conn, self.store.table)
        except pymysql.err.Error as e:
            raise ParityError(f"reading MySQL failed: {mask_uri(str(e))[:300]}", store=self.store.name) from None

    @property
    def parts(self) -> int:
        return len(self.points) + 1

    @property
    def method(self) -> str:
        return "digest" if self.digest else "rows"

    def hash_sql(self) -> str:
        """DuckDB expression of the row hash on MySQL's side, over what `read` returns."""
        return f'"{DIGEST}"' if self.digest else hash_expression(self.store)

    def stage_hash_sql(self) -> str:
        """The same hash of the stage's rows."""
        return duckdb_expression(self.store) if self.digest else hash_expression(self.store)

    def _read(self, queries: list[str], return_type: str):
        import connectorx as cx

        try:
            return cx.read_sql(self.target.uri, queries if len(queries) > 1 else queries[0], return_type=return_type)
        except Exception as e:  # connectorx raises plain RuntimeErrors, with the URI in some of them
            raise ParityError(f"reading MySQL failed: {mask_uri(str(e))[:300]}", store=self.store.name) from None

    def read(self) -> pa.Table:
        """Keys, bucket columns and digests of every row; every column where there is no digest.
        (Streaming the batches into DuckDB instead measured slower: see BENCHMARKS.md.)"""
        cols = tuple(dict.fromkeys((*self.store.primary_key, *self.bucket_columns, DIGEST))) if self.digest else None
        return self._read(range_queries(self.store, self.points, cols), "arrow")

    def read_in_background(self) -> Callable[[], pa.Table]:
        """Start `read` in a thread (the server and connectorx work while DuckDB hashes the stage);
        the function returned waits for the rows and re-raises the read's error."""
        got: dict = {}

        def run():
            try:
                got["rows"] = self.read()
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                got["error"] = e

        thread = threading.Thread(target=run, name=f"parity-read-{self.store.table}", daemon=True)
        thread.start()

        def wait() -> pa.Table:
            thread.join()
            if "error" in got:
                raise got["error"]
            return got.pop("rows")

        return wait

    def rows(self, keys: list) -> pa.Table:
        """The rows with these primary-key values (for the drill-down: a few thousand at most)."""
        (key,) = self.store.primary_key
        queries = [select_sql(self.store, f"`{self.store.column(key).name}` IN ({', '.join(_sql_literal(k) for k in keys[i:i + 500])})")
                   for i in range(0, len(keys), 500)]
        if not queries:
            return pa.table({c.name: pa.array([], pa.null()) for c in self.store.columns})
        return self._read(queries, "arrow")


# ---------------------------------------------------------------- comparing one table


@dataclass(frozen=True)
class RowDiff:
    """One row that differs: its key, its bucket on each side and, when changed, the columns and both values."""

    kind: str  # missing_in_mysql | only_in_mysql | changed
    key: dict
    stage_bucket: dict | None
    mysql_bucket: dict | None
    columns: tuple[str, ...] = ()  # the changed columns (kind `changed`)
    stage: dict | None = None  # missing/changed: the stage's values (all columns, or the changed ones)
    mysql: dict | None = None

    def __str__(self) -> str:
        key = ", ".join(f"{k}={plain_text(v)}" for k, v in self.key.items())
        if self.kind != CHANGED:
            return f"{self.kind.replace('_', ' ')}: {key}"
        cols = "; ".join(f"{c}: {plain_text(self.stage[c], quote=True)} -> {plain_text(self.mysql[c], quote=True)}"
                         for c in self.columns)
        return f"changed: {key}: {cols}"


@dataclass(frozen=True)
class TableParity:
    table: str
    buckets: tuple[str, ...]
    stage_rows: int
    mysql_rows: int
    bucket_count: int
    mismatched_buckets: int
    missing_in_mysql: int
    only_in_mysql: int
    changed: int
    read_parts: int  # key ranges connectorx read in parallel
    method: str  # digest: MySQL's row_digest column was read; rows: every column (no row_digest)
    seconds: float
    examples: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.mismatched_buckets == 0 and self.stage_rows == self.mysql_rows


@dataclass(frozen=True)
class TableReport:
    """Everything the reports show for one table (not kept in run records: it can be large)."""

    summary: TableParity
    buckets: pl.DataFrame  # every bucket: its labels, rows and checksum of both sides, ok
    cells: list[tuple]  # the heatmap: (first label, second label, every bucket in the cell ok)
    diffs: dict[str, list[RowDiff]]  # kind -> differing rows (at most MAX_ROWS each)


def _plain(v):
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, datetime):
        return v.isoformat(sep=" ", timespec="milliseconds")
    if isinstance(v, date):
        return v.isoformat()
    return v


def compare_table(con: duckdb.DuckDBPyConnection, store: Store, stage: Path | pl.DataFrame, mysql: MySQLSide,
                  buckets: tuple[str, ...], *, max_rows: int = MAX_ROWS) -> TableReport:
    """Bucket checksums of both sides and the drill-down into the buckets that differ.

    `stage` is the staged Parquet file, or the frame MySQL is expected to hold (upload sessions:
    see `expected_sessions`).
    """
    t0 = time.perf_counter()
    keys = [f'"{store.column(k).name}"' for k in store.primary_key]
    labels = [f"b{i}" for i in range(len(buckets))]
    bucket_sql = "".join(f", {bucket_expression(store, b)} AS {lab}" for b, lab in zip(buckets, labels))
    hashed = f"SELECT {', '.join(keys)}{bucket_sql}, {{}} AS h FROM "
    rows = mysql.read_in_background()
    try:
        stage_hash = mysql.stage_hash_sql()
        if isinstance(stage, pl.DataFrame):
            con.register("stage_src", stage)
        else:
            kept = stage_digests(con, stage, store) if mysql.digest else None
            digests = ""
            if kept is not None:  # in the staged file's row order: joined by position
                digests = f" POSITIONAL JOIN (SELECT {DIGEST} AS __stage_digest FROM read_parquet({duck.literal(kept)}))"
                stage_hash = "__stage_digest"
            con.execute(f"CREATE OR REPLACE TEMP VIEW stage_src AS SELECT * FROM read_parquet({duck.literal(stage)}){digests}")
        con.execute(f"CREATE OR REPLACE TEMP TABLE sh AS {hashed.format(stage_hash)} stage_src")
    finally:
        mysql_rows = rows()  # always wait: no read left running behind an error
    con.register("mysql_src", mysql_rows)
    con.execute(f"CREATE OR REPLACE TEMP TABLE mh AS {hashed.format(mysql.hash_sql())} mysql_src")
    con.unregister("mysql_src")
    del mysql_rows  # the wide rows are not needed any more: the drill-down re-reads the few it shows

    # Per bucket, both sides at once: GROUP BY keeps NULL labels together, no join needed.
    group = ", ".join(labels) if labels else "()"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE bk AS
        SELECT {''.join(f"{lab}, " for lab in labels)}
               count(*) FILTER (WHERE side = 's') AS stage_rows,
               count(*) FILTER (WHERE side = 'm') AS mysql_rows,
               sum(h::HUGEINT) FILTER (WHERE side = 's') AS stage_sum,
               sum(h::HUGEINT) FILTER (WHERE side = 'm') AS mysql_sum
        FROM (SELECT 's' AS side, * FROM sh UNION ALL SELECT 'm' AS side, * FROM mh)
        GROUP BY {group}""")
    ok = "stage_rows = mysql_rows AND stage_sum IS NOT DISTINCT FROM mysql_sum"
    # Checksums shown as rowhash.Checksum shows them: the sum modulo 2**64, in hex.
    hexed = "printf('%016x', ({} % 18446744073709551616)::UBIGINT)"
    frame = con.sql(f"""
        SELECT {''.join(f'{lab} AS "{name}", ' for lab, name in zip(labels, buckets))}
               stage_rows, mysql_rows, {hexed.format('stage_sum')} AS stage_checksum,
               {hexed.format('mysql_sum')} AS mysql_checksum, {ok} AS ok
        FROM bk ORDER BY ALL NULLS FIRST""").pl()
    first, second = (labels + ["''", "''"])[:2]
    cells = con.execute(f"SELECT {first}, {second}, bool_and({ok}) FROM bk GROUP BY ALL").fetchall()
    stage_rows, mysql_rows, bad = con.execute(
        f"SELECT coalesce(sum(stage_rows), 0), coalesce(sum(mysql_rows), 0), count(*) FILTER (WHERE NOT ({ok})) FROM bk"
    ).fetchall()[0]

    diffs, counts = {k: [] for k in KINDS}, dict.fromkeys(KINDS, 0)
    if bad:
        con.execute(f"CREATE OR REPLACE TEMP TABLE bad AS SELECT * FROM bk WHERE NOT ({ok})")
        diffs, counts = _drill_down(con, store, mysql, buckets, labels, keys, max_rows)
    if isinstance(stage, pl.DataFrame):
        con.unregister("stage_src")
    summary = TableParity(
        table=store.table, buckets=buckets, stage_rows=stage_rows, mysql_rows=mysql_rows,
        bucket_count=frame.height, mismatched_buckets=bad, missing_in_mysql=counts[MISSING],
        only_in_mysql=counts[EXTRA], changed=counts[CHANGED], read_parts=mysql.parts, method=mysql.method,
        seconds=round(time.perf_counter() - t0, 3),
        examples=tuple(str(d) for k in KINDS for d in diffs[k])[:EXAMPLES],
    )
    return TableReport(summary, frame, cells, diffs)


def _drill_down(con, store: Store, mysql: MySQLSide, buckets, labels, keys, max_rows):
    """Pair the rows of the mismatched buckets by primary key; classify and describe each difference."""
    on = " AND ".join(f"x.{lab} IS NOT DISTINCT FROM bad.{lab}" for lab in labels) or "TRUE"
    key_list = ", ".join(keys)
    # Keys seen in a bad bucket on either side, then both sides' rows for those keys wherever they
    # are: a changed bucket column moves a row from one bucket to another.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE cand AS
        SELECT {key_list} FROM sh x SEMI JOIN bad ON {on}
        UNION SELECT {key_list} FROM mh x SEMI JOIN bad ON {on}""")
    lab_s = "".join(f", s.{lab} AS s_{lab}" for lab in labels)
    lab_m = "".join(f", m.{lab} AS m_{lab}" for lab in labels)
    join = " AND ".join(f"s.{k} = m.{k}" for k in keys)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE pairs AS
        SELECT {', '.join(f'coalesce(s.{k}, m.{k}) AS {k}' for k in keys)},
               CASE WHEN s.h IS NULL THEN '{EXTRA}' WHEN m.h IS NULL THEN '{MISSING}' ELSE '{CHANGED}' END AS kind
               {lab_s}{lab_m}
        FROM (SELECT * FROM sh SEMI JOIN cand USING ({key_list})) s
        FULL JOIN (SELECT * FROM mh SEMI JOIN cand USING ({key_list})) m ON {join}
        WHERE s.h IS DISTINCT FROM m.h""")
    found = dict(con.execute("SELECT kind, count(*) FROM pairs GROUP BY kind").fetchall())
    counts = {k: found.get(k, 0) for k in KINDS}
    shown = con.execute(f"""
        SELECT * FROM pairs QUALIFY row_number() OVER (PARTITION BY kind ORDER BY {key_list}) <= {int(max_rows)}
        ORDER BY kind, {key_list}""").fetchall()

    names = list(store.column_names)
    key_names = [store.column(k).name for k in store.primary_key]
    norm = ", ".join(f'{normalized(c)} AS "{c.name}"' for c in store.columns)
    n, nb = len(keys), len(labels)

    def normalized_rows(src: str, wanted: list[tuple]) -> dict[tuple, dict]:
        if not wanted:
            return {}
        con.register("wanted", pl.DataFrame(wanted, schema=key_names, orient="row"))
        try:
            got = con.execute(f"SELECT {norm} FROM {src} SEMI JOIN wanted USING ({key_list})").fetchall()
        finally:
            con.unregister("wanted")
        rows = (dict(zip(names, map(_plain, r))) for r in got)
        return {tuple(r[k] for k in key_names): r for r in rows}

    stage = normalized_rows("stage_src", [r[:n] for r in shown if r[n] != EXTRA])
    con.register("mysql_rows", mysql.rows([r[0] for r in shown if r[n] != MISSING]) if any(r[n] != MISSING for r in shown)
                 else pl.DataFrame(schema=key_names))
    try:
        mine = normalized_rows("mysql_rows", [r[:n] for r in shown if r[n] != MISSING])
    finally:
        con.unregister("mysql_rows")

    diffs = {k: [] for k in KINDS}
    for r in shown:
        key, kind = tuple(r[:n]), r[n]
        sb, mb = dict(zip(buckets, r[n + 1:n + 1 + nb])), dict(zip(buckets, r[n + 1 + nb:]))
        s, m = stage.get(tuple(map(_plain, key))), mine.get(tuple(map(_plain, key)))
        keyd = dict(zip(key_names, map(_plain, key)))
        if kind == MISSING:
            diffs[kind].append(RowDiff(kind, keyd, sb, None, stage=s))
        elif kind == EXTRA:
            diffs[kind].append(RowDiff(kind, keyd, None, mb, mysql=m))
        elif s is not None and m is not None:
            cols = tuple(c for c in names if s[c] != m[c] or type(s[c]) is not type(m[c]))
            diffs[kind].append(RowDiff(kind, keyd, sb, mb, cols, {c: s[c] for c in cols}, {c: m[c] for c in cols}))
    return diffs, counts


# ---------------------------------------------------------------- the stage


def _stage_from(src: Path | StageFolder) -> tuple[Path, Path | None]:
    """(stage folder, temp folder to remove): a stage is used as is, an export is transformed first."""
    if isinstance(src, StageFolder):
        return src, None
    src = Path(src)
    if (src / SUMMARY).is_file():
        return StageFolder.open(src), None
    if (src / "export-summary.json").is_file():
        from ..stage.transform import transform

        tmp = Path(tempfile.mkdtemp(prefix="etl-parity-"))
        transform(src, tmp / "stage")
        return StageFolder.open(tmp / "stage"), tmp
    raise ParityError("not a stage folder (no transform-summary.json) nor an export folder (no export-summary.json)",
                      file=str(src))


# ---------------------------------------------------------------- the run


@dataclass(frozen=True)
class ParityResult(Result):
    source: str
    target: str  # masked
    tables: tuple[TableParity, ...]
    seconds: float
    skipped: tuple[str, ...] = field(default=())  # described tables the stage does not hold
    report_dir: str = ""  # where etl.report.parity.write_report put report.html and report.json

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables)

    @property
    def mismatched(self) -> tuple[str, ...]:
        return tuple(t.table for t in self.tables if not t.ok)

    @property
    def details(self) -> tuple[TableReport, ...]:
        """The buckets and differing rows behind each table's summary, for the reports. Not a field:
        run records (asdict) keep the summary only."""
        return self.__dict__.get("_details", ())

    def with_details(self, details) -> ParityResult:
        object.__setattr__(self, "_details", tuple(details))
        return self

    def __str__(self) -> str:
        return summary_text(self)

    def _repr_html_(self) -> str:
        from ..core.htmlrepr import Link, html_table

        verdict = "parity: MySQL matches the stage" if self.ok else f"parity: MISMATCH in {', '.join(self.mismatched)}"
        rows = [(t.table, " x ".join(t.buckets) or "whole table", t.bucket_count, t.mismatched_buckets, t.stage_rows,
                 t.mysql_rows, t.missing_in_mysql, t.only_in_mysql, t.changed, "yes" if t.ok else "NO")
                for t in self.tables]
        report = Path(self.report_dir) / "report.html" if self.report_dir else None
        title = f"{verdict} ({self.seconds:.1f} s)"
        html = html_table(title, ("table", "buckets", "buckets compared", "differing", "stage rows", "MySQL rows",
                                  "missing in MySQL", "only in MySQL", "changed", "ok"), rows,
                          [f"not staged, not compared: {', '.join(self.skipped)}"] if self.skipped else [])
        if report and report.is_file():
            html += html_table("", ("report",), [(Link(str(report), report.resolve().as_uri()),)])
        return html

    def raise_for_mismatch(self) -> None:
        if not self.ok:
            what = "; ".join(
                f"{t.table}: {t.mismatched_buckets} buckets, {t.missing_in_mysql} rows missing in MySQL, "
                f"{t.only_in_mysql} only in MySQL, {t.changed} changed" + (f" (first: {t.examples[0]})" if t.examples else "")
                for t in self.tables if not t.ok)
            report = {"file": f"{self.report_dir}/report.html"} if self.report_dir else {}
            raise ParityError(f"MySQL differs from the stage: {what}", **report)


def parity(src: Path | StageFolder, target, *, buckets: Sequence[str] | None = None, tables: Sequence[str] | None = None,
           parts: int = DEFAULT_PARTS, max_rows: int = MAX_ROWS) -> ParityResult:
    """Compare a stage (or an export, transformed first) with MySQL. Writes nothing: the result
    carries the buckets and rows behind it (`details`) for `etl.report.parity.write_report`."""
    t0 = time.perf_counter()
    stage, tmp = _stage_from(src)
    stage_dir = stage.dir
    try:
        stores = stage.check()  # a table the summary lists must be there, whole
        if tables:
            from ..core.stores import store as lookup

            try:
                wanted = {lookup(t).name for t in tables}
            except KeyError as e:
                raise ParityError(str(e.args[0])) from None
            stores = tuple(s for s in stores if s.name in wanted)
        asked = check_buckets(stores, buckets)
        reports = [_compare(target, s, stage_dir, table_buckets(s, asked), parts, max_rows) for s in stores]
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    skipped = tuple(s.table for s in STORES if s not in stores and not tables)
    result = ParityResult(str(src.dir if isinstance(src, StageFolder) else src), str(target), tuple(r.summary for r in reports), round(time.perf_counter() - t0, 3), skipped)
    return result.with_details(reports)


def _compare(target, store: Store, stage_dir: Path, buckets, parts: int, max_rows: int) -> TableReport:
    stage = read_stage(stage_dir, store, lazy=True)  # checks the file against the description
    points = []
    if parts > 1 and len(store.primary_key) == 1 and stage.select(pl.len()).collect().item() >= PART_MIN_ROWS:
        points = split_points(stage.select(store.primary_key[0]).collect().to_series(), parts)
    # The load finalizes upload sessions (etl/stage/sessions.py): parity expects them finalized.
    source = expected_sessions(StageFolder.open(stage_dir)) if store is UPLOAD_SESSIONS else stage_path(stage_dir, store)
    con = duck.connect()
    try:
        return compare_table(con, store, source, MySQLSide(target, store, points, buckets), buckets, max_rows=max_rows)
    except duckdb.Error as e:
        raise ParityError(f"comparing in DuckDB failed: {e}", store=store.name) from None
    finally:
        con.close()


# ---------------------------------------------------------------- the terminal summary


def summary_table(result: ParityResult):
    """The per-table totals as a rich Table: columns as wide as their contents."""
    from rich import box
    from rich.table import Table

    status = "OK" if result.ok else "MISMATCH"
    table = Table(title=f"parity {result.source} vs {result.target}: {status} in {result.seconds:.1f} s",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("table")
    for name in ("stage", "mysql", "buckets", "bad", "missing", "extra", "changed"):
        table.add_column(name, justify="right")
    table.add_column("status")
    table.add_column("buckets by")
    for t in result.tables:
        table.add_row(t.table, *(f"{n:,}" for n in (t.stage_rows, t.mysql_rows, t.bucket_count, t.mismatched_buckets,
                                                    t.missing_in_mysql, t.only_in_mysql, t.changed)),
                      "ok" if t.ok else "MISMATCH", ", ".join(t.buckets) or "(whole table)")
    return table


def summary_text(result: ParityResult, width: int = 160) -> str:
    """The summary as plain text (the result's str): the table, then examples and where the report is."""
    from rich.console import Console

    buf = StringIO()
    Console(file=buf, width=width, color_system=None, highlight=False, soft_wrap=False).print(summary_table(result))
    lines = [line.rstrip() for line in buf.getvalue().rstrip("\n").splitlines()]
    for t in result.tables:
        lines += [f"  {t.table}: {e}" for e in t.examples]
    if result.skipped:
        lines.append(f"  not in the stage: {', '.join(result.skipped)}")
    full = [t.table for t in result.tables if t.method == "rows"]
    if full:
        lines.append(f"  read in full (no {DIGEST} column of this version: made by an older schema): {', '.join(full)}")
    if result.report_dir:
        lines.append(f"  report: {result.report_dir}/report.html (and report.json)")
    return "\n".join(lines)
