"""Comparing one table (etl.check.parity): per bucket, the row count and the sum of the row digests
of both sides in DuckDB; for every bucket that differs, the drill-down that pairs the rows of both
sides by primary key and names each row missing in MySQL, only in MySQL, or changed (with the
changed columns and both values)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl

from ..core import duck
from ..core.digest import DIGEST, stage_digests
from ..core.rowhash import normalized
from ..core.show import plain_text
from ..core.stores import Store
from .buckets import bucket_expression
from .parity_read import MySQLSide

MAX_ROWS = 1000  # differing rows listed per kind and table in the reports (all are counted)
EXAMPLES = 3  # differing rows named per table in the terminal summary
MISSING, EXTRA, CHANGED = "missing_in_mysql", "only_in_mysql", "changed"
KINDS = (MISSING, EXTRA, CHANGED)


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
